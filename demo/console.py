"""The narrated console: a live view per step on a terminal, plain lines everywhere else.

On a terminal each step shows a spinner with its progress and a table that fills as things
happen (rich's ``Live``). When stdout is a pipe or file (CI, tests, ``| tee``) nothing is
redrawn: notes are printed as they come, progress only when its wording changes, the table once
at the end of the step, so the output reads as a log. Every text goes through
:func:`~demo.plan.hide_credentials`, and rich markup is off, so server messages print verbatim.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table
from rich.text import Text

from demo.plan import hide_credentials
from demo.summary import Invariant

__all__ = ["LogToSteps", "Narrator", "StepView", "describe_error", "make_console"]

PLAIN_WIDTH = 120  # columns for plain output when COLUMNS is not set: tables without wrapping
LOG_LINES_PER_STEP = 6  # library warnings shown per step; the rest are counted


def describe_error(exc: BaseException) -> str:
    """An exception in one line; a bare timeout says so instead of printing nothing."""
    text = (str(exc).splitlines() or [""])[0]
    if not text and isinstance(exc, TimeoutError):
        text = "a bounded wait ran out"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def make_console(file: IO[str] | None = None) -> Console:
    """A console that never interprets markup; wide enough for the tables when not a tty."""
    stdout = sys.stdout
    utf = (getattr(stdout, "encoding", "") or "").lower().replace("-", "").startswith("utf")
    if file is None and not utf and isinstance(stdout, io.TextIOWrapper):
        stdout.reconfigure(errors="replace")  # an ASCII pipe gets "?" rather than a crash
    console = Console(file=file, highlight=False, markup=False, emoji=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(file=file, highlight=False, markup=False, emoji=False, width=PLAIN_WIDTH)
    return console


class StepView:
    """What one step shows: narrated notes, a progress line, a table of observations."""

    def __init__(self, narrator: Narrator, table: Table, progress: Progress | None) -> None:
        self._narrator = narrator
        self._console = narrator.console
        self.table = table
        self._progress = progress
        self._task = progress.add_task("starting", total=None) if progress else None
        self._last_progress = ""
        self._last_quarter = -1
        self._started = time.monotonic()
        self.log_lines = 0
        self.outcome: Text | None = None  # the closing line, once the step said how it went

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def note(self, text: str, *, style: str = "") -> None:
        """A narrated line, stamped with the time since the step began."""
        line = Table.grid(padding=(0, 1))
        line.add_column(no_wrap=True, style="dim")
        line.add_column()
        line.add_row(f"  {self.elapsed():6.2f}s", Text(hide_credentials(text), style=style))
        self._console.print(line)

    def progress(
        self, text: str, completed: int | None = None, total: int | None = None, detail: str = ""
    ) -> None:
        """The step's status. A terminal redraws it every time; plain output gets a line when
        the wording changes and at each quarter of ``total``, so a log stays short."""
        text, detail = hide_credentials(text), hide_credentials(detail)
        if self._progress is not None and self._task is not None:
            shown = f"{text} · {detail}" if detail else text
            self._progress.update(self._task, description=shown, completed=completed, total=total)
            return
        quarter = 4 * completed // total if completed is not None and total else -1
        if text != self._last_progress or quarter > self._last_quarter:
            self._last_progress, self._last_quarter = text, quarter
            count = f" ({completed}/{total})" if completed is not None and total else ""
            self.note(f"… {text}{count}{' · ' + detail if detail else ''}", style="dim")

    def row(self, *cells: str) -> None:
        self.table.add_row(*(hide_credentials(c) for c in cells))

    def finish(self, text: str, ok: bool) -> None:
        mark = self._narrator.mark(ok)
        style = "bold green" if ok else "bold red"
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=f"{mark} {text}", total=1, completed=1)
        self.outcome = Text(f"  {mark} {hide_credentials(text)}", style=style)


class Narrator:
    """Prints the demo: an opening, one block per step, the summary."""

    def __init__(self, console: Console, steps: int) -> None:
        self.console = console
        self.steps = steps
        self.live = console.is_terminal and not console.is_dumb_terminal
        self.current: StepView | None = None
        self._number = 0
        encoding = (console.encoding or "").lower().replace("-", "")
        self._unicode = encoding.startswith("utf")

    def mark(self, ok: bool) -> str:
        if self._unicode:
            return "✓" if ok else "✗"
        return "ok" if ok else "FAILED"

    def heading(self, text: str) -> None:
        self.console.print(Text(hide_credentials(text), style="bold"))

    def say(self, text: str) -> None:
        self.console.print(Text(hide_credentials(text)))

    @contextmanager
    def step(
        self, title: str, *, doing: str, expect: str, columns: Sequence[str]
    ) -> Iterator[StepView]:
        """One step: says what happens and what should, then shows it happening."""
        self._number += 1
        self.console.print()
        self.heading(f"Step {self._number}/{self.steps} · {title}")
        intro = Table.grid(padding=(0, 1))
        intro.add_column(no_wrap=True)
        intro.add_column()
        intro.add_row("  What happens:", Text(hide_credentials(doing)))
        intro.add_row("  Should happen:", Text(hide_credentials(expect)))
        self.console.print(intro)
        table = Table(*columns, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        progress = None
        if self.live:
            progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                console=self.console,
            )
        view = StepView(self, table, progress)
        self.current = view
        try:
            if progress is not None:
                with Live(Group(table, progress), console=self.console, refresh_per_second=8):
                    yield view
            else:
                yield view
        except BaseException as exc:
            view.finish(f"step failed: {describe_error(exc)}", False)
            raise
        finally:
            self.current = None
            if progress is None and table.row_count:
                self.console.print(table)
            if view.outcome is not None:
                self.console.print(view.outcome)
            if view.log_lines > LOG_LINES_PER_STEP:
                hidden = view.log_lines - LOG_LINES_PER_STEP
                self.say(f"  ({hidden} more library log lines not shown)")

    def skip_to(self, last: int, reason: str) -> None:
        """Steps up to ``last`` will not run: say so, and keep the numbering right."""
        while self._number < last:
            self._number += 1
            self.console.print(Text(f"Step {self._number}/{self.steps} · skipped {reason}"))

    def summary(self, invariants: Sequence[Invariant], figures: Sequence[tuple[str, str]]) -> None:
        self.console.print()
        self.heading("Summary")
        numbers = Table("figure", "value", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for name, value in figures:
            numbers.add_row(name, hide_credentials(value))
        if figures:
            self.console.print(numbers)
        checks = Table("", "invariant", "measured", box=box.SIMPLE_HEAD, show_edge=False)
        for inv in invariants:
            style = "green" if inv.holds else "bold red"
            checks.add_row(
                Text(self.mark(inv.holds), style=style), inv.name, hide_credentials(inv.measured)
            )
        self.console.print(checks)
        failed = sum(1 for i in invariants if not i.holds)
        if failed:
            self.console.print(
                Text(f"{failed} of {len(invariants)} invariants FAILED.", style="bold red")
            )
        else:
            self.console.print(Text(f"All {len(invariants)} invariants hold.", style="bold green"))


class LogToSteps(logging.Handler):
    """Library warnings (a retry, a lost connection) shown as dim notes of the running step."""

    def __init__(self, narrator: Narrator) -> None:
        super().__init__(logging.WARNING)
        self.narrator = narrator

    def emit(self, record: logging.LogRecord) -> None:
        message = (record.getMessage().splitlines() or [""])[0][:160]
        view = self.narrator.current
        if view is None:  # between steps (start-up, clean-up)
            self.narrator.say(f"  log {record.name}: {message}")
            return
        view.log_lines += 1
        if view.log_lines <= LOG_LINES_PER_STEP:
            view.note(f"log {record.name}: {message}", style="dim")

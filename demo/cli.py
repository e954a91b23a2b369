"""Command line: arguments → plan → run → summary → exit code (0 all hold, 1 not, 2 bad usage)."""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

from demo.console import Narrator, make_console
from demo.plan import Plan, PlanError, build_plan, hide_credentials
from demo.records import DemoReport
from demo.runner import STEPS, open_sockets, run
from demo.summary import evaluate, exit_code, figures

__all__ = ["main", "parser"]

THREAD_BOUND = 2.0  # seconds threads of closed clients may take to end before they count as left
# Process-wide daemon threads libraries keep by design once used, not per client: pycares (the
# DNS resolver under aiohttp, used for gossip) destroys resolver channels on one such thread.
PROCESS_THREADS = ("_run_safe_shutdown_loop",)

Runner = Callable[[Plan, Narrator], Coroutine[Any, Any, DemoReport]]


class _Parser(argparse.ArgumentParser):
    """argparse, except that its error messages never echo credentials given by mistake."""

    def error(self, message: str) -> NoReturn:
        super().error(hide_credentials(message))


def parser() -> argparse.ArgumentParser:
    made = _Parser(
        prog="python -m demo",
        description="A narrated run of pymo, mongomancy, mongo_observer and photonpump through "
        "failovers, on embedded simulators unless real servers are given. Exit status: 0 when "
        "every invariant holds, 1 when one does not, 2 for unusable arguments.",
    )
    made.add_argument(
        "--mongo-uri",
        metavar="URI",
        help="a real replica set (mongodb:// or mongodb+srv://); its primary is stepped down "
        "with replSetStepDown instead of killed; the demo works in a database demo_<random> "
        "that it drops at the end",
    )
    made.add_argument(
        "--eventstore",
        metavar="ADDRESS",
        help="a real EventStore: gossip seeds [gossip://][user:password@]host:port[,host:port] "
        "(their HTTP port, usually 2113) or one node tcp://[user:password@]host:port (usually "
        "1113); credentials default to admin/changeit; the leader is not killed",
    )
    made.add_argument(
        "--eventstore-tls",
        action="store_true",
        help="speak TLS to the EventStore given (and HTTPS for its gossip), system CAs",
    )
    made.add_argument(
        "--plan",
        action="store_true",
        help="print what would be done against which servers, and exit without connecting",
    )
    return made


def main(argv: Sequence[str] | None = None, *, runner: Runner = run) -> int:
    arguments = parser()
    args = arguments.parse_args(argv)  # exits with 2 on unusable arguments
    try:
        plan = build_plan(args.mongo_uri, args.eventstore, eventstore_tls=args.eventstore_tls)
    except PlanError as exc:
        arguments.error(str(exc))  # exits with 2
    console = make_console()
    narrator = Narrator(console, STEPS)
    if args.plan:
        for line in plan.describe():
            narrator.say(line)
        return 0
    sockets_before = open_sockets()
    try:
        report = asyncio.run(runner(plan, narrator))
    except KeyboardInterrupt:
        narrator.say("interrupted")
        return 130
    if report.leaks is not None:
        report.leaks += _left_behind(sockets_before)
    invariants = evaluate(report)
    narrator.summary(invariants, figures(report))
    return exit_code(invariants)


def _left_behind(sockets_before: int | None) -> list[str]:
    """Threads still running and sockets still open once every client and simulator closed."""
    deadline = time.monotonic() + THREAD_BOUND
    others = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and not any(n in t.name for n in PROCESS_THREADS)
    ]
    while others and time.monotonic() < deadline:
        time.sleep(0.02)
        others = [t for t in others if t.is_alive()]
    found = [f"thread {t.name}" for t in others]
    after = open_sockets()
    if sockets_before is not None and after is not None and after > sockets_before:
        found.append(f"{after - sockets_before} sockets")
    return found

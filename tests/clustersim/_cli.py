"""Running ``python -m clustersim ...`` as a child process, for the CLI tests of both simulators."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "shared" / "src", ROOT / "packages" / "clustersim" / "src"]
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def child_env() -> dict[str, str]:
    """The environment, with the checkout's sources importable when nothing is installed."""
    env = dict(os.environ)
    paths = [str(p) for p in SOURCES]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


@contextmanager
def clustersim(*args: str) -> Iterator[subprocess.Popen[str]]:
    """``python -m clustersim ...`` as a child process, killed on the way out whatever happens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "clustersim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=ROOT,
    )
    try:
        with proc:
            yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def first_line(proc: subprocess.Popen[str], timeout: float = START_TIMEOUT) -> str:
    """The first stdout line, or a failure with stderr if none comes within ``timeout``."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout)
    if not ready:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"nothing printed within {timeout} s; stderr: {err}")
    line = proc.stdout.readline()
    if not line:
        _, err = proc.communicate(timeout=STOP_TIMEOUT)
        pytest.fail(f"exited with {proc.returncode} before printing; stderr: {err}")
    return line.strip()


def stop(proc: subprocess.Popen[str], signum: signal.Signals) -> tuple[int, str]:
    """Send ``signum``; the exit code and stderr (TimeoutExpired after STOP_TIMEOUT)."""
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=STOP_TIMEOUT)
    return proc.returncode, err

"""``python -m clustersim mongo``: serve until a signal, print the URI first, fail clearly."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pymongo import MongoClient

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "shared" / "src", ROOT / "packages" / "clustersim" / "src"]
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def _env() -> dict[str, str]:
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
        env=_env(),
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
        pytest.fail(f"no URI within {timeout} s; stderr: {err}")
    line = proc.stdout.readline()
    if not line:
        _, err = proc.communicate(timeout=STOP_TIMEOUT)
        pytest.fail(f"exited with {proc.returncode} before printing a URI; stderr: {err}")
    return line.strip()


def stop(proc: subprocess.Popen[str], signum: signal.Signals) -> tuple[int, str]:
    """Send ``signum``; the exit code and stderr, which must come within STOP_TIMEOUT."""
    started = time.monotonic()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=STOP_TIMEOUT)
    assert time.monotonic() - started < STOP_TIMEOUT
    return proc.returncode, err


def check_uri(uri: str, hosts: int) -> None:
    parts = urlsplit(uri)
    assert parts.scheme == "mongodb", uri
    listed = parts.netloc.split(",")
    assert len(listed) == hosts, uri
    for host in listed:
        name, port = host.rsplit(":", 1)
        assert name == "127.0.0.1", uri
        assert 0 < int(port) < 65_536, uri
    assert parse_qs(parts.query)["replicaSet"] == ["rs0"], uri


def round_trip(uri: str) -> None:
    with MongoClient[dict[str, Any]](uri, serverSelectionTimeoutMS=5000) as client:
        coll = client.cli[f"c_{uuid.uuid4().hex[:8]}"]
        inserted = coll.insert_one({"hello": "world"}).inserted_id
        found = coll.find_one({"_id": inserted})
    assert found == {"_id": inserted, "hello": "world"}


@pytest.mark.parametrize(
    ("args", "hosts", "signum"),
    [
        (["--members", "3"], 3, signal.SIGTERM),
        (["--polling", "--members", "1"], 1, signal.SIGINT),
    ],
    ids=["streaming-sigterm", "polling-sigint"],
)
def test_serves_until_signalled(args: list[str], hosts: int, signum: signal.Signals) -> None:
    with clustersim("mongo", *args) as proc:
        uri = first_line(proc)
        check_uri(uri, hosts)
        round_trip(uri)
        code, err = stop(proc, signum)
    assert code == 0, err
    assert "member 0" in err  # the human description went to stderr, not stdout


def test_bad_member_count_is_an_argument_error() -> None:
    with clustersim("mongo", "--members", "0") as proc:
        out, err = proc.communicate(timeout=STOP_TIMEOUT)
    assert proc.returncode in (1, 2)
    assert out == ""
    assert "--members" in err


def test_port_in_use_exits_with_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with clustersim("mongo", "--members", "1", "--port", str(port)) as proc:
            out, err = proc.communicate(timeout=START_TIMEOUT)
    assert proc.returncode == 1, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(port) in lines[0]
    assert "in use" in lines[0]

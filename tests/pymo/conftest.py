"""Fixtures for pymo's tests: simulated deployments on loopback, closed ports, thread counts."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from clustersim.mongo import ReplicaSet


@pytest.fixture
def rs() -> Iterator[ReplicaSet]:
    """A three-member simulated replica set named rs0."""
    with ReplicaSet(members=3, name="rs0") as deployment:
        yield deployment


@pytest.fixture
def closed_port() -> Callable[[], int]:
    """A factory of loopback ports nobody listens on: connecting is refused at once."""

    def make() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    return make


def pymongo_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("pymongo")]


@pytest.fixture
def no_thread_left() -> Iterator[None]:
    """Fail the test if pymongo threads started during it are still alive shortly after it."""
    before = set(pymongo_threads())
    yield
    deadline = time.monotonic() + 5
    while (left := set(pymongo_threads()) - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"threads left behind: {sorted(t.name for t in left)}"

"""Benchmark: how soon pymo answers, next to plain pymongo, in one run.

    nox -s bench
    PYTHONPATH=shared/src:packages/clustersim/src:packages/pymo/src python bench/pymo_fail_fast.py

Three questions, each as a median over several tries with the ratio between the two:

* every seed refuses (three closed loopback ports): time until the application gets an error;
* no primary (a simulated set in a long election), the application wants a writable server:
  time until the error;
* a healthy three-member simulated set: time until a first ``ping`` is answered.

Plain pymongo only fails after ``serverSelectionTimeoutMS``; its default (30 s) is reported as the
anchor, and pymongo is run with a reduced timeout so that the run stays short.
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pymo
import pymongo
from clustersim.mongo import ReplicaSet
from pymo import SERVER_STATE_SELECTORS
from pymo.errors import ServerSelectionTryOnceTimeoutError
from pymongo import MongoClient
from pymongo.errors import ServerSelectionTimeoutError

PYMONGO_DEFAULT_MS = 30_000  # serverSelectionTimeoutMS when not set: the anchor, not run
REDUCED_MS = 1_000  # the timeout plain pymongo runs with here
PYMO_TRIES = 15
PYMONGO_TRIES = 3  # each waits the whole reduced timeout
USABLE_TRIES = 20


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def milliseconds(action: Callable[[], object], tries: int) -> float:
    """Median wall time of ``action`` over ``tries`` runs, in milliseconds."""
    samples = []
    for _ in range(tries):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def pymo_fails(uri: str, **selectors: Any) -> None:
    try:
        client = pymo.mongo_client(uri, **selectors)
    except ServerSelectionTryOnceTimeoutError:
        return
    client.close()
    raise RuntimeError("pymo accepted a deployment it should have refused")


def pymo_fails_async(uri: str, **selectors: Any) -> None:
    async def attempt() -> None:
        try:
            client = await pymo.async_mongo_client(uri, **selectors)
        except ServerSelectionTryOnceTimeoutError:
            return
        await client.close()
        raise RuntimeError("pymo accepted a deployment it should have refused")

    asyncio.run(attempt())


def pymongo_fails(uri: str) -> None:
    """What an application sees with plain pymongo: its first write fails after the timeout."""
    with MongoClient[dict[str, Any]](uri, serverSelectionTimeoutMS=REDUCED_MS) as client:
        try:
            client.bench.things.insert_one({"x": 1})
        except ServerSelectionTimeoutError:
            return
    raise RuntimeError("pymongo wrote to a deployment that should have refused")


def pymo_usable(uri: str) -> None:
    client = pymo.mongo_client(uri, state_selectors=SERVER_STATE_SELECTORS.Writable)
    try:
        client.admin.command("ping")
    finally:
        client.close()


def pymongo_usable(uri: str) -> None:
    with MongoClient[dict[str, Any]](uri) as client:
        client.admin.command("ping")


def row(name: str, pymo_ms: float, pymongo_ms: float, anchor_ms: float | None = None) -> None:
    anchor = "" if anchor_ms is None else f"{anchor_ms:>14,.0f}{anchor_ms / pymo_ms:>12,.0f}x"
    print(f"{name:<44}{pymo_ms:>10.1f}{pymongo_ms:>12.1f}{pymongo_ms / pymo_ms:>9.1f}x{anchor}")


def main() -> int:
    print("pymo fail-fast benchmark: pymo next to plain pymongo")
    print(f"machine   {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"date      {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"versions  Python {platform.python_version()}, pymongo {pymongo.__version__}, ", end="")
    print(f"pymo {pymo.__version__}", end="\n\n")
    print(f"medians; pymongo run with serverSelectionTimeoutMS={REDUCED_MS}, its default")
    print(f"({PYMONGO_DEFAULT_MS} ms) shown as the anchor; a ratio is pymongo's time / pymo's")
    head = f"{'question':<44}{'pymo ms':>10}{'pymongo ms':>12}{'ratio':>10}"
    print(head + f"{'default ms':>14}{'ratio':>13}")

    refused = (
        f"mongodb://127.0.0.1:{closed_port()},127.0.0.1:{closed_port()},127.0.0.1:{closed_port()}/"
    )
    anchor = float(PYMONGO_DEFAULT_MS)
    plain = milliseconds(lambda: pymongo_fails(refused), PYMONGO_TRIES)
    row(
        "every seed refuses: error (sync)",
        milliseconds(lambda: pymo_fails(refused), PYMO_TRIES),
        plain,
        anchor,
    )
    row(
        "every seed refuses: error (async)",
        milliseconds(lambda: pymo_fails_async(refused), PYMO_TRIES),
        plain,
        anchor,
    )

    with ReplicaSet(members=3) as rs:
        rs.election_delay = 3600
        rs.step_down()
        writable = {"state_selectors": SERVER_STATE_SELECTORS.Writable}
        row(
            "no primary, Writable wanted: error (sync)",
            milliseconds(lambda: pymo_fails(rs.uri, **writable), PYMO_TRIES),
            milliseconds(lambda: pymongo_fails(rs.uri), PYMONGO_TRIES),
            anchor,
        )

    with ReplicaSet(members=3) as rs:
        row(
            "healthy set: first ping answered",
            milliseconds(lambda: pymo_usable(rs.uri), USABLE_TRIES),
            milliseconds(lambda: pymongo_usable(rs.uri), USABLE_TRIES),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

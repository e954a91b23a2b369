"""Benchmark: what mongomancy's retrying engine costs and what it buys, next to raw pymongo.

    nox -s bench -- bench/mongomancy_retry.py
    PYTHONPATH=shared/src:packages/clustersim/src:packages/mongomancy/src \
        python bench/mongomancy_retry.py

* Per-operation overhead: ``insert_one`` and ``find_one`` by ``_id`` per second through the
  engine and through a raw ``MongoClient`` on the same simulated three-member set; the ratio.
* Time to the first successful write after the primary is killed: raw pymongo (``retryWrites``
  on, the application looping on errors) and one ``engine.insert_one`` call (which retries by
  itself); medians, errors the application saw, and the ratio.

The simulator runs in this process (a background event-loop thread), so absolute rates include
its share of the GIL; the ratios compare like with like.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pymongo
from _rates import rate as measure_rate  # bench/ is on sys.path when run as a script
from clustersim.mongo import ReplicaSet
from mongomancy import Engine
from pymongo import MongoClient
from pymongo.errors import PyMongoError

DURATION = 2.0  # seconds each rate is measured over
WARM_UP = 0.3
DOCUMENTS = 500
KILLS = 5
ELECTION_DELAY = 0.5  # seconds the simulated set stays without a primary after a kill
HEARTBEAT_MS = 500


def rate(operation: Callable[[], object]) -> float:
    """Operations per second over DURATION, after WARM_UP seconds of the same."""
    return measure_rate(operation, DURATION, WARM_UP)


def overhead(rs: ReplicaSet) -> list[tuple[str, float, float]]:
    rows = []
    with (
        MongoClient[dict[str, Any]](rs.uri, heartbeatFrequencyMS=HEARTBEAT_MS) as client,
        Engine(rs.uri, heartbeatFrequencyMS=HEARTBEAT_MS) as engine,
    ):
        raw, wrapped = client.bench.raw, engine.get_database("bench").wrapped
        # Lookups use a collection of their own, so the inserts do not slow the simulator's scan.
        raw_lookup = client.bench.raw_lookup
        wrapped_lookup = engine.get_database("bench").wrapped_lookup
        raw_lookup.insert_many([{"_id": i} for i in range(DOCUMENTS)])
        engine.insert_many(wrapped_lookup, [{"_id": i} for i in range(DOCUMENTS)])
        counter = iter(range(10**9))
        rows.append(
            (
                "insert_one",
                rate(lambda: raw.insert_one({"_id": next(counter)})),
                rate(lambda: engine.insert_one(wrapped, {"_id": next(counter)})),
            )
        )
        rows.append(
            (
                "find_one by _id",
                rate(lambda: raw_lookup.find_one({"_id": 7})),
                rate(lambda: engine.find_one(wrapped_lookup, {"_id": 7})),
            )
        )
    return rows


def kill_primary(rs: ReplicaSet) -> int:
    primary = rs.primary
    if primary is None:
        raise RuntimeError("the set has no primary to kill")
    rs.kill(primary)
    return primary


def wait_for_primary(rs: ReplicaSet) -> None:
    deadline = time.monotonic() + 10
    while rs.primary is None and time.monotonic() < deadline:
        time.sleep(0.01)


def raw_recovery(rs: ReplicaSet) -> tuple[list[float], int]:
    """Seconds from a kill to the first acknowledged write, the application retrying itself."""
    times, errors = [], 0
    with MongoClient[dict[str, Any]](
        rs.uri, heartbeatFrequencyMS=HEARTBEAT_MS, retryWrites=True
    ) as client:
        things = client.bench.raw_recovery
        things.insert_one({"warm": True})
        for _ in range(KILLS):
            killed = kill_primary(rs)
            started = time.perf_counter()
            while True:
                try:
                    things.insert_one({"after": killed})
                    break
                except PyMongoError:
                    errors += 1
            times.append(time.perf_counter() - started)
            rs.restart(killed)
            wait_for_primary(rs)
    return times, errors


def engine_recovery(rs: ReplicaSet) -> tuple[list[float], int]:
    """The same, through one ``engine.insert_one`` call per kill."""
    times, errors = [], 0
    with Engine(rs.uri, heartbeatFrequencyMS=HEARTBEAT_MS) as engine:
        things = engine.get_database("bench").engine_recovery
        engine.insert_one(things, {"warm": True})
        for _ in range(KILLS):
            killed = kill_primary(rs)
            started = time.perf_counter()
            try:
                engine.insert_one(things, {"after": killed})
            except PyMongoError:
                errors += 1
            times.append(time.perf_counter() - started)
            rs.restart(killed)
            wait_for_primary(rs)
    return times, errors


def main() -> int:
    import mongomancy

    print("mongomancy benchmark: the retrying engine next to raw pymongo")
    print(f"machine   {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"date      {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"versions  Python {platform.python_version()}, pymongo {pymongo.__version__}, ", end="")
    print(f"mongomancy {mongomancy.__version__}", end="\n\n", flush=True)

    with ReplicaSet(members=3) as rs:
        print(f"{'operation (ops/s)':<28}{'pymongo':>10}{'engine':>10}{'engine/pymongo':>16}")
        for name, raw, wrapped in overhead(rs):
            print(f"{name:<28}{raw:>10,.0f}{wrapped:>10,.0f}{wrapped / raw:>15.2f}x")
        print(flush=True)

    results: dict[str, Any] = {}
    for name, run in (("pymongo, app loops", raw_recovery), ("engine.insert_one", engine_recovery)):
        with ReplicaSet(members=3) as rs:
            rs.election_delay = ELECTION_DELAY
            results[name] = run(rs)
    delay_ms = ELECTION_DELAY * 1000
    print(f"first write after a primary kill, N={KILLS}, election delay {delay_ms:.0f} ms")
    print(f"{'client':<28}{'median ms':>10}{'max ms':>10}{'errors seen':>13}")
    for name, (times, errors) in results.items():
        median, worst = statistics.median(times) * 1000, max(times) * 1000
        print(f"{name:<28}{median:>10.0f}{worst:>10.0f}{errors:>13}")
    raw_median = statistics.median(results["pymongo, app loops"][0])
    engine_median = statistics.median(results["engine.insert_one"][0])
    print(f"ratio engine/pymongo (median) {engine_median / raw_median:.2f}x")
    return 1 if results["engine.insert_one"][1] else 0


if __name__ == "__main__":
    raise SystemExit(main())

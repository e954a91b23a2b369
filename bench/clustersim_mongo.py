"""Benchmark: pymongo against a simulated three-member replica set (clustersim).

    nox -s bench
    PYTHONPATH=shared/src:packages/clustersim/src python bench/clustersim_mongo.py

Measures operations per second (ping, insert_one, find_one by _id), how long pymongo takes to
follow a new primary after ``rs.failover(i)`` in streaming and polling monitoring, and whether a
write loop survives repeated step-downs. The simulator runs in this process (a background event
loop thread), so the rates include its share of the GIL. Exits 1 if any write error reached the
application (or the stored count differs from the acknowledged one). Takes about 30 s.
"""

from __future__ import annotations

import os
import platform
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import clustersim
import pymongo
from _rates import rate as measure_rate  # bench/ is on sys.path when run as a script
from clustersim.mongo import ReplicaSet
from pymongo import MongoClient
from pymongo.errors import PyMongoError

Client = MongoClient[dict[str, Any]]

MEMBERS = 3
DURATION = 2.0  # seconds each rate is measured over
WARM_UP = 0.5  # seconds of the same operation before measuring
DOCUMENTS = 1000  # find_one looks up a random _id among these
SWITCHES = 10  # failovers timed per monitoring mode
STEP_DOWNS = 5
ELECTION_DELAY = 0.2  # seconds without a primary after each step-down in the write loop
HEARTBEAT_MS = 500  # pymongo's minimum heartbeatFrequencyMS
POLL_EVERY = 0.0005  # how often client.primary is checked
GIVE_UP = 10.0  # seconds to wait for pymongo to see a new primary
MODES = {"streaming": False, "polling": True}


def client_for(rs: ReplicaSet) -> Client:
    return Client(rs.uri, heartbeatFrequencyMS=HEARTBEAT_MS, serverSelectionTimeoutMS=10_000)


def address(rs: ReplicaSet, index: int) -> tuple[str, int]:
    host, port = rs.addresses[index].rsplit(":", 1)
    return host, int(port)


def rate(operation: Callable[[], object]) -> float:
    """Operations per second over DURATION, after WARM_UP seconds of the same."""
    return measure_rate(operation, DURATION, WARM_UP)


def throughput(rs: ReplicaSet) -> dict[str, float]:
    rng = random.Random(1)
    with client_for(rs) as client:
        db = client.bench
        db.lookup.insert_many([{"_id": i, "value": i} for i in range(DOCUMENTS)])

        def find() -> None:
            if db.lookup.find_one({"_id": rng.randrange(DOCUMENTS)}) is None:
                raise RuntimeError("find_one by _id found nothing")

        return {
            "ping": rate(lambda: client.admin.command("ping")),
            "insert_one (new collection)": rate(lambda: db.inserts.insert_one({"value": 1})),
            f"find_one (_id, {DOCUMENTS} docs)": rate(find),
        }


def wait_for_primary(client: Client, expected: tuple[str, int], started: float) -> float:
    """Milliseconds from ``started`` until pymongo's primary is ``expected``."""
    while client.primary != expected:
        if time.perf_counter() - started > GIVE_UP:
            raise RuntimeError(f"pymongo still sees {client.primary}, not {expected}")
        time.sleep(POLL_EVERY)
    return (time.perf_counter() - started) * 1000


def switch_times(rs: ReplicaSet) -> list[float]:
    """Milliseconds from ``rs.failover(i)`` until ``client.primary`` is member i, SWITCHES times."""
    rng = random.Random(2)
    times = []
    with client_for(rs) as client:
        client.admin.command("ping")
        current = rs.primary
        assert current is not None
        wait_for_primary(client, address(rs, current), time.perf_counter())
        for _ in range(SWITCHES):
            # A random pause so failovers land at random points of the heartbeat cycle.
            time.sleep(rng.uniform(0, HEARTBEAT_MS / 1000))
            current = (current + 1) % MEMBERS
            started = time.perf_counter()
            rs.failover(current)
            times.append(wait_for_primary(client, address(rs, current), started))
    return times


@dataclass
class Writes:
    attempted: int = 0
    acknowledged: int = 0
    stored: int = 0
    slowest_ms: float = 0.0
    errors: list[str] = field(default_factory=list)


def write_loop(rs: ReplicaSet) -> Writes:
    """insert_one in a loop on one thread while the primary steps down STEP_DOWNS times."""
    rs.election_delay = ELECTION_DELAY
    writes, done, rng = Writes(), threading.Event(), random.Random(3)
    with client_for(rs) as client:
        coll = client.bench.writes
        coll.insert_one({"n": 0})

        def writer() -> None:
            while not done.is_set():
                writes.attempted += 1
                started = time.perf_counter()
                try:
                    coll.insert_one({"n": writes.attempted})
                    writes.acknowledged += 1
                except PyMongoError as exc:
                    writes.errors.append(f"{type(exc).__name__}: {exc}")
                elapsed = (time.perf_counter() - started) * 1000
                writes.slowest_ms = max(writes.slowest_ms, elapsed)

        thread = threading.Thread(target=writer, name="bench-writer")
        thread.start()
        try:
            for _ in range(STEP_DOWNS):
                # Each primary outlives a heartbeat; random gaps, as a period near the heartbeat's
                # can land every election just after pymongo's polls and hide each new primary.
                time.sleep(ELECTION_DELAY + HEARTBEAT_MS / 1000 + rng.uniform(0.1, 0.5))
                if rs.step_down() is None:
                    raise RuntimeError("step_down found no primary")
            time.sleep(ELECTION_DELAY + HEARTBEAT_MS / 1000)
        finally:
            done.set()
            thread.join()
        writes.stored = coll.count_documents({}) - 1
    return writes


def main() -> int:
    print("clustersim mongo benchmark: pymongo against a simulated 3-member replica set")
    print(f"machine   {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"date      {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"versions  Python {platform.python_version()}, pymongo {pymongo.__version__}, ", end="")
    print(f"clustersim {clustersim.__version__}", end="\n\n", flush=True)
    with ReplicaSet(members=MEMBERS, name="rs0") as rs:
        rates = throughput(rs)
    print(f"{'operation (streaming set)':<32}{'ops/s':>10}")
    for name, value in rates.items():
        print(f"{name:<32}{value:>10,.0f}")
    print(flush=True)

    switches: dict[str, list[float]] = {}
    writes: dict[str, Writes] = {}
    for mode, polling in MODES.items():
        with ReplicaSet(members=MEMBERS, name="rs0", polling=polling) as rs:
            switches[mode] = switch_times(rs)
            writes[mode] = write_loop(rs)

    print(f"primary switch after failover, N={SWITCHES}, heartbeatFrequencyMS={HEARTBEAT_MS}")
    print(f"{'mode':<32}{'median ms':>10}{'max ms':>10}")
    for mode, times in switches.items():
        print(f"{mode:<32}{statistics.median(times):>10.1f}{max(times):>10.1f}")
    print()

    print(f"writes across {STEP_DOWNS} step-downs, election delay {ELECTION_DELAY * 1000:.0f} ms")
    columns = ("attempted", "acked", "errors", "stored", "slowest ms")
    print(f"{'mode':<32}" + "".join(f"{c:>11}" for c in columns))
    failed = False
    for mode, w in writes.items():
        row = (w.attempted, w.acknowledged, len(w.errors), w.stored, f"{w.slowest_ms:.0f}")
        print(f"{mode:<32}" + "".join(f"{v:>11}" for v in row))
        failed |= bool(w.errors) or w.stored != w.acknowledged
    for mode, w in writes.items():
        for error in w.errors[:5]:
            print(f"{mode} write error: {error}", file=sys.stderr)
    if failed:
        print("FAILED: a write error reached the application, or a write was lost or doubled")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: how fast mongo_observer applies changes, next to raw pymongo change streams.

    nox -s bench -- bench/mongo_observer_throughput.py
    PYTHONPATH=shared/src:packages/clustersim/src:packages/mongo_observer/src \
        python bench/mongo_observer_throughput.py

* In process: oplog updates (``$v: 2`` diffs) applied per second by ``ReactiveCollection``.
* End to end on a simulated one-member replica set (same process, same event loop): inserts
  written by one task and consumed by (a) a raw pymongo change stream and (b) an ``Observer``
  feeding a ``ReactiveCollection``; events per second and p50/p99 latency (write to handled).
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pymongo
from bson import Timestamp
from clustersim.mongo import ReplicaSet
from mongo_observer import Observer, OperationHandler, ReactiveCollection
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

APPLIED = 20_000
EVENTS = 2_000


async def apply_rate() -> float:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient("mongodb://127.0.0.1:1/")
    try:
        replica = ReactiveCollection(client.bench.things)  # never connects: no snapshot
        ops = [
            {
                "ts": Timestamp(1, i),
                "op": "u",
                "ns": "bench.things",
                "o2": {"_id": 1},
                "o": {"$v": 2, "diff": {"u": {"n": i}, "sinner": {"i": {"k": i}}}},
            }
            for i in range(APPLIED)
        ]
        document = {"_id": 1, "n": 0, "inner": {}}
        await replica.on_insert({"op": "i", "ns": "bench.things", "o": document})
        started = time.perf_counter()
        for op in ops:
            await replica.handle(op)
        return APPLIED / (time.perf_counter() - started)
    finally:
        await client.close()


class Latencies(OperationHandler):
    def __init__(self, done: asyncio.Event) -> None:
        super().__init__()
        self.samples: list[float] = []
        self.done = done

    async def on_insert(self, operation: Mapping[str, Any]) -> None:
        self.samples.append(time.perf_counter() - operation["o"]["t"])
        if len(self.samples) == EVENTS:
            self.done.set()

    async def on_update(self, operation: Mapping[str, Any]) -> None:
        pass

    async def on_delete(self, operation: Mapping[str, Any]) -> None:
        pass


async def write(collection: Any) -> None:
    for i in range(EVENTS):
        await collection.insert_one({"_id": i, "t": time.perf_counter()})


async def raw_stream(uri: str) -> tuple[float, list[float]]:
    client: AsyncMongoClient[dict[str, Any]]
    async with AsyncMongoClient(uri) as client:
        collection: AsyncCollection[dict[str, Any]] = client.bench.raw
        samples: list[float] = []
        async with await collection.watch() as stream:
            started = time.perf_counter()
            writer = asyncio.create_task(write(collection))
            async for event in stream:
                samples.append(time.perf_counter() - event["fullDocument"]["t"])
                if len(samples) == EVENTS:
                    break
            await writer
            return EVENTS / (time.perf_counter() - started), samples


async def observed(uri: str) -> tuple[float, list[float]]:
    client: AsyncMongoClient[dict[str, Any]]
    async with AsyncMongoClient(uri) as client:
        collection: AsyncCollection[dict[str, Any]] = client.bench.observed
        done = asyncio.Event()
        handler = Latencies(done)
        async with await Observer.init_async(operation_handler=handler, source=collection) as obs:
            task = asyncio.create_task(obs.observe_changes())
            started = time.perf_counter()
            await write(collection)
            await done.wait()
            elapsed = time.perf_counter() - started
            obs.stop()
            await task
        return EVENTS / elapsed, handler.samples


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


async def main() -> int:
    import mongo_observer

    print("mongo_observer benchmark: applying and consuming changes")
    print(f"machine   {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"date      {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"versions  Python {platform.python_version()}, pymongo {pymongo.__version__}, ", end="")
    print(f"mongo_observer {mongo_observer.__version__}", end="\n\n", flush=True)
    rate = await apply_rate()
    print(f"ReactiveCollection, $v:2 updates applied in process: {rate:,.0f}/s\n", flush=True)

    async with ReplicaSet(members=1, name="rs0") as rs:
        raw_rate, raw_samples = await raw_stream(rs.uri)
        obs_rate, obs_samples = await observed(rs.uri)
    print(f"end to end, {EVENTS} inserts on a simulated set (writer and consumer on one loop)")
    print(f"{'consumer':<34}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for name, value, samples in (
        ("raw pymongo change stream", raw_rate, raw_samples),
        ("Observer (change streams)", obs_rate, obs_samples),
    ):
        p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
        print(f"{name:<34}{value:>10,.0f}{p50:>9.1f}{p99:>9.1f}")
    print(f"ratio Observer/raw events per second: {obs_rate / raw_rate:.2f}x")
    print(f"median latency raw {statistics.median(raw_samples) * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

"""Steps 2-4: mongomancy's schema and write loop through two failovers, mirrored live by
mongo_observer's ReactiveCollection, and the replica compared with the collection at the end.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from typing import Any

import pymo
from mongo_observer import Change, Observer, ReactiveCollection
from mongomancy import (
    AsyncDatabase,
    AsyncEngine,
    PrimarySwitch,
)
from pymo import SERVER_STATE_SELECTORS

from demo.console import Narrator, StepView
from demo.faults import MongoFaults, primary_of
from demo.records import DemoReport, Failover, ReplicaRecord, WritesRecord, ms
from demo.schema_step import SCHEMA, create_all_twice
from demo.summary import count_differences
from resilient_topology.hooks import Reconnecting

__all__ = ["run_mongo"]

WRITE_BOUND = 20.0  # seconds one write may take, retries included, before it counts as failed
CONVERGE_BOUND = 10.0  # seconds the replica may take to catch up after the last write
PACE = 0.01  # seconds between writes, so the live view can be followed
CLIENT_OPTIONS: dict[str, Any] = {"heartbeatFrequencyMS": 500, "serverSelectionTimeoutMS": 10_000}


@dataclass
class _Timing:
    failover: Failover
    at: float


async def run_mongo(
    narrator: Narrator, uri: str, faults: MongoFaults, report: DemoReport, writes: int
) -> None:
    """Fills ``report.schema``, ``report.writes`` and ``report.replica``, in that order."""
    database = f"demo_{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        engine = AsyncEngine(
            uri, write_retry_delay=0.02, retry_deadline=WRITE_BOUND, **CLIENT_OPTIONS
        )
        stack.push_async_callback(engine.dispose)
        db = AsyncDatabase(database, logging.getLogger("demo.mongomancy"), engine, *SCHEMA)
        stack.push_async_callback(_drop, engine, database)
        report.schema = await create_all_twice(narrator, db, database)
        watcher = await pymo.async_mongo_client(
            uri, state_selectors=SERVER_STATE_SELECTORS.Writable, **CLIENT_OPTIONS
        )
        stack.push_async_callback(watcher.close)
        collection = watcher[database]["orders"]
        replica = ReactiveCollection(collection)
        observer = await Observer.init_async(
            operation_handler=replica, source=collection, on_resync=replica.resync
        )
        stack.push_async_callback(observer.close)
        changes: list[str] = []

        def on_change(change: Change) -> None:
            changes.append(change.kind)

        stack.callback(replica.subscribe(on_change))
        await replica.resync()  # the snapshot after the position: no write falls in between
        observing = asyncio.create_task(observer.observe_changes(), name="demo-observer")
        stack.push_async_callback(_stop, observer, observing)
        report.writes = await _write_loop(
            narrator, engine, db, faults, observer, replica, changes, writes
        )
        report.replica = await _compare(narrator, collection, replica, changes, observing)


async def _write_loop(
    narrator: Narrator,
    engine: AsyncEngine,
    db: AsyncDatabase,
    faults: MongoFaults,
    observer: Observer,
    replica: ReactiveCollection,
    changes: list[str],
    count: int,
) -> WritesRecord:
    fault_at, recover_at = (count // 3, 2 * count // 3), (count // 2, 5 * count // 6)
    with narrator.step(
        "mongomancy: a write loop through two primary failovers, mirrored live by mongo_observer",
        doing=f"{count} orders inserted one by one through AsyncEngine (an update marks every "
        f"4th as paid); the primary is taken away before orders {fault_at[0]} and "
        f"{fault_at[1]}. A ReactiveCollection follows the collection through a change stream.",
        expect="the engine waits for each new primary and retries, so every write is "
        "acknowledged and none is applied twice; its PrimarySwitch hooks report each switch; the "
        "replica keeps up and resumes after each failover on its own.",
        columns=("time", "event", "detail"),
    ) as view:
        switches: list[PrimarySwitch] = []
        legacy_calls: list[object] = []

        async def on_switch(event: PrimarySwitch) -> None:
            switches.append(event)
            old, new = (f"{a.host}:{a.port}" if a else "none" for a in (event.previous, event.new))
            view.row(
                f"{view.elapsed():.2f}s", f"hook PrimarySwitch({event.reason})", f"{old} → {new}"
            )
            view.note(f"hook: PrimarySwitch reason={event.reason} previous={old} new={new}")

        def on_reconnecting(event: Reconnecting) -> None:
            view.row(f"{view.elapsed():.2f}s", "observer re-opens", f"attempt {event.attempt}")

        engine.hooks.register(PrimarySwitch, on_switch)
        engine.register_hook(legacy_calls.append)
        observer.hooks.register(Reconnecting, on_reconnecting)
        timings: list[_Timing] = []
        acked: list[int] = []
        paid: list[int] = []
        attempted = updates = 0
        orders = db["orders"]
        for n in range(count):
            if n in fault_at:
                at = time.monotonic()
                done, skipped = await faults.inject()
                timings.append(_Timing(Failover("MongoDB", done, skipped=skipped), at))
                view.row(
                    f"{view.elapsed():.2f}s", "fault", done + (f" ({skipped})" if skipped else "")
                )
                view.note(f"before order {n}: {done}" + (f" — {skipped}" if skipped else ""))
            if n in recover_at and (undone := await faults.recover()):
                view.row(f"{view.elapsed():.2f}s", "recovery", undone)
            attempted += 1
            order: dict[str, Any] = {
                "seq": n,
                "customer": f"c{n % 7}",
                "total": n * 3,
                "paid": False,
            }
            landed = await _write(view, engine.insert_one(orders, order), f"order {n}")
            if landed:
                acked.append(n)
                _resumed(view, timings)
            if n % 4 == 0 and landed:
                attempted += 1
                updates += 1
                update = engine.update_one(orders, {"_id": order["_id"]}, {"$set": {"paid": True}})
                if await _write(view, update, f"paid {n}"):
                    paid.append(n)
            view.progress(
                f"writing orders, primary {primary_of(engine.client) or 'being elected'}",
                completed=n + 1,
                total=count,
                detail=f"replica holds {len(replica)} documents",
            )
            await asyncio.sleep(PACE)
        async with asyncio.timeout(WRITE_BOUND):
            stored = [d["seq"] async for d in engine.find(orders, {"seq": {"$exists": True}})]
            paid_stored = [d["seq"] async for d in engine.find(orders, {"paid": True})]
        failovers = tuple(_detected(t, switches) for t in timings)
        for f in failovers:
            view.note(f.describe())
        view.note(f"legacy hook(engine) called {len(legacy_calls)} times (once per new primary)")
        record = WritesRecord(
            attempted=attempted,
            acknowledged=tuple(acked),
            stored=tuple(stored),
            updates_attempted=updates,
            updates_acknowledged=tuple(paid),
            updates_stored=tuple(paid_stored),
            failovers=failovers,
            planned_failovers=len(fault_at),
        )
        view.finish(
            f"{attempted} writes attempted, {record.acknowledged_count} acknowledged, "
            f"{record.lost} lost, {record.duplicated} duplicated; {len(changes)} changes reached "
            "the replica while writing",
            record.acknowledged_count == attempted and record.lost == record.duplicated == 0,
        )
    return record


async def _write(view: StepView, operation: Any, what: str) -> bool:
    """Await one engine write within its bound; a failure is shown and counted, not raised."""
    try:
        async with asyncio.timeout(WRITE_BOUND):
            await operation
    except Exception as exc:
        view.note(f"{what} NOT acknowledged: {type(exc).__name__}: {exc}", style="red")
        return False
    return True


def _resumed(view: StepView, timings: list[_Timing]) -> None:
    now = time.monotonic()
    for i, t in enumerate(timings):
        if t.failover.resumed is None and t.failover.skipped is None:
            t.failover = replace(t.failover, resumed=now - t.at)
            view.row(
                f"{view.elapsed():.2f}s",
                "first write acknowledged",
                f"{ms(now - t.at)} after fault {i + 1}",
            )


def _detected(timing: _Timing, switches: list[PrimarySwitch]) -> Failover:
    seen = [s.at - timing.at for s in switches if s.new is not None and s.at >= timing.at]
    return replace(timing.failover, detected=min(seen, default=None))


async def _compare(
    narrator: Narrator,
    collection: Any,
    replica: ReactiveCollection,
    changes: list[str],
    observing: asyncio.Task[None],
) -> ReplicaRecord:
    with narrator.step(
        "mongo_observer: the replica equals the collection",
        doing="read the whole collection from the primary and compare it, document by document, "
        "with the ReactiveCollection kept in memory by the observer.",
        expect=f"the replica converges within {CONVERGE_BOUND:.0f} s: same documents, same fields.",
        columns=("side", "documents", "paid"),
    ) as view:
        started = time.monotonic()
        async with asyncio.timeout(2 * CONVERGE_BOUND):  # a find waits for a primary at most 10 s
            while True:
                server: list[Mapping[str, Any]] = await collection.find({}).to_list()
                differences = count_differences(list(replica), server)
                view.progress("comparing", detail=f"{differences} documents differ")
                late = time.monotonic() - started > CONVERGE_BOUND
                if not differences or observing.done() or late:
                    break  # equal, or no longer able to become equal, or out of time
                await asyncio.sleep(0.05)
        if observing.done() and not observing.cancelled() and observing.exception() is not None:
            view.note(f"the observer stopped with {observing.exception()!r}", style="red")
        record = ReplicaRecord(
            replica_size=len(replica),
            collection_size=len(server),
            differences=differences,
            changes_applied=len(changes),
        )
        view.row("collection", str(len(server)), str(sum(1 for d in server if d.get("paid"))))
        view.row("replica", str(len(replica)), str(sum(1 for d in replica if d.get("paid"))))
        view.finish(
            f"{record.differences} documents differ after {ms(time.monotonic() - started)}",
            record.differences == 0 and record.replica_size == record.collection_size,
        )
    return record


async def _stop(observer: Observer, task: asyncio.Task[None]) -> None:
    observer.stop()
    async with asyncio.timeout(CONVERGE_BOUND):
        await asyncio.gather(task, return_exceptions=True)


async def _drop(engine: AsyncEngine, database: str) -> None:
    """The demo's database goes away with it; a failure to drop is not the demo's result."""
    try:
        async with asyncio.timeout(WRITE_BOUND):
            await engine.drop_database(database)
    except Exception as exc:
        logging.getLogger("demo").warning("could not drop %s: %s", database, exc)

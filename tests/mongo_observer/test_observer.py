"""Observer against the simulated replica set, through the real ``AsyncMongoClient``.

Both sources (``oplog``: tailing ``local.oplog.rs``; ``stream``: change streams) run the same
behavioural tests. Waits are bounded by ``asyncio.timeout`` guards that only turn a hang into a
failure; no test asserts how long something took.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pymongo.errors
import pytest
from bson import Timestamp
from clustersim.mongo import ReplicaSet
from mongo_observer.checkpoints import CollectionCheckpointStore, MemoryCheckpointStore
from mongo_observer.errors import ObserverError
from mongo_observer.handlers import OperationHandler, ShouldStopObservation
from mongo_observer.observer import Observer
from mongo_observer.reactive import ReactiveCollection
from motor import motor_asyncio
from pymongo import AsyncMongoClient
from pymongo.errors import ConnectionFailure, DuplicateKeyError, PyMongoError

from resilient_topology.hooks import Reconnecting

FAST: dict[str, Any] = {"heartbeatFrequencyMS": 500, "serverSelectionTimeoutMS": 10_000}
NS = "db.things"
GUARD = 30  # seconds before a stuck wait fails the test

Client = AsyncMongoClient[dict[str, Any]]


class Boom(Exception):
    pass


class Recorder(OperationHandler):
    """Records operations; optionally fails on, or stops after, chosen ones."""

    def __init__(
        self,
        fail: Callable[[dict[str, Any]], bool] | None = None,
        stop_after: int | None = None,
    ) -> None:
        super().__init__()
        self.ops: list[dict[str, Any]] = []
        self.fail = fail
        self.stop_after = stop_after

    async def _record(self, op: Any) -> None:
        if self.fail is not None and self.fail(op):
            raise Boom(op)
        self.ops.append(dict(op))
        if self.stop_after is not None and len(self.ops) >= self.stop_after:
            raise ShouldStopObservation

    async def on_insert(self, operation: Mapping[str, Any]) -> None:
        await self._record(operation)

    async def on_update(self, operation: Mapping[str, Any]) -> None:
        await self._record(operation)

    async def on_delete(self, operation: Mapping[str, Any]) -> None:
        await self._record(operation)

    def ids(self) -> list[Any]:
        return [op["o2"]["_id"] if op["op"] == "u" else op["o"]["_id"] for op in self.ops]


@pytest.fixture
async def rs() -> AsyncIterator[ReplicaSet]:
    async with ReplicaSet(members=1, name="rs0") as replica_set:
        yield replica_set


@pytest.fixture
async def client(rs: ReplicaSet) -> AsyncIterator[Client]:
    mongo: Client = AsyncMongoClient(rs.uri, **FAST)
    try:
        yield mongo
    finally:
        await mongo.close()


@pytest.fixture(params=["oplog", "stream"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def make(
    client: Client | motor_asyncio.AsyncIOMotorClient[Any],
    mode: str,
    handler: OperationHandler,
    **kwargs: Any,
) -> Observer:
    kwargs.setdefault("namespace_filter", NS)
    if mode == "oplog":
        return await Observer.init_async(client.local["oplog.rs"], handler, **kwargs)
    return await Observer.init_async(operation_handler=handler, source=client, **kwargs)


async def wait_for(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(GUARD):
        while not predicate():  # noqa: ASYNC110 - the predicates read plain state, no event exists
            await asyncio.sleep(0.01)


async def collect(observer: Observer, handler: Recorder, count: int) -> None:
    """Observe until ``handler`` holds ``count`` operations, then stop."""
    task = asyncio.create_task(observer.observe_changes())
    try:
        await wait_for(lambda: len(handler.ops) >= count or task.done())
    finally:
        observer.stop()
        await task


async def insert_docs(client: Client, ids: range) -> None:
    for i in ids:
        await client.db.things.insert_one({"_id": i, "x": i})


# --- shapes and filtering -----------------------------------------------------------------


async def test_crud_operations_arrive_in_order_with_their_shapes(client: Client, mode: str) -> None:
    handler = Recorder()
    async with await make(client, mode, handler) as observer:
        coll = client.db.things
        await coll.insert_one({"_id": 1, "x": 1})
        await coll.update_one({"_id": 1}, {"$set": {"x": 2}})
        await coll.replace_one({"_id": 1}, {"y": 3})
        await coll.delete_one({"_id": 1})
        await collect(observer, handler, 4)

    assert [op["op"] for op in handler.ops] == ["i", "u", "u", "d"]
    insert, update, replace, delete = handler.ops
    assert all(op["ns"] == NS and isinstance(op["ts"], Timestamp) for op in handler.ops)
    assert [op["ts"] for op in handler.ops] == sorted(op["ts"] for op in handler.ops)
    assert insert["o"] == {"_id": 1, "x": 1}
    assert update["o2"] == {"_id": 1}
    if mode == "oplog":
        assert update["o"]["$v"] == 2
    else:
        assert set(update["o"]) == {"$v", "updateDescription"}
        assert update["o"]["$v"] == "cs"
        assert update["o"]["updateDescription"]["updatedFields"] == {"x": 2}
        assert not update["o"]["updateDescription"]["removedFields"]
        assert all("resume_token" in op for op in handler.ops)
    assert replace["o"] == {"_id": 1, "y": 3}
    assert replace["o2"] == {"_id": 1}
    assert delete["o"] == {"_id": 1}
    assert handler.last_timestamp == delete["ts"]


async def test_namespace_filter_keeps_other_collections_out(client: Client, mode: str) -> None:
    handler = Recorder()
    async with await make(client, mode, handler) as observer:
        await client.db.other.insert_one({"_id": "other"})
        await client.other.things.insert_one({"_id": "other db"})
        await client.db.things.insert_one({"_id": "mine"})
        await collect(observer, handler, 1)
    assert handler.ids() == ["mine"]


async def test_without_filter_every_collection_arrives(client: Client, mode: str) -> None:
    handler = Recorder()
    async with await make(client, mode, handler, namespace_filter=None) as observer:
        await client.db.other.insert_one({"_id": "a"})
        await client.db.things.insert_one({"_id": "b"})
        await collect(observer, handler, 2)
    assert [(op["ns"], op["o"]["_id"]) for op in handler.ops] == [
        ("db.other", "a"),
        ("db.things", "b"),
    ]


async def test_apply_ops_are_expanded_and_filtered_by_inner_namespace(
    rs: ReplicaSet, client: Client, mode: str
) -> None:
    # clustersim has no transactions through the driver; its deployment logs an applyOps entry
    # on admin.$cmd exactly like a committed transaction (the oplog and change streams read it).
    handler = Recorder()
    async with await make(client, mode, handler) as observer:
        inner = [
            {"op": "i", "ns": NS, "o": {"_id": "t1"}},
            {"op": "i", "ns": "db.other", "o": {"_id": "elsewhere"}},
            {"op": "i", "ns": NS, "o": {"_id": "t2"}},
        ]
        rs.deployment.record_command("admin", {"applyOps": inner})
        await client.db.things.insert_one({"_id": "after"})
        await collect(observer, handler, 3)
    assert handler.ids() == ["t1", "t2", "after"]
    assert handler.ops[0]["ts"] == handler.ops[1]["ts"] < handler.ops[2]["ts"]


# --- stopping and errors ----------------------------------------------------------------------


async def test_should_stop_observation_ends_observe_changes(client: Client, mode: str) -> None:
    handler = Recorder(stop_after=2)
    async with await make(client, mode, handler) as observer:
        await insert_docs(client, range(5))
        async with asyncio.timeout(GUARD):
            await observer.observe_changes()
    assert handler.ids() == [0, 1]


async def test_stop_callback_and_idle_callback(client: Client, mode: str) -> None:
    calls = 0

    async def idle() -> None:
        nonlocal calls
        calls += 1
        raise ShouldStopObservation

    handler = Recorder()
    async with await make(client, mode, handler, on_nothing_to_fetch_on_cursor=idle) as observer:
        async with asyncio.timeout(GUARD):
            await observer.observe_changes()
    assert calls == 1


async def test_handler_error_is_raised_and_redelivered_from_checkpoint(
    client: Client, mode: str
) -> None:
    store = MemoryCheckpointStore()
    failing = Recorder(fail=lambda op: op["o"]["_id"] == 2)
    async with await make(client, mode, failing, checkpoint_store=store) as observer:
        await insert_docs(client, range(4))
        with pytest.raises(Boom):
            async with asyncio.timeout(GUARD):
                await observer.observe_changes()
        saved = store.position
    assert failing.ids() == [0, 1]
    assert saved == observer.position

    healthy = Recorder()
    async with await make(client, mode, healthy, checkpoint_store=store) as again:
        await collect(again, healthy, 2)
    assert healthy.ids() == [2, 3]  # the failed operation again, nothing before it


async def test_on_error_true_skips_the_failed_operation(client: Client, mode: str) -> None:
    skipped: list[Any] = []

    def on_error(op: Any, exc: Exception) -> bool:
        skipped.append(op["o"]["_id"])
        return True

    handler = Recorder(fail=lambda op: op["o"]["_id"] == 1)
    async with await make(client, mode, handler, on_error=on_error) as observer:
        await insert_docs(client, range(3))
        await collect(observer, handler, 2)
    assert (handler.ids(), skipped) == ([0, 2], [1])


async def test_restart_from_collection_checkpoint_misses_and_repeats_nothing(
    client: Client, mode: str
) -> None:
    def store() -> CollectionCheckpointStore:
        return CollectionCheckpointStore(client.meta.checkpoints, f"things-{mode}")

    first = Recorder()
    async with await make(client, mode, first, checkpoint_store=store()) as observer:
        await insert_docs(client, range(3))
        await collect(observer, first, 3)
    await insert_docs(client, range(3, 6))  # while nobody observes

    second = Recorder()
    async with await make(client, mode, second, checkpoint_store=store()) as observer:
        await insert_docs(client, range(6, 8))
        await collect(observer, second, 5)
    assert first.ids() == [0, 1, 2]
    assert second.ids() == [3, 4, 5, 6, 7]


# --- failures of the source ------------------------------------------------------------------


async def write_through_failover(client: Client, rs: ReplicaSet, count: int, kill_at: int) -> None:
    victim = rs.primary
    assert victim is not None
    for i in range(count):
        if i == kill_at:
            await rs.akill(victim)
        if i == kill_at + 3:
            await rs.arestart(victim)
        async with asyncio.timeout(GUARD):
            while True:
                try:
                    await client.db.things.insert_one({"_id": i})
                    break
                except DuplicateKeyError:  # the first attempt was applied after all
                    break
                except ConnectionFailure:
                    await asyncio.sleep(0.05)


async def test_primary_kill_every_operation_exactly_once_in_order(mode: str) -> None:
    async with ReplicaSet(members=3, name="rs0") as rs:
        client: Client = AsyncMongoClient(rs.uri, **FAST)
        try:
            handler = Recorder()
            announced: list[Reconnecting] = []
            async with await make(client, mode, handler) as observer:
                observer.hooks.register(Reconnecting, announced.append)
                task = asyncio.create_task(observer.observe_changes())
                await write_through_failover(client, rs, 20, kill_at=7)
                await wait_for(lambda: len(handler.ops) >= 20 or task.done())
                await asyncio.sleep(0.2)  # room for a wrongly repeated operation to show up
                observer.stop()
                await task
                reopened = observer.cursors_opened
        finally:
            await client.close()
    assert handler.ids() == list(range(20))
    if mode == "oplog":  # (pymongo re-opens change streams itself, out of our count)
        assert reopened >= 2
        # each re-open was announced through the core's hook, with the error that caused it
        # (a pause cut short by stop() was announced with no re-open after it)
        assert reopened - 1 <= len(announced) <= reopened
        assert all(event.attempt >= 2 and event.delay >= 0 for event in announced)
        assert any(isinstance(event.error, PyMongoError) for event in announced)


async def test_motor_observer_resumes_through_primary_kill(mode: str) -> None:
    """motor raises pymongo's errors from its own cursors; the observer resumes the same way."""
    async with ReplicaSet(members=3, name="rs0") as rs:
        writer: Client = AsyncMongoClient(rs.uri, **FAST)
        motor = motor_asyncio.AsyncIOMotorClient(rs.uri, **FAST)
        try:
            handler = Recorder()
            async with await make(motor, mode, handler) as observer:
                task = asyncio.create_task(observer.observe_changes())
                await write_through_failover(writer, rs, 12, kill_at=4)
                await wait_for(lambda: len(handler.ops) >= 12 or task.done())
                await asyncio.sleep(0.2)  # room for a wrongly repeated operation to show up
                observer.stop()
                await task
        finally:
            await writer.close()
            await asyncio.to_thread(motor.close)  # blocks on the sync driver: off the loop
    assert handler.ids() == list(range(12))


async def test_history_lost_calls_on_resync_once_and_continues(
    rs: ReplicaSet, client: Client, mode: str
) -> None:
    store = MemoryCheckpointStore()
    first = Recorder()
    async with await make(client, mode, first, checkpoint_store=store) as observer:
        await insert_docs(client, range(1))
        await collect(observer, first, 1)
    await insert_docs(client, range(1, 4))
    newest = rs.deployment.oplog.last_ts
    assert newest is not None
    assert rs.deployment.oplog.truncate_before(newest) > 0  # our position is gone

    resyncs = 0
    second = Recorder()

    async def on_resync() -> None:
        nonlocal resyncs
        resyncs += 1
        second.ops.append({"op": "resync", "o": {"_id": "resync"}})

    async with await make(
        client, mode, second, checkpoint_store=store, on_resync=on_resync
    ) as observer:
        task = asyncio.create_task(observer.observe_changes())
        await wait_for(lambda: resyncs == 1 or task.done())
        # writes before the resync are in its snapshot; the ones after must be delivered
        await insert_docs(client, range(4, 6))
        await wait_for(lambda: len(second.ops) >= 3 or task.done())
        observer.stop()
        await task
    assert resyncs == 1
    assert second.ids() == ["resync", 4, 5]


async def test_pause_before_reopening_is_awaited(client: Client, mode: str) -> None:
    handler = Recorder()
    async with await make(client, mode, handler) as observer:
        observer.sleep_time = 0.05
        command = "find" if mode == "oplog" else "aggregate"
        await client.admin.command(
            {
                "configureFailPoint": "failCommand",
                "mode": "alwaysOn",
                "data": {"failCommands": [command], "errorCode": 91},
            }
        )
        task = asyncio.create_task(observer.observe_changes())
        await asyncio.sleep(1.0)
        opened = observer.cursors_opened
        await client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
        await client.db.things.insert_one({"_id": "after"})
        await wait_for(lambda: len(handler.ops) >= 1 or task.done())
        observer.stop()
        await task
    # 0.05 s doubling to a 5 s cap gives a handful of attempts per second; a hot loop thousands.
    assert 2 <= opened <= 10
    assert handler.ids() == ["after"]


async def test_a_permanent_error_ends_observation(client: Client, mode: str) -> None:
    # Unauthorized would fail again on every re-open: raised, not retried forever.
    async with await make(client, mode, Recorder()) as observer:
        command = "find" if mode == "oplog" else "aggregate"
        await client.admin.command(
            {
                "configureFailPoint": "failCommand",
                "mode": "alwaysOn",
                "data": {"failCommands": [command], "errorCode": 13},
            }
        )
        try:
            with pytest.raises(pymongo.errors.OperationFailure) as caught:
                await asyncio.wait_for(observer.observe_changes(), 10)
        finally:
            await client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    assert caught.value.code == 13


class Gated(Recorder):
    """A handler that cannot go on until the test opens the gate: the slowest consumer."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def _record(self, op: Any) -> None:
        await self.gate.wait()
        await super()._record(op)


async def test_a_slow_handler_holds_the_reader_back_without_losing_order(
    client: Client, mode: str
) -> None:
    handler = Gated()
    async with await make(client, mode, handler, queue_size=3) as observer:
        task = asyncio.create_task(observer.observe_changes())
        await insert_docs(client, range(15))
        await wait_for(lambda: observer.backlog == 3)
        await asyncio.sleep(0.2)  # the reader had time to read more: it must be waiting instead
        assert observer.backlog == 3
        assert handler.ops == []
        handler.gate.set()
        await wait_for(lambda: len(handler.ops) == 15 or task.done())
        assert observer.backlog <= 3
        observer.stop()
        await task
    assert handler.ids() == list(range(15))
    assert observer.backlog == 0


# --- lifecycle --------------------------------------------------------------------------------


def reader_tasks() -> list[asyncio.Task[Any]]:
    return [
        t
        for t in asyncio.all_tasks()
        if not t.done() and t.get_coro().__qualname__.startswith("Observer._read")  # type: ignore[union-attr]
    ]


async def test_close_leaves_no_task_and_is_idempotent(client: Client, mode: str) -> None:
    handler = Recorder()
    observer = await make(client, mode, handler)
    task = asyncio.create_task(observer.observe_changes())
    await wait_for(lambda: bool(reader_tasks()))
    await observer.close()
    await observer.close()
    await task
    assert reader_tasks() == []


async def test_cancelling_the_caller_propagates_and_stops_the_reader(
    client: Client, mode: str
) -> None:
    handler = Recorder()
    async with await make(client, mode, handler) as observer:
        task = asyncio.create_task(observer.observe_changes())
        await wait_for(lambda: bool(reader_tasks()))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert reader_tasks() == []


# --- integration ------------------------------------------------------------------------------


async def test_reactive_collection_follows_the_server_through_the_observer(
    client: Client, mode: str
) -> None:
    coll = client.db.things
    await coll.insert_many([{"_id": 1, "a": {"b": [1, 2]}}, {"_id": 2, "n": 0}])
    seen: list[str] = []
    replica = ReactiveCollection(coll)
    replica.subscribe(lambda change: seen.append(change.kind))
    # position first (init_async), then the snapshot: nothing written in between is lost
    async with await make(client, mode, replica, on_resync=replica.resync) as observer:
        await coll.insert_one({"_id": 3, "x": "between"})
        await replica.resync()
        task = asyncio.create_task(observer.observe_changes())
        await coll.update_one({"_id": 1}, {"$push": {"a.b": 3}, "$set": {"c": True}})
        await coll.update_one({"_id": 2}, {"$inc": {"n": 5}, "$unset": {"missing": 1}})
        await coll.replace_one({"_id": 3}, {"x": "replaced"})
        await coll.delete_one({"_id": 2})
        await coll.insert_one({"_id": "last"})
        await wait_for(lambda: "last" in replica or task.done())
        observer.stop()
        await task
        server = {doc["_id"]: doc for doc in await coll.find().to_list()}
    assert {doc["_id"]: doc for doc in replica} == server


async def test_stream_on_a_collection_survives_its_drop(client: Client) -> None:
    handler = Recorder()
    observer = await Observer.init_async(
        operation_handler=handler, source=client.db.things, namespace_filter=None
    )
    async with observer:
        await client.db.things.insert_one({"_id": "before"})
        await client.db.things.drop()  # invalidates the stream; start_after goes on
        await client.db.things.insert_one({"_id": "after"})
        await collect(observer, handler, 2)
    assert handler.ids() == ["before", "after"]


async def test_checkpoint_every_n_and_flush_on_stop(client: Client, mode: str) -> None:
    store = MemoryCheckpointStore()
    handler = Recorder()
    async with await make(client, mode, handler, checkpoint_store=store, checkpoint_every=3) as obs:
        await insert_docs(client, range(4))
        await collect(obs, handler, 4)
        assert store.position == obs.position  # the fourth was flushed when observation ended
    assert store.saves <= 3


async def test_argument_and_checkpoint_checks(client: Client) -> None:
    handler = Recorder()
    with pytest.raises(ObserverError):
        await Observer.init_async(operation_handler=handler)
    with pytest.raises(ObserverError):
        await Observer.init_async(client.local["oplog.rs"], handler, source=client)
    token_store = MemoryCheckpointStore({"_data": "not a timestamp"})
    with pytest.raises(ObserverError):
        await Observer.init_async(client.local["oplog.rs"], handler, checkpoint_store=token_store)
    observer = await Observer.init_async(client.local["oplog.rs"], handler)
    await observer.close()
    with pytest.raises(ObserverError):
        await observer.observe_changes()


@pytest.mark.parametrize("mode", ["oplog", "stream"])
async def test_motor_client_works_too(rs: ReplicaSet, mode: str) -> None:
    motor = motor_asyncio.AsyncIOMotorClient(rs.uri, **FAST)
    try:
        handler = Recorder()
        async with await make(motor, mode, handler) as observer:
            await motor.db.things.insert_one({"_id": 1})
            await motor.db.things.update_one({"_id": 1}, {"$set": {"y": 1}})
            await collect(observer, handler, 2)
        assert [op["op"] for op in handler.ops] == ["i", "u"]
    finally:
        # motor's close() blocks the calling thread on the synchronous driver, while the
        # simulator serves on this loop: close from a thread so it can be answered.
        await asyncio.to_thread(motor.close)

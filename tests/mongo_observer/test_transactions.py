"""Transactions logged over several oplog entries: released whole when committed, never aborted.

The assembler is pure and tested on entries shaped as the server logs them; the observer is then
run against the simulator's oplog with the same shapes injected (the simulator itself writes no
``applyOps``), read by the real ``AsyncMongoClient``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from bson import Binary, Int64, Timestamp
from clustersim.mongo import ReplicaSet
from mongo_observer.checkpoints import MemoryCheckpointStore
from mongo_observer.errors import MalformedChange
from mongo_observer.handlers import OperationHandler
from mongo_observer.observer import Observer
from mongo_observer.transactions import TransactionAssembler
from pymongo import AsyncMongoClient

NS = "db.things"
GUARD = 30


def session(n: int) -> dict[str, Any]:
    return {"id": Binary(uuid.UUID(int=n).bytes, 4), "uid": Binary(b"\x00" * 32)}


def insert(i: int) -> dict[str, Any]:
    return {"op": "i", "ns": NS, "o": {"_id": i}}


def txn_entry(second: int, o: dict[str, Any], lsid: int = 1, txn: int = 1) -> dict[str, Any]:
    return {
        "ts": Timestamp(second, 1),
        "op": "c",
        "ns": "admin.$cmd",
        "o": o,
        "lsid": session(lsid),
        "txnNumber": Int64(txn),
    }


def plain(second: int, i: int) -> dict[str, Any]:
    return {**insert(i), "ts": Timestamp(second, 1)}


def ids(ops: list[dict[str, Any]]) -> list[Any]:
    return [op["o"]["_id"] for op in ops]


# --- the pure assembler ---------------------------------------------------------------------


def test_large_transaction_is_released_at_its_last_entry_with_its_timestamp() -> None:
    assembler = TransactionAssembler()
    first = assembler.feed(txn_entry(1, {"applyOps": [insert(1), insert(2)], "partialTxn": True}))
    assert (first.ops, first.checkpoint) == ([], None)
    last = assembler.feed(txn_entry(2, {"applyOps": [insert(3)], "count": 3}))
    assert ids(last.ops) == [1, 2, 3]
    assert {op["ts"] for op in last.ops} == {Timestamp(2, 1)}
    assert last.checkpoint == Timestamp(2, 1)
    assert assembler.open_transactions == 0


def test_prepared_transaction_waits_for_commit() -> None:
    assembler = TransactionAssembler()
    assert assembler.feed(txn_entry(1, {"applyOps": [insert(1)], "partialTxn": True})).ops == []
    assert assembler.feed(txn_entry(2, {"applyOps": [insert(2)], "prepare": True})).ops == []
    between = assembler.feed(plain(3, 99))  # another writer's insert, not in the transaction
    assert (ids(between.ops), between.checkpoint) == ([99], None)  # checkpoint held back
    commit = assembler.feed(
        txn_entry(4, {"commitTransaction": 1, "commitTimestamp": Timestamp(3, 5)})
    )
    assert ids(commit.ops) == [1, 2]
    assert commit.checkpoint == Timestamp(4, 1)


def test_aborted_prepared_transaction_releases_nothing() -> None:
    assembler = TransactionAssembler()
    assembler.feed(txn_entry(1, {"applyOps": [insert(1)], "prepare": True}))
    aborted = assembler.feed(txn_entry(2, {"abortTransaction": 1}))
    assert (aborted.ops, aborted.checkpoint) == ([], Timestamp(2, 1))
    assert assembler.open_transactions == 0


def test_interleaved_sessions_are_kept_apart() -> None:
    assembler = TransactionAssembler()
    assembler.feed(txn_entry(1, {"applyOps": [insert(1)], "partialTxn": True}, lsid=1))
    assembler.feed(txn_entry(2, {"applyOps": [insert(2)], "partialTxn": True}, lsid=2))
    done_2 = assembler.feed(txn_entry(3, {"applyOps": [insert(3)]}, lsid=2))
    assert (ids(done_2.ops), done_2.checkpoint) == ([2, 3], None)  # session 1 still open
    done_1 = assembler.feed(txn_entry(4, {"applyOps": [insert(4)]}, lsid=1))
    assert (ids(done_1.ops), done_1.checkpoint) == ([1, 4], Timestamp(4, 1))


def test_same_session_next_transaction_number_is_another_transaction() -> None:
    assembler = TransactionAssembler()
    assembler.feed(txn_entry(1, {"applyOps": [insert(1)], "prepare": True}, txn=1))
    assembler.feed(txn_entry(2, {"abortTransaction": 1}, txn=1))
    assembler.feed(txn_entry(3, {"applyOps": [insert(2)], "prepare": True}, txn=2))
    commit = assembler.feed(txn_entry(4, {"commitTransaction": 1}, txn=2))
    assert ids(commit.ops) == [2]


def test_single_entry_transactions_and_plain_writes_pass_straight_through() -> None:
    assembler = TransactionAssembler()
    assert ids(assembler.feed(txn_entry(1, {"applyOps": [insert(1), insert(2)]})).ops) == [1, 2]
    batched = {"ts": Timestamp(2, 1), "op": "c", "ns": "admin.$cmd", "o": {"applyOps": [insert(3)]}}
    assert ids(assembler.feed(batched).ops) == [3]  # batched writes carry no session
    assert ids(assembler.feed(plain(3, 4)).ops) == [4]


def test_transaction_entries_without_a_session_are_malformed() -> None:
    assembler = TransactionAssembler()
    entry = {"ts": Timestamp(1, 1), "op": "c", "ns": "admin.$cmd"}
    with pytest.raises(MalformedChange, match="lsid/txnNumber"):
        assembler.feed({**entry, "o": {"applyOps": [insert(1)], "prepare": True}})
    with pytest.raises(MalformedChange):
        assembler.feed({**entry, "o": {"commitTransaction": 1}})


def test_operations_after_prepare_are_malformed() -> None:
    assembler = TransactionAssembler()
    assembler.feed(txn_entry(1, {"applyOps": [insert(1)], "prepare": True}))
    with pytest.raises(MalformedChange, match="after prepare"):
        assembler.feed(txn_entry(2, {"applyOps": [insert(2)], "prepare": True}))


def test_commit_of_an_unseen_transaction_releases_nothing() -> None:
    """Started between a transaction's entries (never where a checkpoint stands)."""
    commit = TransactionAssembler().feed(txn_entry(5, {"commitTransaction": 1}))
    assert (commit.ops, commit.checkpoint) == ([], Timestamp(5, 1))


# --- the observer on the simulator's oplog ----------------------------------------------------


class Recorder(OperationHandler):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[dict[str, Any]] = []

    async def on_insert(self, operation: Any) -> None:
        self.ops.append(dict(operation))

    async def on_update(self, operation: Any) -> None:
        self.ops.append(dict(operation))

    async def on_delete(self, operation: Any) -> None:
        self.ops.append(dict(operation))


@pytest.fixture
async def rs() -> AsyncIterator[ReplicaSet]:
    async with ReplicaSet(members=1) as replica_set:
        yield replica_set


def injected(rs: ReplicaSet, o: dict[str, Any], lsid: int = 1, txn: int = 1) -> Timestamp:
    entry = rs.deployment.inject_oplog_entry(
        op="c", ns="admin.$cmd", o=o, lsid=session(lsid), txnNumber=Int64(txn)
    )
    ts: Timestamp = entry["ts"]
    return ts


async def wait_for_ops(handler: Recorder, count: int, task: asyncio.Task[None]) -> None:
    async with asyncio.timeout(GUARD):
        while len(handler.ops) < count and not task.done():  # noqa: ASYNC110 - plain state
            await asyncio.sleep(0.01)


async def test_observer_hands_on_committed_prepared_work_and_drops_aborted(rs: ReplicaSet) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(rs.uri)
    store = MemoryCheckpointStore()
    handler = Recorder()
    try:
        observer = await Observer.init_async(
            client.local["oplog.rs"], handler, namespace_filter=NS, checkpoint_store=store
        )
        async with observer:
            task = asyncio.create_task(observer.observe_changes())
            injected(rs, {"applyOps": [insert(1)], "prepare": True}, txn=1)
            injected(rs, {"abortTransaction": 1}, txn=1)
            injected(rs, {"applyOps": [insert(2)], "partialTxn": True}, txn=2)
            before_commit = injected(rs, {"applyOps": [insert(3)], "prepare": True}, txn=2)
            await client.db.things.insert_one({"_id": 10})  # lands while txn 2 is prepared
            await wait_for_ops(handler, 1, task)
            assert ids(handler.ops) == [10]
            # the checkpoint is held before the open transaction: a restart would re-read it
            saved = await store.load()
            assert saved is None or saved < before_commit
            commit = injected(rs, {"commitTransaction": 1, "commitTimestamp": before_commit}, txn=2)
            await wait_for_ops(handler, 3, task)
            observer.stop()
            await task
        assert ids(handler.ops) == [10, 2, 3]
        assert {op["ts"] for op in handler.ops[1:]} == {commit}
        assert await store.load() == commit
    finally:
        await client.close()


async def test_restart_from_a_held_checkpoint_reads_the_open_transaction_again(
    rs: ReplicaSet,
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(rs.uri)
    store = MemoryCheckpointStore()
    try:
        first = Recorder()
        async with await Observer.init_async(
            client.local["oplog.rs"], first, namespace_filter=NS, checkpoint_store=store
        ) as observer:
            task = asyncio.create_task(observer.observe_changes())
            await client.db.things.insert_one({"_id": 0})
            await wait_for_ops(first, 1, task)
            injected(rs, {"applyOps": [insert(1)], "partialTxn": True})
            await client.db.things.insert_one({"_id": 5})
            await wait_for_ops(first, 2, task)
            observer.stop()
            await task
        assert ids(first.ops) == [0, 5]

        commit = injected(rs, {"applyOps": [insert(2)]})  # the transaction's last entry
        second = Recorder()
        async with await Observer.init_async(
            client.local["oplog.rs"], second, namespace_filter=NS, checkpoint_store=store
        ) as observer:
            task = asyncio.create_task(observer.observe_changes())
            await wait_for_ops(second, 3, task)
            observer.stop()
            await task
        # the whole transaction arrives; the insert read while it was open comes again (at
        # least once), nothing is lost
        assert ids(second.ops) == [5, 1, 2]
        assert await store.load() == commit
    finally:
        await client.close()

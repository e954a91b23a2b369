"""mongo_observer.reactive: replicas driven by the real oplog and change events of clustersim.

Each operator case writes through ``AsyncMongoClient``, feeds the replica what the server logged
and checks the replica equals ``find_one``: live (snapshot before the write) and replayed
(position captured, write made, then snapshot: the write is applied a second time).
"""

from __future__ import annotations

import asyncio
import copy
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from bson import Timestamp
from clustersim.mongo import ReplicaSet
from mongo_observer import oplog
from mongo_observer.observer import Observer, event_to_operation
from mongo_observer.reactive import (
    Change,
    QuerySupportMissing,
    ReactiveCollection,
    ReactivePartialCollection,
)
from pymongo import AsyncMongoClient
from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.asynchronous.collection import AsyncCollection

FAST: dict[str, Any] = {"heartbeatFrequencyMS": 500, "serverSelectionTimeoutMS": 10_000}
NS = "db.things"


@pytest.fixture
async def client() -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    async with ReplicaSet(members=1, name="rs0") as rs:
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(rs.uri, **FAST)
        try:
            yield mongo
        finally:
            await mongo.close()


@pytest.fixture
def coll(client: AsyncMongoClient[dict[str, Any]]) -> AsyncCollection[dict[str, Any]]:
    return client.db.things


# --- feeds: what an observer would hand the replica -----------------------------------------


class OplogFeed:
    """Reads ``local.oplog.rs`` past the captured position, like the observer's tailing."""

    def __init__(self, client: AsyncMongoClient[dict[str, Any]], last: Timestamp) -> None:
        self.oplog = client.local["oplog.rs"]
        self.last = last

    @classmethod
    async def start(cls, client: AsyncMongoClient[dict[str, Any]]) -> OplogFeed:
        newest = await client.local["oplog.rs"].find().sort("$natural", -1).limit(1).to_list()
        return cls(client, newest[0]["ts"] if newest else Timestamp(0, 1))

    async def pump(self, replica: ReactiveCollection) -> None:
        async for entry in self.oplog.find({"ts": {"$gt": self.last}}).sort("$natural", 1):
            self.last = entry["ts"]
            for op in oplog.expand(entry):
                await replica.handle(op)


class StreamFeed:
    """A change stream opened first (the captured position), drained after each write."""

    def __init__(self, stream: AsyncChangeStream[dict[str, Any]]) -> None:
        self.stream = stream

    @classmethod
    async def start(cls, client: AsyncMongoClient[dict[str, Any]]) -> StreamFeed:
        return cls(await client.watch())

    async def pump(self, replica: ReactiveCollection) -> None:
        while (event := await self.stream.try_next()) is not None:
            op = event_to_operation(event)  # the observer's own conversion
            if op is not None:
                await replica.handle(op)


Feed = OplogFeed | StreamFeed


async def start_feed(kind: str, client: AsyncMongoClient[dict[str, Any]]) -> Feed:
    return await (OplogFeed.start(client) if kind == "oplog" else StreamFeed.start(client))


async def close_feed(feed: Feed) -> None:
    if isinstance(feed, StreamFeed):
        await feed.stream.close()


# --- every update operator ------------------------------------------------------------------


@dataclass
class Case:
    seed: dict[str, Any]
    update: dict[str, Any] | None = None  # None: replace_one with ``replacement``
    replacement: dict[str, Any] | None = None
    query: dict[str, Any] | None = None
    kwargs: dict[str, Any] | None = None


SEED: dict[str, Any] = {
    "_id": 1,
    "n": 5,
    "f": 2.5,
    "s": {"x": 1, "y": [1, 2]},
    "arr": [3, 1, 2],
    "tags": ["a", "b", "c", "b"],
    "items": [{"k": 1, "v": 10}, {"k": 2, "v": 20}],
    "bits": 0b1010,
}

CASES: dict[str, Case] = {
    "set": Case(SEED, {"$set": {"n": 6, "s.x": 2, "new": {"deep": [1]}}}),
    "set_array_element": Case(SEED, {"$set": {"arr.1": 9, "items.0.v": 11}}),
    "set_past_array_end": Case(SEED, {"$set": {"arr.5": 9}}),
    "unset": Case(SEED, {"$unset": {"n": "", "s.x": "", "missing": ""}}),
    "inc": Case(SEED, {"$inc": {"n": 2, "s.x": -1, "fresh": 1}}),
    "mul": Case(SEED, {"$mul": {"n": 3, "f": 2}}),
    "min": Case(SEED, {"$min": {"n": 1, "f": 9}}),
    "max": Case(SEED, {"$max": {"n": 10, "f": 0}}),
    "rename": Case(SEED, {"$rename": {"s": "t", "n": "m"}}),
    "push": Case(SEED, {"$push": {"arr": 4}}),
    "push_each_slice_sort": Case(
        SEED, {"$push": {"arr": {"$each": [9, 0], "$sort": 1, "$slice": 3}}}
    ),
    "push_each_position": Case(SEED, {"$push": {"arr": {"$each": [7, 8], "$position": 1}}}),
    "push_negative_slice": Case(SEED, {"$push": {"tags": {"$each": ["z"], "$slice": -2}}}),
    "pull": Case(SEED, {"$pull": {"tags": "b", "items": {"k": 2}}}),
    "pull_all": Case(SEED, {"$pullAll": {"arr": [1, 2]}}),
    "add_to_set": Case(SEED, {"$addToSet": {"tags": "d"}}),
    "add_to_set_each": Case(SEED, {"$addToSet": {"tags": {"$each": ["a", "e", "f"]}}}),
    "pop_last": Case(SEED, {"$pop": {"arr": 1}}),
    "pop_first": Case(SEED, {"$pop": {"arr": -1}}),
    "bit": Case(SEED, {"$bit": {"bits": {"and": 0b0110, "or": 0b0001}}}),
    "current_date": Case(SEED, {"$currentDate": {"at": True, "s.when": {"$type": "date"}}}),
    "positional": Case(SEED, {"$set": {"items.$.v": 99}}, query={"_id": 1, "items.k": 2}),
    "array_filters": Case(
        SEED, {"$set": {"arr.$[e]": 0}}, kwargs={"array_filters": [{"e": {"$gt": 1}}]}
    ),
    "array_filters_nested": Case(
        SEED,
        {"$inc": {"items.$[i].v": 5}, "$set": {"items.$[].seen": True}},
        kwargs={"array_filters": [{"i.k": {"$gte": 2}}]},
    ),
    "replacement": Case(SEED, None, replacement={"whole": "new", "list": [1]}),
    "upsert_insert": Case(
        {"_id": 0},
        {"$set": {"a": 1}, "$setOnInsert": {"created": True}},
        query={"_id": 7},
        kwargs={"upsert": True},
    ),
    "upsert_existing": Case(
        SEED, {"$set": {"a": 1}, "$setOnInsert": {"created": True}}, kwargs={"upsert": True}
    ),
}


def _case_params() -> list[Any]:
    return [pytest.param(case, id=name) for name, case in CASES.items()]


async def apply_case(coll: AsyncCollection[dict[str, Any]], case: Case) -> Any:
    query = case.query or {"_id": case.seed["_id"]}
    if case.update is None:
        await coll.replace_one(query, case.replacement or {})
    else:
        await coll.update_one(query, case.update, **(case.kwargs or {}))
    return query["_id"]


@pytest.mark.parametrize("timing", ["live", "replayed"])
@pytest.mark.parametrize("source", ["oplog", "change_stream"])
@pytest.mark.parametrize("case", _case_params())
async def test_replica_equals_server_after_operator(
    client: AsyncMongoClient[dict[str, Any]],
    coll: AsyncCollection[dict[str, Any]],
    case: Case,
    source: str,
    timing: str,
) -> None:
    feed = await start_feed(source, client)  # the position is captured first
    await coll.insert_one(copy.deepcopy(case.seed))
    if timing == "live":
        replica = await ReactiveCollection.init_async(coll)
        _id = await apply_case(coll, case)
    else:  # the write lands between position and snapshot: replay applies it again
        _id = await apply_case(coll, case)
        replica = await ReactiveCollection.init_async(coll)
    await feed.pump(replica)
    await close_feed(feed)
    server = {doc["_id"]: doc async for doc in coll.find({})}
    assert replica[_id] == server[_id]
    assert {doc["_id"]: doc for doc in replica} == server


@pytest.mark.parametrize("source", ["oplog", "change_stream"])
async def test_replayed_diff_into_removed_field_rereads_the_document(
    client: AsyncMongoClient[dict[str, Any]], coll: AsyncCollection[dict[str, Any]], source: str
) -> None:
    """Not idempotent: a sub-diff into ``s`` replayed after ``s`` was unset; re-read instead."""
    await coll.insert_one({"_id": 1, "s": {"x": 1}})
    feed = await start_feed(source, client)
    await coll.update_one({"_id": 1}, {"$set": {"s.x": 2}})
    await coll.update_one({"_id": 1}, {"$unset": {"s": ""}, "$set": {"k": 1}})
    replica = await ReactiveCollection.init_async(coll)
    await feed.pump(replica)
    await close_feed(feed)
    assert replica[1] == await coll.find_one({"_id": 1}) == {"_id": 1, "k": 1}


@pytest.mark.parametrize("source", ["oplog", "change_stream"])
async def test_insert_update_delete_sequence(
    client: AsyncMongoClient[dict[str, Any]], coll: AsyncCollection[dict[str, Any]], source: str
) -> None:
    feed = await start_feed(source, client)
    replica = await ReactiveCollection.init_async(coll)
    await coll.insert_many([{"_id": i, "v": i} for i in range(5)])
    await coll.update_many({"v": {"$gte": 3}}, {"$inc": {"v": 10}})
    await coll.delete_many({"v": {"$lt": 2}})
    await feed.pump(replica)
    await close_feed(feed)
    assert sorted(replica, key=lambda d: d["_id"]) == await coll.find({}).sort("_id").to_list()
    assert len(replica) == 3
    assert 0 not in replica
    assert 3 in replica


# --- robustness -----------------------------------------------------------------------------


async def test_unknown_ids_are_ignored(coll: AsyncCollection[dict[str, Any]]) -> None:
    await coll.insert_one({"_id": 1, "a": 1})
    replica = await ReactiveCollection.init_async(coll)
    update = {"$v": 2, "diff": {"u": {"a": 5}}}
    await replica.on_update(
        {"ts": Timestamp(1, 1), "op": "u", "ns": NS, "o": update, "o2": {"_id": 404}}
    )
    await replica.on_delete({"ts": Timestamp(1, 2), "op": "d", "ns": NS, "o": {"_id": 404}})
    assert list(replica) == [{"_id": 1, "a": 1}]


async def test_unknown_id_replacement_is_stored(coll: AsyncCollection[dict[str, Any]]) -> None:
    replica = await ReactiveCollection.init_async(coll)
    op = {"ts": Timestamp(1, 1), "op": "u", "ns": NS, "o": {"b": 2}, "o2": {"_id": 3}}
    await replica.on_update(op)
    assert replica[3] == {"_id": 3, "b": 2}


async def test_other_namespaces_never_merge_in(
    client: AsyncMongoClient[dict[str, Any]], coll: AsyncCollection[dict[str, Any]]
) -> None:
    feed = await OplogFeed.start(client)
    replica = await ReactiveCollection.init_async(coll)
    await client.db.other.insert_one({"_id": 1, "other": True})
    await client.other_db.things.insert_one({"_id": 2})
    await client.db.other.update_one({"_id": 1}, {"$set": {"x": 1}})
    await coll.insert_one({"_id": 1, "mine": True})
    await client.db.other.delete_one({"_id": 1})
    await feed.pump(replica)
    assert list(replica) == [{"_id": 1, "mine": True}]


async def test_readers_get_copies(coll: AsyncCollection[dict[str, Any]]) -> None:
    await coll.insert_one({"_id": 1, "a": {"b": [1]}})
    replica = await ReactiveCollection.init_async(coll)
    replica[1]["a"]["b"].append(2)
    got = replica.get(1)
    assert got is not None
    got["a"] = None
    next(iter(replica))["a"]["b"].clear()
    replica.find({"_id": 1})[0]["a"]["b"].append(3)
    assert replica[1] == {"_id": 1, "a": {"b": [1]}}
    assert replica.get(2) is None
    with pytest.raises(KeyError):
        replica[2]


async def test_find_uses_mongo_query_semantics(coll: AsyncCollection[dict[str, Any]]) -> None:
    await coll.insert_many(
        [{"_id": 1, "n": 1, "t": ["x"]}, {"_id": 2, "n": 5, "t": ["y"]}, {"_id": 3, "n": 9}]
    )
    replica = await ReactiveCollection.init_async(coll)
    found = replica.find({"n": {"$gte": 5}})
    assert sorted(doc["_id"] for doc in found) == [2, 3]
    assert [doc["_id"] for doc in replica.find({"t": "y"})] == [2]
    assert [doc["_id"] for doc in replica.find({"$or": [{"n": 1}, {"t": {"$exists": False}}]})] == [
        1,
        3,
    ]
    assert len(replica.find()) == 3


async def test_find_without_mongomock_names_the_extra(
    coll: AsyncCollection[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    replica = await ReactiveCollection.init_async(coll)
    monkeypatch.setitem(sys.modules, "mongomock.filtering", None)
    with pytest.raises(ImportError, match=r"mongo-observer\[query\]") as info:
        replica.find({"a": 1})
    assert isinstance(info.value, QuerySupportMissing)


# --- subscriptions and resync ---------------------------------------------------------------


async def test_subscribers_get_changes(
    client: AsyncMongoClient[dict[str, Any]], coll: AsyncCollection[dict[str, Any]]
) -> None:
    feed = await OplogFeed.start(client)
    replica = await ReactiveCollection.init_async(coll)
    sync_seen: list[Change] = []
    async_seen: list[Change] = []

    async def on_change(change: Change) -> None:
        async_seen.append(change)

    def broken(change: Change) -> None:
        raise RuntimeError("a failing subscriber must not stop the others")

    replica.subscribe(broken)
    unsubscribe = replica.subscribe(sync_seen.append)
    replica.subscribe(on_change)
    await coll.insert_one({"_id": 1, "a": 1})
    await coll.update_one({"_id": 1}, {"$set": {"a": 2}})
    await coll.delete_one({"_id": 1})
    await feed.pump(replica)
    expected = [
        Change("insert", 1, None, {"_id": 1, "a": 1}),
        Change("update", 1, {"_id": 1, "a": 1}, {"_id": 1, "a": 2}),
        Change("delete", 1, {"_id": 1, "a": 2}, None),
    ]
    assert sync_seen == expected
    assert async_seen == expected
    unsubscribe()
    unsubscribe()  # twice is harmless
    await coll.insert_one({"_id": 2})
    await feed.pump(replica)
    assert len(sync_seen) == 3
    assert async_seen[-1] == Change("insert", 2, None, {"_id": 2})


async def test_replayed_insert_of_same_document_emits_nothing(
    coll: AsyncCollection[dict[str, Any]],
) -> None:
    await coll.insert_one({"_id": 1, "a": 1})
    replica = await ReactiveCollection.init_async(coll)
    seen: list[Change] = []
    replica.subscribe(seen.append)
    await replica.on_insert({"ts": Timestamp(1, 1), "op": "i", "ns": NS, "o": {"_id": 1, "a": 1}})
    assert seen == []


async def test_resync_resnapshots(coll: AsyncCollection[dict[str, Any]]) -> None:
    await coll.insert_one({"_id": 1})
    replica = await ReactiveCollection.init_async(coll)
    seen: list[Change] = []
    replica.subscribe(seen.append)
    await coll.insert_one({"_id": 2})  # never fed: only a resync can see it
    await coll.delete_one({"_id": 1})
    await replica.resync()
    assert list(replica) == [{"_id": 2}]
    assert seen == [Change("resync", None, None, None)]


# --- partial collections --------------------------------------------------------------------


@pytest.mark.parametrize("source", ["oplog", "change_stream"])
async def test_partial_enter_and_leave_with_projection(
    client: AsyncMongoClient[dict[str, Any]], coll: AsyncCollection[dict[str, Any]], source: str
) -> None:
    await coll.insert_many(
        [
            {"_id": 1, "status": "on", "name": "a", "secret": 1},
            {"_id": 2, "status": "off", "name": "b", "secret": 2},
        ]
    )
    feed = await start_feed(source, client)
    replica = await ReactivePartialCollection.init_async(coll, {"status": "on"}, {"name": 1})
    seen: list[Change] = []
    replica.subscribe(seen.append)
    assert list(replica) == [{"_id": 1, "name": "a"}]

    writes: list[tuple[int, dict[str, Any]]] = [
        (2, {"$set": {"status": "on"}}),  # enters: one find_one round trip
        (1, {"$set": {"status": "off"}}),  # leaves
        (2, {"$set": {"name": "B"}}),  # stays, updated
        (3, {"$set": {"name": "C"}}),  # upserted, never a member
        (3, {"$set": {"status": "on?"}}),  # still not a member
    ]
    for _id, update in writes:
        await coll.update_one({"_id": _id}, update, upsert=True)
        await feed.pump(replica)
    await close_feed(feed)

    assert list(replica) == [{"_id": 2, "name": "B"}]
    assert seen == [
        Change("insert", 2, None, {"_id": 2, "name": "b"}),
        Change("delete", 1, {"_id": 1, "name": "a"}, None),
        Change("update", 2, {"_id": 2, "name": "b"}, {"_id": 2, "name": "B"}),
    ]
    # matching on the full document even though the projection hides ``status``
    assert replica.find({"status": "on"}) == [{"_id": 2, "name": "B"}]
    assert replica.find({"secret": 1}) == []


async def test_partial_exclusion_projection_and_delete(
    client: AsyncMongoClient[dict[str, Any]], coll: AsyncCollection[dict[str, Any]]
) -> None:
    await coll.insert_many([{"_id": i, "n": i, "s": {"x": i, "y": i}} for i in range(4)])
    feed = await OplogFeed.start(client)
    replica = await ReactivePartialCollection.init_async(
        coll, {"n": {"$gte": 2}}, {"s.y": 0, "_id": 0}
    )
    assert sorted(replica, key=lambda d: d["n"]) == [
        {"n": 2, "s": {"x": 2}},
        {"n": 3, "s": {"x": 3}},
    ]
    await coll.delete_one({"_id": 3})
    await coll.insert_one({"_id": 9, "n": 9, "s": {"x": 0, "y": 0}})
    await coll.insert_one({"_id": 10, "n": 0})
    await feed.pump(replica)
    assert sorted(replica, key=lambda d: d["n"]) == [
        {"n": 2, "s": {"x": 2}},
        {"n": 9, "s": {"x": 0}},
    ]
    assert 10 not in replica


async def test_partial_rejects_mixed_projection(coll: AsyncCollection[dict[str, Any]]) -> None:
    with pytest.raises(ValueError, match="mixes"):
        await ReactivePartialCollection.init_async(coll, {}, {"a": 1, "b": 0})


class CountingCollection:
    """Wraps a collection to count ``find_one`` round trips."""

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self.collection = collection
        self.full_name = collection.full_name
        self.find_one_calls = 0

    def find(self, *args: Any, **kwargs: Any) -> Any:
        return self.collection.find(*args, **kwargs)

    async def find_one(self, *args: Any, **kwargs: Any) -> Any:
        self.find_one_calls += 1
        return await self.collection.find_one(*args, **kwargs)


async def test_partial_round_trip_only_for_non_members(
    client: AsyncMongoClient[dict[str, Any]], coll: AsyncCollection[dict[str, Any]]
) -> None:
    await coll.insert_many([{"_id": 1, "on": True}, {"_id": 2, "on": False}])
    feed = await OplogFeed.start(client)
    counting = CountingCollection(coll)
    replica = await ReactivePartialCollection.init_async(counting, {"on": True}, {"_id": 1})
    await coll.update_one({"_id": 1}, {"$set": {"x": 1}})  # held: applied locally
    await feed.pump(replica)
    assert counting.find_one_calls == 0
    await coll.update_one({"_id": 2}, {"$set": {"x": 1}})  # not held: asks the server
    await feed.pump(replica)
    assert counting.find_one_calls == 1
    assert list(replica) == [{"_id": 1}]


async def test_partial_resync(coll: AsyncCollection[dict[str, Any]]) -> None:
    await coll.insert_many([{"_id": 1, "n": 1}, {"_id": 2, "n": 2}])
    replica = await ReactivePartialCollection.init_async(coll, {"n": {"$gt": 1}})
    await coll.update_one({"_id": 1}, {"$set": {"n": 5}})
    await coll.delete_one({"_id": 2})
    await replica.resync()
    assert list(replica) == [{"_id": 1, "n": 5}]


# --- with the real observer: position first, then snapshot, then replay ----------------------


@pytest.mark.parametrize("source", ["oplog", "change_stream"])
async def test_observer_recipe_loses_no_write_between_position_and_snapshot(
    client: AsyncMongoClient[dict[str, Any]], coll: AsyncCollection[dict[str, Any]], source: str
) -> None:
    await coll.insert_one({"_id": 1, "n": 0, "s": {"x": 1}})
    replica = ReactiveCollection(coll)
    where: dict[str, Any] = (
        {"oplog": client.local["oplog.rs"]} if source == "oplog" else {"source": coll}
    )
    observer = await Observer.init_async(
        operation_handler=replica, on_resync=replica.resync, **where
    )
    await coll.insert_one({"_id": 2, "n": 0})  # between position and snapshot
    await coll.update_one({"_id": 1}, {"$inc": {"n": 1}, "$set": {"s.x": 2}})
    await replica.resync()
    task = asyncio.create_task(observer.observe_changes())
    try:
        await coll.update_one({"_id": 2}, {"$inc": {"n": 5}})  # after the snapshot
        await coll.delete_one({"_id": 1})
        await coll.insert_one({"_id": 3})
        server = await coll.find({}).sort("_id").to_list()
        for _ in range(200):
            if sorted(replica, key=lambda d: d["_id"]) == server:
                break
            await asyncio.sleep(0.02)
        assert sorted(replica, key=lambda d: d["_id"]) == server
    finally:
        await observer.close()
        await task

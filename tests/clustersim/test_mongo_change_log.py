"""The oplog and change streams, read by the real pymongo client."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pymongo
import pymongo.errors
import pytest
from bson import Timestamp
from clustersim.mongo import ReplicaSet
from pymongo import CursorType, MongoClient, monitoring

FAST: dict[str, Any] = {"heartbeatFrequencyMS": 500, "serverSelectionTimeoutMS": 10_000}


def test_oplog_tail_sees_every_write_in_the_modern_shape(simulated: ReplicaSet) -> None:
    with MongoClient(simulated.uri, **FAST) as client:
        coll = client.test[f"tail_{uuid.uuid4().hex[:8]}"]
        ns = coll.full_name
        start = client.local["oplog.rs"].find_one(sort=[("$natural", -1)])
        since = start["ts"] if start else Timestamp(0, 0)
        coll.insert_one({"_id": 1, "a": {"b": 1}, "l": [1, 2, 3]})
        coll.update_one({"_id": 1}, {"$set": {"a.b": 2}, "$unset": {"l": ""}})
        coll.replace_one({"_id": 1}, {"whole": True})
        coll.delete_one({"_id": 1})
        cursor = client.local["oplog.rs"].find(
            {"ts": {"$gt": since}, "ns": ns}, cursor_type=CursorType.TAILABLE_AWAIT
        )
        entries: list[dict[str, Any]] = []
        while len(entries) < 4 and cursor.alive:
            entries.extend(cursor)  # an empty awaitData batch ends one pass; the cursor stays alive
    ops = [e["op"] for e in entries]
    assert ops == ["i", "u", "u", "d"]
    insert, diff_update, replacement, delete = entries
    assert insert["o"] == {"_id": 1, "a": {"b": 1}, "l": [1, 2, 3]}
    assert diff_update["o"]["$v"] == 2
    assert diff_update["o"]["diff"] == {"d": {"l": False}, "sa": {"u": {"b": 2}}}
    assert diff_update["o2"] == {"_id": 1}
    assert replacement["o"] == {"_id": 1, "whole": True}
    assert delete["o"] == {"_id": 1}
    for entry in entries:
        assert {"ts", "t", "v", "op", "ns", "ui", "wall"} <= set(entry)
    assert [e["ts"] for e in entries] == sorted(e["ts"] for e in entries)


def test_oplog_tail_waits_for_new_entries(simulated: ReplicaSet) -> None:
    with MongoClient(simulated.uri, **FAST) as client:
        coll = client.test[f"wait_{uuid.uuid4().hex[:8]}"]
        coll.insert_one({"first": True})
        last = client.local["oplog.rs"].find_one(sort=[("$natural", -1)])
        assert last is not None
        cursor = (
            client.local["oplog.rs"]
            .find({"ts": {"$gt": last["ts"]}}, cursor_type=CursorType.TAILABLE_AWAIT)
            .max_await_time_ms(2000)
        )
        threading.Timer(0.2, lambda: coll.insert_one({"second": True})).start()
        received = None
        while received is None and cursor.alive:
            # pymongo's iteration stops at each empty tailable batch; the cursor stays alive.
            received = next(cursor, None)
        assert received is not None
        assert received["o"]["second"] is True


def test_change_stream_events_and_update_description(simulated: ReplicaSet) -> None:
    with MongoClient(simulated.uri, **FAST) as client:
        coll = client.test[f"cs_{uuid.uuid4().hex[:8]}"]
        with coll.watch(full_document="updateLookup") as stream:
            coll.insert_one({"_id": 1, "a": 1, "arr": [1, 2, 3]})
            coll.update_one({"_id": 1}, {"$set": {"a": 2}, "$pop": {"arr": 1}})
            events = [stream.next() for _ in range(2)]  # looked up before later writes
            coll.replace_one({"_id": 1}, {"b": 1})
            coll.delete_one({"_id": 1})
            events += [stream.next() for _ in range(2)]
    kinds = [e["operationType"] for e in events]
    assert kinds == ["insert", "update", "replace", "delete"]
    assert events[0]["fullDocument"] == {"_id": 1, "a": 1, "arr": [1, 2, 3]}
    description = events[1]["updateDescription"]
    assert description["updatedFields"] == {"a": 2}
    assert description["removedFields"] == []
    assert description["truncatedArrays"] == [{"field": "arr", "newSize": 2}]
    assert events[1]["fullDocument"] == {"_id": 1, "a": 2, "arr": [1, 2]}
    assert events[3]["documentKey"] == {"_id": 1}
    assert all(e["ns"] == {"db": "test", "coll": coll.name} for e in events)


def test_change_stream_match_database_and_cluster_scopes(simulated: ReplicaSet) -> None:
    with MongoClient(simulated.uri, **FAST) as client:
        db = client[f"db_{uuid.uuid4().hex[:8]}"]
        with (
            db.watch([{"$match": {"operationType": "insert"}}]) as db_stream,
            client.watch() as cluster_stream,
        ):
            db.one.insert_one({"x": 1})
            db.two.update_one({"_id": 9}, {"$set": {"y": 1}}, upsert=True)
            db.one.delete_many({})
            assert db_stream.next()["ns"]["coll"] == "one"
            assert db_stream.next()["ns"]["coll"] == "two"  # the upsert logged an insert
            kinds = [cluster_stream.next()["operationType"] for _ in range(3)]
        assert kinds == ["insert", "insert", "delete"]


def test_change_stream_resumes_across_a_primary_kill(simulated: ReplicaSet) -> None:
    rs = simulated
    with MongoClient(rs.uri, **FAST) as client:
        coll = client.test[f"resume_{uuid.uuid4().hex[:8]}"]
        seen: list[int] = []
        with coll.watch() as stream:
            for n in range(60):
                coll.insert_one({"n": n})
                if n % 20 == 10:
                    old = rs.primary
                    assert old is not None
                    rs.kill(old)
                    rs.restart(old)
                if n % 7 == 0:
                    while (event := stream.try_next()) is not None:
                        seen.append(event["fullDocument"]["n"])
            while len(seen) < 60:
                event = stream.next()
                seen.append(event["fullDocument"]["n"])
    assert seen == list(range(60))  # every event, in order, no gap and no duplicate


def test_resume_token_no_longer_in_the_oplog_is_history_lost(simulated: ReplicaSet) -> None:
    rs = simulated
    with MongoClient(rs.uri, **FAST) as client:
        coll = client.test[f"lost_{uuid.uuid4().hex[:8]}"]
        with coll.watch() as stream:
            coll.insert_one({"n": 1})
            token = stream.next()["_id"]
        coll.insert_one({"n": 2})
        coll.insert_one({"n": 3})
        oplog = rs.deployment.oplog
        last = oplog.last_ts
        assert last is not None
        oplog.truncate_before(last)
        with (
            pytest.raises(pymongo.errors.OperationFailure) as info,
            coll.watch(resume_after=token) as resumed,
        ):
            resumed.next()
        assert info.value.code == 286


def test_drop_invalidates_a_collection_stream(simulated: ReplicaSet) -> None:
    with MongoClient(simulated.uri, **FAST) as client:
        coll = client.test[f"drop_{uuid.uuid4().hex[:8]}"]
        coll.insert_one({"x": 1})
        with coll.watch() as stream:
            coll.drop()
            assert stream.next()["operationType"] == "drop"
            assert stream.next()["operationType"] == "invalidate"
            assert not stream.alive


class FailedCommands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.codes: list[int] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self.codes.append(int(event.failure.get("code", 0)))


def test_a_tail_that_falls_off_the_capped_oplog_gets_capped_position_lost() -> None:
    failures = FailedCommands()
    with (
        ReplicaSet(members=1, oplog_entries=5) as rs,
        MongoClient(rs.uri, event_listeners=[failures], **FAST) as client,
    ):
        coll = client.test.capped
        coll.insert_one({"n": 0})
        first = client.local["oplog.rs"].find_one(sort=[("$natural", -1)])
        assert first is not None
        cursor = client.local["oplog.rs"].find(
            {"ts": {"$gt": first["ts"]}}, cursor_type=CursorType.TAILABLE_AWAIT
        )
        assert next(cursor, None) is None  # nothing new yet; the cursor stays open
        alive_before = cursor.alive
        coll.insert_many([{"n": n} for n in range(1, 10)])  # more than the oplog keeps
        assert next(cursor, None) is None
        alive_after = cursor.alive  # pymongo ends a tailable cursor on CappedPositionLost
    assert (alive_before, alive_after) == (True, False)
    assert failures.codes == [136]


def test_start_at_operation_time_and_start_after(simulated: ReplicaSet) -> None:
    with MongoClient(simulated.uri, **FAST) as client:
        coll = client.test[f"start_{uuid.uuid4().hex[:8]}"]
        with coll.watch() as stream:
            coll.insert_one({"n": 1})
            first = stream.next()
        coll.insert_one({"n": 2})
        with coll.watch(start_at_operation_time=first["clusterTime"]) as replay:
            assert [replay.next()["fullDocument"]["n"] for _ in range(2)] == [1, 2]
        with coll.watch(start_after=first["_id"]) as after:
            assert after.next()["fullDocument"]["n"] == 2

"""The sync Engine against a simulated replica set, through the real pymongo driver."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pymongo.errors
import pytest
from bson import ObjectId
from clustersim.mongo import ReplicaSet
from mongomancy._sync.engine import Engine
from mongomancy.errors import CursorInterrupted
from mongomancy.hooks import PrimarySwitch
from pymongo.write_concern import WriteConcern


def wait_for(predicate: Callable[[], object], timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


@pytest.fixture
def engine(rs: ReplicaSet) -> Iterator[Engine]:
    with Engine(rs.uri, retryWrites=False, write_retry_delay=0.01, read_retry_delay=0.01) as e:
        assert e.ping()
        yield e


def fail(engine: Engine, mode: Any, **data: Any) -> None:
    engine.client.admin.command("configureFailPoint", "failCommand", mode=mode, data=data)


def things(engine: Engine) -> Any:
    return engine.get_database("test").get_collection("things")


def test_write_loop_lands_each_write_once_across_faults(rs: ReplicaSet) -> None:
    with Engine(rs.uri, write_retry_delay=0.01) as engine:
        coll = things(engine)
        ids = []
        victim = 0
        for i in range(150):
            if i % 30 == 10:
                rs.step_down()
            if i % 30 == 20:
                primary = rs.primary
                assert primary is not None
                victim = primary
                rs.kill(victim)
            if i % 30 == 25:
                rs.restart(victim)
            doc = {"n": i}
            engine.insert_one(coll, doc)
            ids.append(doc["_id"])
            if i % 3 == 0:
                engine.update_one(coll, {"_id": doc["_id"]}, {"$set": {"seen": True}})
        assert engine.count_documents(coll, {}) == 150
        assert sorted(d["_id"] for d in engine.find(coll, {})) == sorted(ids)
        assert engine.count_documents(coll, {"seen": True}) == 50


def test_update_many_not_rerun_after_ambiguous_error(engine: Engine) -> None:
    coll = things(engine)
    engine.insert_many(coll, [{"k": 1, "v": 0} for _ in range(3)])
    fail(engine, {"times": 1}, failCommands=["update"], writeConcernError={"code": 91})
    with pytest.raises(pymongo.errors.WriteConcernError):
        engine.update_many(coll, {"k": 1}, {"$inc": {"v": 1}})
    assert [d["v"] for d in engine.find(coll, {})] == [1, 1, 1]


def test_update_many_retried_when_not_applied(engine: Engine) -> None:
    coll = things(engine)
    engine.insert_many(coll, [{"k": 1, "v": 0} for _ in range(3)])
    fail(engine, {"times": 2}, failCommands=["update"], errorCode=10107)
    result = engine.update_many(coll, {"k": 1}, {"$inc": {"v": 1}})
    assert result.modified_count == 3
    assert [d["v"] for d in engine.find(coll, {})] == [1, 1, 1]


def test_insert_one_idempotent_after_ambiguous_failure(engine: Engine) -> None:
    coll = things(engine)
    fail(engine, {"times": 1}, failCommands=["insert"], writeConcernError={"code": 91})
    doc: dict[str, Any] = {"x": 1}
    result = engine.insert_one(coll, doc)
    assert isinstance(doc["_id"], ObjectId)
    assert result.inserted_id == doc["_id"]
    assert engine.count_documents(coll, {}) == 1


def test_insert_many_idempotent_after_ambiguous_failure(engine: Engine) -> None:
    coll = things(engine)
    fail(engine, {"times": 1}, failCommands=["insert"], writeConcernError={"code": 91})
    docs = [{"i": i} for i in range(5)]
    result = engine.insert_many(coll, docs)
    assert result.inserted_ids == [d["_id"] for d in docs]
    assert engine.count_documents(coll, {}) == 5


def test_duplicate_key_is_not_retried(engine: Engine) -> None:
    coll = things(engine)
    engine.insert_one(coll, {"_id": 1})
    with pytest.raises(pymongo.errors.DuplicateKeyError):
        engine.insert_one(coll, {"_id": 1})


def test_write_retry_zero_means_one_attempt(rs: ReplicaSet, caplog: Any) -> None:
    with Engine(rs.uri, retryWrites=False, write_retry=0) as engine:
        fail(engine, {"times": 1}, failCommands=["insert"], errorCode=10107)
        with caplog.at_level(logging.WARNING), pytest.raises(pymongo.errors.AutoReconnect):
            engine.insert_one(things(engine), {"x": 1})
        assert not [r for r in caplog.records if "retrying" in r.getMessage()]
        assert engine.count_documents(things(engine), {}) == 0


def test_write_retry_caps_attempts_and_raises_last_error(rs: ReplicaSet, caplog: Any) -> None:
    with Engine(rs.uri, retryWrites=False, write_retry=2, write_retry_delay=0.01) as engine:
        fail(engine, {"times": 5}, failCommands=["insert"], errorCode=10107)
        with caplog.at_level(logging.WARNING), pytest.raises(pymongo.errors.NotPrimaryError):
            engine.insert_one(things(engine), {"x": 1})
        assert len([r for r in caplog.records if "retrying" in r.getMessage()]) == 2
        fail(engine, "off")


def test_deadline_stops_unbounded_retries(rs: ReplicaSet) -> None:
    with Engine(rs.uri, retryWrites=False, write_retry_delay=0.01, retry_deadline=0.3) as engine:
        fail(engine, "alwaysOn", failCommands=["insert"], errorCode=10107)
        with pytest.raises(pymongo.errors.NotPrimaryError):
            engine.insert_one(things(engine), {"x": 1})
        fail(engine, "off")


def test_hooks_fire_on_step_down(engine: Engine, rs: ReplicaSet) -> None:
    typed: list[PrimarySwitch] = []
    legacy: list[Engine] = []
    engine.hooks.register(PrimarySwitch, typed.append)
    engine.register_hook(legacy.append)
    wait_for(lambda: engine.address is not None)
    old = rs.addresses[rs.primary or 0]
    rs.step_down()
    wait_for(lambda: any(e.new is not None for e in typed) and legacy)
    switch = next(e for e in typed if e.new is not None)
    assert switch.reason == "election"
    assert f"{switch.previous.host}:{switch.previous.port}" == old  # type: ignore[union-attr]
    assert f"{switch.new.host}:{switch.new.port}" == rs.addresses[rs.primary or 0]  # type: ignore[union-attr]
    assert legacy[0] is engine


def test_reconnect_closes_old_client_and_fires_hooks(engine: Engine) -> None:
    typed: list[PrimarySwitch] = []
    legacy: list[Engine] = []
    engine.hooks.register(PrimarySwitch, typed.append)
    engine.register_hook(legacy.append)
    old = engine.client
    engine.reconnect()
    assert engine.client is not old
    with pytest.raises(pymongo.errors.InvalidOperation):
        old.test.things.find_one()
    assert [e.reason for e in typed] == ["reconnect"]
    assert legacy == [engine]
    assert engine.ping()


def test_hook_calling_reconnect_does_not_deadlock(engine: Engine, rs: ReplicaSet) -> None:
    calls: list[int] = []

    def hook(e: Engine) -> None:
        calls.append(threading.get_ident())
        if len(calls) < 3:
            e.reconnect()

    engine.register_hook(hook)
    engine.reconnect()
    assert len(calls) == 1
    wait_for(lambda: engine.address is not None)
    rs.failover(((rs.primary or 0) + 1) % 3)  # the hook now runs on a pymongo monitor thread
    wait_for(lambda: len(calls) == 2)
    assert engine.insert_one(things(engine), {"x": 1}).acknowledged


def test_collection_resolved_on_current_client(engine: Engine) -> None:
    coll = engine.get_database("test").get_collection("things", write_concern=WriteConcern(w=1))

    class Wrapper:
        pymongo_collection = coll
        name = "things"

    engine.reconnect()
    engine.insert_one(coll, {"x": 1})
    engine.insert_one(Wrapper(), {"x": 2})
    assert engine.collection(Wrapper()).write_concern == WriteConcern(w=1)
    assert engine.collection(coll).database.client is engine.client
    assert engine.collection(coll).full_name == "test.things"
    assert engine.count_documents(coll, {}) == 2


def test_cursor_interrupted_after_delivery(engine: Engine) -> None:
    coll = things(engine)
    engine.insert_many(coll, [{"i": i} for i in range(50)])
    seen = []
    with engine.find(coll, {}, batch_size=10) as cursor:
        seen.append(next(cursor))
        fail(engine, {"times": 5}, failCommands=["getMore"], closeConnection=True)
        with pytest.raises(CursorInterrupted) as info:
            seen.extend(cursor)
    assert info.value.delivered == len(seen) == 10
    assert isinstance(info.value.__cause__, pymongo.errors.PyMongoError)


def test_cursor_opening_is_retried(engine: Engine) -> None:
    coll = things(engine)
    engine.insert_many(coll, [{"i": i} for i in range(5)])
    fail(engine, {"times": 2}, failCommands=["find"], errorCode=10107)
    assert len(engine.find(coll, {}).to_list()) == 5
    fail(engine, {"times": 2}, failCommands=["aggregate"], errorCode=10107)
    docs = engine.aggregate(coll, [{"$match": {"i": {"$gte": 3}}}]).to_list()
    assert sorted(d["i"] for d in docs) == [3, 4]


def test_other_operations(engine: Engine) -> None:
    coll = things(engine)
    engine.insert_many(coll, [{"_id": i, "k": i % 2} for i in range(4)])
    assert engine.find_one(coll, {"_id": 1})["k"] == 1
    assert sorted(engine.distinct(coll, "k")) == [0, 1]
    assert engine.replace_one(coll, {"_id": 0}, {"k": 5}).modified_count == 1
    assert engine.find_one_and_update(coll, {"_id": 1}, {"$set": {"k": 7}})["k"] == 1
    assert engine.find_one_and_delete(coll, {"_id": 2})["_id"] == 2
    assert engine.delete_one(coll, {"_id": 3}).deleted_count == 1
    assert engine.delete_many(coll, {}).deleted_count == 2
    name = engine.create_index(coll, [("k", 1)])
    assert name in engine.index_information(coll)
    assert len(engine.list_indexes(coll)) == 2
    engine.drop_index(coll, name)
    engine.drop_database("test")
    engine.dispose()
    engine.dispose()
    assert engine.disposed

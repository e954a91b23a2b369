"""The simulated replica set driven by the real pymongo client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pymongo
import pymongo.errors
import pytest
from clustersim.mongo import ReplicaSet
from pymongo import MongoClient

FAST: dict[str, Any] = {"heartbeatFrequencyMS": 500, "serverSelectionTimeoutMS": 10_000}


@pytest.fixture
def client(mongodb_uri: str) -> Iterator[MongoClient[dict[str, Any]]]:
    with MongoClient(mongodb_uri, **FAST) as connected:
        yield connected


def fresh(client: MongoClient[dict[str, Any]]) -> Any:
    return client["clustersim_tests"][f"c_{uuid.uuid4().hex[:8]}"]


def test_discovery_from_one_seed_finds_every_member_and_the_primary() -> None:
    with (
        ReplicaSet(members=3) as rs,
        MongoClient(f"mongodb://{rs.addresses[1]}/?replicaSet=rs0", **FAST) as client,
    ):
        client.admin.command("ping")
        host, port = rs.addresses[0].split(":")
        assert client.primary == (host, int(port))
        assert len(client.nodes) == 3
        assert client.is_primary


def test_crud_round_trip(client: MongoClient[dict[str, Any]]) -> None:
    coll = fresh(client)
    coll.insert_one({"_id": 1, "a": 1})
    coll.insert_many([{"_id": 2, "a": 2}, {"_id": 3, "a": 3}])
    assert coll.find_one({"_id": 2}) == {"_id": 2, "a": 2}
    assert [d["_id"] for d in coll.find({"a": {"$gte": 2}}).sort("a", -1)] == [3, 2]
    assert coll.update_one({"_id": 1}, {"$inc": {"a": 10}}).modified_count == 1
    assert coll.update_many({}, {"$set": {"b": True}}).matched_count == 3
    assert coll.replace_one({"_id": 3}, {"z": 9}).modified_count == 1
    assert coll.find_one({"_id": 3}) == {"_id": 3, "z": 9}
    assert coll.update_one({"_id": 4}, {"$set": {"a": 4}}, upsert=True).upserted_id == 4
    assert coll.count_documents({"b": True}) == 2
    assert coll.estimated_document_count() == 4
    assert sorted(coll.distinct("a")) == [2, 4, 11]
    assert coll.delete_many({"a": {"$gt": 3}}).deleted_count == 2
    assert coll.find_one_and_update({"_id": 2}, {"$set": {"a": 20}}, return_document=True) == {
        "_id": 2,
        "a": 20,
        "b": True,
    }
    assert coll.find_one_and_delete({"_id": 2}) == {"_id": 2, "a": 20, "b": True}
    assert [d["_id"] for d in coll.find()] == [3]


def test_batches_and_get_more(client: MongoClient[dict[str, Any]]) -> None:
    coll = fresh(client)
    coll.insert_many([{"_id": i} for i in range(250)])
    assert [d["_id"] for d in coll.find(batch_size=7)] == list(range(250))
    assert len(list(coll.find().skip(240).limit(5))) == 5
    assert list(coll.find({}, {"_id": 1}).limit(-1)) == [{"_id": 0}]


def test_unique_index_is_enforced(client: MongoClient[dict[str, Any]]) -> None:
    coll = fresh(client)
    coll.create_index("email", unique=True, name="email_unique")
    coll.insert_one({"email": "a@example.com"})
    with pytest.raises(pymongo.errors.DuplicateKeyError):
        coll.insert_one({"email": "a@example.com"})
    assert "email_unique" in coll.index_information()
    coll.drop_index("email_unique")
    assert "email_unique" not in coll.index_information()


def test_catalogue_commands(client: MongoClient[dict[str, Any]]) -> None:
    db = client["clustersim_catalogue"]
    db.create_collection("things")
    with pytest.raises(pymongo.errors.CollectionInvalid):
        db.create_collection("things")
    assert "things" in db.list_collection_names()
    assert "clustersim_catalogue" in client.list_database_names()
    db.drop_collection("things")
    assert "things" not in db.list_collection_names()
    client.drop_database("clustersim_catalogue")


def test_unknown_command_is_refused(client: MongoClient[dict[str, Any]]) -> None:
    with pytest.raises(pymongo.errors.OperationFailure) as info:
        client.admin.command("noSuchCommandAtAll")
    assert info.value.code == 59


def test_without_an_election_delay_a_new_primary_is_named_at_once() -> None:
    with ReplicaSet(members=3) as rs:
        for _ in range(20):
            old = rs.step_down()
            assert rs.primary is not None
            assert rs.primary != old
        victim = rs.primary
        assert victim is not None
        rs.kill(victim)
        assert rs.primary not in (None, victim)

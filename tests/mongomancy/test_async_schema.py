"""The asyncio data-definition layer on a simulated replica set, through AsyncMongoClient."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from clustersim.mongo import ReplicaSet
from mongomancy import AsyncCollection, AsyncDatabase, CreateAllReport
from mongomancy._async.engine import AsyncEngine
from mongomancy.errors import LockTimeout
from mongomancy.types import CollectionDefinition, Document, Index
from pymongo import AsyncMongoClient


@pytest.fixture
async def engine(rs: ReplicaSet) -> AsyncIterator[AsyncEngine]:
    async with AsyncEngine(rs.uri) as created:
        yield created


@pytest.fixture
async def client(rs: ReplicaSet) -> AsyncIterator[AsyncMongoClient[Any]]:
    plain: AsyncMongoClient[Any] = AsyncMongoClient(rs.uri)
    try:
        yield plain
    finally:
        await plain.close()


async def test_basics(engine: AsyncEngine) -> None:
    game = CollectionDefinition("game", [Index({"genre": 1})])
    db = AsyncDatabase(engine=engine)
    db.add_collection(game)
    assert db.name == "test"
    assert "game" in db
    assert db["game"] is db.game
    assert isinstance(db.game, AsyncCollection)
    with pytest.raises(KeyError):
        db["nope"]
    with pytest.raises(AttributeError):
        db.nope  # noqa: B018
    assert await db.ping() is True
    report = await db.create_all()
    assert report.collections_created == ("game",)
    assert report.indexes_created == (("game", "ix__game__genre"),)
    await db.game.insert_many([{"genre": "adventure", "n": i} for i in range(3)])
    found = [d["n"] async for d in db.game.find({"genre": "adventure"}, sort=[("n", 1)])]
    assert found == [0, 1, 2]
    assert await db.game.count_documents({}) == 3
    assert (await db.game.find_one({"n": 1}))["genre"] == "adventure"
    assert "game" in await db.list_collection_names()
    assert await db.create_all(skip_existing=False) == CreateAllReport()
    await db.drop()
    assert "game" not in await db.list_collection_names()


async def test_drift_and_documents(engine: AsyncEngine, client: AsyncMongoClient[Any]) -> None:
    await client.adrift.c.create_index([("a", 1)], name="ix__c__a", unique=True)
    definition = CollectionDefinition(
        "c", [Index({"a": 1})], [Document({"k": 1}, {"k": 1, "v": "default"})]
    )
    db = AsyncDatabase("adrift", None, engine, definition)
    report = await db.create_all(skip_existing=False)
    assert [(d.name, d.actual_options, d.repaired) for d in report.drift] == [
        ("ix__c__a", {"unique": True}, False)
    ]
    assert report.documents_upserted == (("c", {"k": 1}),)
    await db.c.update_one({"k": 1}, {"$set": {"v": "changed"}})
    repaired = await db.create_all(skip_existing=False, repair=True)
    assert [d.repaired for d in repaired.drift] == [True]
    assert repaired.documents_upserted == ()
    assert (await db.c.find_one({"k": 1}))["v"] == "changed"
    info = await db.c.index_information()
    assert "unique" not in info["ix__c__a"]


async def test_tasks_serialize(engine: AsyncEngine) -> None:
    definition = CollectionDefinition("c", [Index({"a": 1})], [Document(None, {"x": 1})])
    databases = [
        AsyncDatabase("atasks", None, engine, definition, wait_step=0.01) for _ in range(4)
    ]
    reports = await asyncio.gather(*(db.create_all() for db in databases))
    assert sorted(len(r.collections_created) for r in reports) == [0, 0, 0, 1]
    assert sum(len(r.documents_inserted) for r in reports) == 1
    assert await databases[0].c.count_documents({}) == 1


async def test_async_lock_takeover_and_timeout(
    engine: AsyncEngine, client: AsyncMongoClient[Any]
) -> None:
    locks = client.alock.mongomancy_lock
    now = datetime.now(UTC)
    await locks.insert_one(
        {"_id": "create_all:alock", "owner": "dead", "expires_at": now - timedelta(minutes=1)}
    )
    db = AsyncDatabase("alock", None, engine, CollectionDefinition("c"), max_wait=0.0)
    assert (await db.create_all()).collections_created == ("c",)
    assert await locks.count_documents({}) == 0

    await locks.insert_one(
        {"_id": "create_all:alock", "owner": "alive", "expires_at": now + timedelta(hours=1)}
    )
    held = AsyncDatabase(
        "alock", None, engine, CollectionDefinition("c"), wait_step=0.01, max_wait=0.05
    )
    with pytest.raises(LockTimeout):
        await held.create_all()
    assert await locks.find_one({"owner": "alive"}) is not None


async def test_async_cache_follows_reconnect(engine: AsyncEngine) -> None:
    db = AsyncDatabase("ahook", None, engine, CollectionDefinition("c"))
    before = db.c.dialect_entity
    await engine.reconnect()
    assert db.c.dialect_entity is not before
    await db.c.insert_one({"_id": 1})
    assert await db.c.find_one({"_id": 1}) == {"_id": 1}
    result = await db.c.aggregate([{"$match": {"_id": 1}}])
    assert [d async for d in result] == [{"_id": 1}]

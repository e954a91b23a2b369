"""The simulated set on the caller's event loop, driven by AsyncMongoClient and motor."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from clustersim.mongo import ReplicaSet
from motor import motor_asyncio
from pymongo import AsyncMongoClient

from .conftest import REAL_URI

FAST: dict[str, Any] = {"heartbeatFrequencyMS": 500, "serverSelectionTimeoutMS": 10_000}

pytestmark = pytest.mark.skipif(
    bool(REAL_URI), reason="kills members of the deployment; MONGODB_URI is a real deployment"
)


@pytest.mark.parametrize("polling", [False, True], ids=["streaming", "polling"])
async def test_async_client_survives_kills_on_the_callers_loop(polling: bool) -> None:
    async with ReplicaSet(members=3, polling=polling) as rs:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(rs.uri, **FAST)
        try:
            coll = client.test[f"a_{uuid.uuid4().hex[:8]}"]
            written = 0
            for _ in range(3):
                for _ in range(10):
                    await coll.insert_one({"n": written})
                    written += 1
                old = rs.primary
                assert old is not None
                await rs.akill(old)
                await coll.insert_one({"n": written})
                written += 1
                await rs.arestart(old)
            values = sorted([d["n"] async for d in coll.find()])
        finally:
            await client.close()
    assert values == list(range(written))


async def test_motor_discovers_and_writes_through_a_step_down() -> None:
    async with ReplicaSet(members=3) as rs:
        client = motor_asyncio.AsyncIOMotorClient(rs.uri, **FAST)
        try:
            coll = client.test[f"m_{uuid.uuid4().hex[:8]}"]
            await coll.insert_one({"n": 0})
            rs.step_down()
            await coll.insert_one({"n": 1})
            assert await coll.count_documents({}) == 2
        finally:
            client.close()


async def test_sync_controls_are_refused_where_they_would_block_the_loop() -> None:
    async with ReplicaSet(members=1) as rs:
        with pytest.raises(Exception, match="await"):
            rs.restart(0)


async def test_async_change_stream_resumes_across_a_kill() -> None:
    async with ReplicaSet(members=3) as rs:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(rs.uri, **FAST)
        try:
            coll = client.test[f"acs_{uuid.uuid4().hex[:8]}"]
            seen: list[int] = []
            async with await coll.watch() as stream:
                for n in range(40):
                    await coll.insert_one({"n": n})
                    if n == 20:
                        old = rs.primary
                        assert old is not None
                        await rs.akill(old)
                        await rs.arestart(old)
                while len(seen) < 40:
                    event = await stream.next()
                    seen.append(event["fullDocument"]["n"])
        finally:
            await client.close()
    assert seen == list(range(40))

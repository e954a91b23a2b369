"""A retryable write applied just before its connection died is still recorded.

Killing a member cancels the coroutine serving a connection. If that happened after the store
applied an insert but before the retryable-write record was kept, the driver's retry would
apply it again and the application would see a DuplicateKeyError. Here the insert is held right
after the store applied it, the member is killed, then the insert is let go: the retry must get
the recorded reply.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from clustersim.mongo import ReplicaSet
from clustersim.mongo.commands import HANDLERS
from pymongo import AsyncMongoClient

GUARD = 30


async def test_a_write_applied_before_its_connection_died_is_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with ReplicaSet(members=1) as rs:
        original = HANDLERS["insert"]
        applied, release = asyncio.Event(), asyncio.Event()

        async def insert_then_hold(context: Any) -> dict[str, Any]:
            reply: dict[str, Any] = await original(context)  # the store has the document now
            applied.set()
            await release.wait()  # the connection dies while the reply is on its way
            return reply

        monkeypatch.setitem(HANDLERS, "insert", insert_then_hold)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            rs.uri, retryWrites=True, serverSelectionTimeoutMS=10_000
        )
        try:
            async with asyncio.timeout(GUARD):
                insert = asyncio.create_task(client.db.things.insert_one({"_id": 1}))
                await applied.wait()
                monkeypatch.setitem(HANDLERS, "insert", original)
                await rs.akill(0)
                release.set()
                await rs.arestart(0)
                result = await insert  # retried by pymongo on the restarted member
                assert result.inserted_id == 1
                assert await client.db.things.count_documents({}) == 1
        finally:
            await client.close()

"""The AsyncEngine against a simulated replica set on the test's own event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pymongo.errors
import pytest
from clustersim.mongo import ReplicaSet
from mongomancy._async.engine import AsyncEngine
from mongomancy.errors import CursorInterrupted
from mongomancy.hooks import PrimarySwitch


async def wait_for(predicate: Callable[[], object], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - polls another component's state
            await asyncio.sleep(0.02)


async def test_write_loop_across_a_kill() -> None:
    async with (
        ReplicaSet(members=3, name="rs0") as rs,
        AsyncEngine(rs.uri, write_retry_delay=0.01) as engine,
    ):
        coll = engine.get_database("test").get_collection("things")
        ids = []
        victim = 0
        for i in range(60):
            if i == 20:
                primary = rs.primary
                assert primary is not None
                victim = primary
                await rs.akill(victim)
            if i == 40:
                await rs.arestart(victim)
            doc = {"n": i}
            await engine.insert_one(coll, doc)
            ids.append(doc["_id"])
            await engine.update_one(coll, {"_id": doc["_id"]}, {"$set": {"seen": True}})
        assert await engine.count_documents(coll, {"seen": True}) == 60
        found = [d["_id"] async for d in engine.find(coll, {})]
        assert sorted(found) == sorted(ids)


async def test_hooks_on_step_down_and_reconnect() -> None:
    async with (
        ReplicaSet(members=3, name="rs0") as rs,
        AsyncEngine(rs.uri) as engine,
    ):
        typed: list[PrimarySwitch] = []
        legacy: list[AsyncEngine] = []

        async def on_switch(event: PrimarySwitch) -> None:
            typed.append(event)

        engine.hooks.register(PrimarySwitch, on_switch)
        engine.register_hook(legacy.append)
        assert await engine.ping()
        await wait_for(lambda: engine.address is not None)
        old = rs.addresses[rs.primary or 0]
        rs.step_down()
        await wait_for(lambda: legacy)
        switch = next(e for e in typed if e.new is not None)
        assert switch.reason == "election"
        assert f"{switch.previous.host}:{switch.previous.port}" == old  # type: ignore[union-attr]
        old_client = engine.client
        await engine.reconnect()
        assert typed[-1].reason == "reconnect"
        assert legacy == [engine, engine]
        with pytest.raises(pymongo.errors.InvalidOperation):
            await old_client.test.things.find_one()
        assert await engine.ping()


async def test_cursor_interrupted_and_aggregate() -> None:
    async with (
        ReplicaSet(members=3, name="rs0") as rs,
        AsyncEngine(rs.uri, retryWrites=False) as engine,
    ):
        coll = engine.get_database("test").get_collection("things")
        await engine.insert_many(coll, [{"i": i} for i in range(30)])
        cursor = await engine.aggregate(coll, [{"$match": {"i": {"$lt": 3}}}])
        assert len(await cursor.to_list()) == 3
        seen: list[Any] = []
        async with engine.find(coll, {}, batch_size=10) as cursor:
            seen.append(await anext(cursor))
            await engine.client.admin.command(
                "configureFailPoint",
                "failCommand",
                mode={"times": 5},
                data={"failCommands": ["getMore"], "closeConnection": True},
            )
            with pytest.raises(CursorInterrupted) as info:  # noqa: PT012 - the loop is the call
                async for doc in cursor:
                    seen.append(doc)
        assert info.value.delivered == len(seen) == 10

"""``await pymo.async_mongo_client``: the same rules, on the event loop, never blocking it."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Callable

import pymo
import pytest
from clustersim.mongo import ReplicaSet
from pymo import SERVER_STATE_SELECTORS as STATE
from pymo import SERVER_TYPE_SELECTORS as TYPE
from pymo.errors import ServerSelectionTryOnceTimeoutError
from pymongo import AsyncMongoClient


async def test_a_writable_replica_set_passes(rs: ReplicaSet) -> None:
    client = await pymo.async_mongo_client(rs.uri, state_selectors=STATE.Writable)
    try:
        assert isinstance(client, AsyncMongoClient)
        assert (await client.admin.command("ping"))["ok"] == 1
    finally:
        await client.close()


async def test_refused_seeds_fail_at_once(closed_port: Callable[[], int]) -> None:
    uri = f"mongodb://user:pa55@127.0.0.1:{closed_port()}/"
    with pytest.raises(ServerSelectionTryOnceTimeoutError) as caught:
        await pymo.async_mongo_client(uri, fail_fast_timeout=20)
    assert "on the first heartbeats" in str(caught.value)  # not after the 20 s bound
    assert "pa55" not in str(caught.value)


async def test_election_window_and_non_seed_members(rs: ReplicaSet) -> None:
    secondary = next(i for i in range(3) if i != rs.primary)
    one = f"mongodb://{rs.addresses[secondary]}/?replicaSet=rs0"
    with pytest.raises(ServerSelectionTryOnceTimeoutError):
        await pymo.async_mongo_client(one, type_selectors=TYPE.RSPrimary, fail_fast_timeout=20)
    rs.election_delay = 5
    rs.step_down()
    with pytest.raises(ServerSelectionTryOnceTimeoutError) as caught:
        await pymo.async_mongo_client(rs.uri, state_selectors=STATE.Writable, fail_fast_timeout=20)
    assert "on the first heartbeats" in str(caught.value)  # every seed answered: no waiting


async def test_the_loop_keeps_running_while_waiting(rs: ReplicaSet) -> None:
    for member in range(3):
        rs.partition(member)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    try:
        with pytest.raises(ServerSelectionTryOnceTimeoutError, match=r"within 0\.3 s"):
            await pymo.async_mongo_client(rs.uri, fail_fast_timeout=0.3)
    finally:
        task.cancel()
    assert ticks > 5


async def test_fail_fast_false_gives_a_plain_client(closed_port: Callable[[], int]) -> None:
    client = await pymo.async_mongo_client(f"127.0.0.1:{closed_port()}", fail_fast=False)
    assert type(client) is AsyncMongoClient
    await client.close()


async def test_a_failed_check_leaves_no_socket_or_task(rs: ReplicaSet) -> None:
    # Every seed answers as a secondary at once, so the error comes right after the replies that
    # make pymongo start its round-trip monitors: the moment a socket could be left connecting.
    rs.election_delay = 30
    rs.step_down()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(8):
            with pytest.raises(ServerSelectionTryOnceTimeoutError):
                await pymo.async_mongo_client(rs.uri, state_selectors=STATE.Writable)
            await asyncio.sleep(0.05)
            gc.collect()
    assert [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)] == []
    others = [t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert [name for name in others if name.startswith("pymongo")] == []

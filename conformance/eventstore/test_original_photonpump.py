"""The published photon-pump 0.9.5.2 against the simulator: an independent check of our wire format.

Run by ``nox -s conformance-eventstore`` in a virtual environment of its own (photon-pump's
generated code needs the pure-Python protobuf backend, a process-wide setting). The simulator runs
in a child process started from the CLI, with the fast backend, exactly as users would start it.
Nothing here imports our own client.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import photonpump
import pytest
from photonpump import messages

GUARD = 20  # seconds: a hang fails the test instead of stalling the run


def _start(*args: str) -> tuple[subprocess.Popen[str], dict[str, list[str]]]:
    env = dict(os.environ)
    env.pop("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", None)  # the simulator uses the fast one
    process = subprocess.Popen(
        [sys.executable, "-m", "clustersim", "eventstore", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        raise RuntimeError("the simulator printed nothing")
    return process, json.loads(line)


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(timeout=GUARD) == 0
    finally:
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, list[str]]]:
    process, addresses = _start("--nodes", "3", "--gossip", "v5")
    try:
        yield addresses
    finally:
        _stop(process)


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


async def _leader_client(cluster: dict[str, list[str]]) -> Any:
    """photon-pump with gossip discovery, preferring the master as its docs recommend."""
    host, port = _host_port(cluster["gossip"][0])
    return photonpump.connect(
        discovery_host=host,
        discovery_port=port,
        selector=photonpump.discovery.prefer_master,
        username="admin",
        password="changeit",
    )


@pytest.fixture
async def conn(cluster: dict[str, list[str]]) -> AsyncIterator[Any]:
    client = await _leader_client(cluster)
    async with asyncio.timeout(GUARD):
        await client.connect()
    try:
        yield client
    finally:
        await client.close()


def stream_name() -> str:
    return f"ponies-{uuid.uuid4().hex[:8]}"


async def test_ping_over_gossip_discovery(conn: Any) -> None:
    async with asyncio.timeout(GUARD):
        elapsed = await conn.ping()
    assert elapsed >= 0


async def test_publish_event_and_get_event(conn: Any) -> None:
    stream = stream_name()
    async with asyncio.timeout(GUARD):
        result = await conn.publish_event(
            stream, "PonyJumped", body={"Pony": "Derpy", "Height": 10}
        )
        event = await conn.get_event(stream, result.last_event_number)
    assert result.first_event_number == result.last_event_number == 0
    assert event.type == "PonyJumped"
    assert event.json() == {"Pony": "Derpy", "Height": 10}
    assert event.event_number == 0


async def test_publish_batch_then_get_both_directions(conn: Any) -> None:
    stream = stream_name()
    events = [messages.NewEvent("PonyJumped", data={"i": i}) for i in range(3)]
    async with asyncio.timeout(GUARD):
        result = await conn.publish(stream, events)
        forward = await conn.get(stream)
        one = await conn.get(stream, max_count=1, from_event=1)
        backward = await conn.get(
            stream, direction=messages.StreamDirection.Backward, from_event=2, max_count=3
        )
    assert (result.first_event_number, result.last_event_number) == (0, 2)
    assert [e.json()["i"] for e in forward] == [0, 1, 2]
    assert [e.json()["i"] for e in one] == [1]
    assert [e.json()["i"] for e in backward] == [2, 1, 0]


async def test_wrong_expected_version_is_reported(conn: Any) -> None:
    stream = stream_name()
    async with asyncio.timeout(GUARD):
        await conn.publish_event(stream, "t", body={"n": 1})
        result = await conn.publish_event(stream, "t", body={"n": 2}, expected_version=5)
    assert result.result == messages.OperationResult.WrongExpectedVersion


async def test_iter_pages_through_a_stream(conn: Any) -> None:
    stream = stream_name()
    async with asyncio.timeout(GUARD):
        await conn.publish(stream, [messages.NewEvent("t", data={"i": i}) for i in range(250)])
        seen = [event.json()["i"] async for event in conn.iter(stream, batch_size=100)]
    assert seen == list(range(250))


async def test_iter_all_reaches_every_event(conn: Any) -> None:
    stream = stream_name()
    async with asyncio.timeout(GUARD):
        await conn.publish(stream, [messages.NewEvent("t", data={"i": i}) for i in range(30)])
        ours = [e.json()["i"] async for e in conn.iter_all(batch_size=50) if e.stream == stream]
    assert ours == list(range(30))


async def test_volatile_subscription_gets_new_events(conn: Any) -> None:
    stream = stream_name()
    async with asyncio.timeout(GUARD):
        subscription = await conn.subscribe_to(stream)
        await conn.publish(stream, [messages.NewEvent("t", data={"i": i}) for i in range(5)])
        seen = []
        async for event in subscription.events:
            seen.append(event.json()["i"])
            if len(seen) == 5:
                break
        await subscription.unsubscribe()
    assert seen == [0, 1, 2, 3, 4]


async def test_catch_up_subscription_reads_history_then_live(conn: Any) -> None:
    stream = stream_name()
    async with asyncio.timeout(GUARD):
        await conn.publish(stream, [messages.NewEvent("t", data={"i": i}) for i in range(150)])
        subscription = await conn.subscribe_to(stream, start_from=0, batch_size=50)
        seen = []
        async for event in subscription.events:
            seen.append(event.json()["i"])
            if len(seen) == 150:
                await conn.publish(stream, [messages.NewEvent("t", data={"i": 150})])
            if len(seen) == 151:
                break
    assert seen == list(range(151))


async def test_persistent_subscription_create_connect_ack(conn: Any) -> None:
    stream = stream_name()
    async with asyncio.timeout(GUARD):
        await conn.create_subscription("workers", stream, start_from=0)
        await conn.publish(stream, [messages.NewEvent("t", data={"i": i}) for i in range(12)])
        subscription = await conn.connect_subscription("workers", stream)
        seen = []
        async for event in subscription.events:
            seen.append(event.json()["i"])
            await subscription.ack(event)
            if len(seen) == 12:
                break
    assert sorted(seen) == list(range(12))
    assert subscription.name == f"{stream}::workers"


async def test_single_node_connection_by_tcp_address(cluster: dict[str, list[str]]) -> None:
    """No discovery: the original's host/port mode against one node."""
    host, port = _host_port(cluster["tcp"][1])
    async with asyncio.timeout(GUARD), photonpump.connect(host=host, port=port) as client:
        assert await client.ping() >= 0

"""The pymongo adapter fed by the real pymongo monitor, over real loopback sockets."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pymongo
import pymongo.errors
import pytest
from pymongo import monitoring

from resilient_topology import (
    Address,
    ConfigurationError,
    ConnectionFailure,
    RemoteProtocolError,
    ServerSelectionTimeout,
    ServerType,
    TopologySettings,
)
from resilient_topology.drivers import AsyncTopologyWaiter, TopologyWaiter
from resilient_topology.hooks import HookRegistry, PrimaryChanged
from resilient_topology.mongo import (
    PymongoHeartbeatAdapter,
    PymongoTopologyAdapter,
    TopologySnapshot,
    map_pymongo_errors,
    translate_pymongo_error,
)

from ._hello_server import HelloServer


def primary_reply(server: HelloServer) -> dict[str, Any]:
    return {
        "ok": 1,
        "helloOk": True,
        "isWritablePrimary": True,
        "setName": "rs",
        "hosts": [server.address],
        "me": server.address,
        "minWireVersion": 0,
        "maxWireVersion": 21,
        "logicalSessionTimeoutMinutes": 30,
    }


@pytest.fixture
def primary() -> Iterator[HelloServer]:
    with HelloServer(primary_reply) as server:
        yield server


def secondary_reply(server: HelloServer) -> dict[str, Any]:
    return {**primary_reply(server), "isWritablePrimary": False, "secondary": True}


@contextlib.contextmanager
def watched(
    uri: str, hooks: HookRegistry | None = None
) -> Iterator[tuple[TopologyWaiter[TopologySnapshot], pymongo.MongoClient[dict[str, Any]]]]:
    """A real sync client whose monitoring feeds an adapter, and a waiter on that adapter."""
    adapter = PymongoTopologyAdapter.from_uri(uri, hooks=hooks)
    waiter = TopologyWaiter(adapter.snapshot)
    adapter.subscribe(waiter.publish)
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        uri, event_listeners=[adapter]
    )
    try:
        yield waiter, client
    finally:
        client.close()


@contextlib.asynccontextmanager
async def watched_async(
    uri: str, hooks: HookRegistry | None = None
) -> AsyncIterator[tuple[AsyncTopologyWaiter[TopologySnapshot], PymongoTopologyAdapter]]:
    """The same with ``AsyncMongoClient``, whose listeners run on the event loop."""
    adapter = PymongoTopologyAdapter.from_uri(uri, hooks=hooks)
    waiter = AsyncTopologyWaiter(adapter.snapshot)
    adapter.subscribe(waiter.publish)
    client: pymongo.AsyncMongoClient[dict[str, Any]] = pymongo.AsyncMongoClient(
        uri, event_listeners=[adapter]
    )
    try:
        await client.aconnect()
        yield waiter, adapter
    finally:
        await client.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def has_primary(snapshot: TopologySnapshot) -> bool:
    return snapshot.description.primary is not None


def replica_set_uri(server: HelloServer) -> str:
    return f"mongodb://{server.address}/?replicaSet=rs&heartbeatFrequencyMS=500"


def test_sync_client_heartbeats_reach_the_core(primary: HelloServer) -> None:
    with watched(replica_set_uri(primary)) as (waiter, _):
        snapshot = waiter.wait_for(has_primary, timeout=10)
    seed = Address("127.0.0.1", primary.port)
    assert snapshot.description.servers[seed].server_type is ServerType.RSPrimary
    assert snapshot.description.logical_session_timeout_minutes == 30
    assert snapshot.heartbeats.seed_outcomes()[seed].status == "succeeded"
    assert snapshot.heartbeats.average_rtt(seed) is not None


def test_sync_client_refused_seed_is_reported_failed() -> None:
    port = closed_port()
    uri = f"mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=200&heartbeatFrequencyMS=500"
    with watched(uri) as (waiter, client):
        snapshot = waiter.wait_for(lambda s: s.heartbeats.all_seeds_answered(), timeout=10)
        with pytest.raises(ServerSelectionTimeout), map_pymongo_errors():
            client.admin.command("ping")
    outcome = snapshot.heartbeats.seed_outcomes()[Address("127.0.0.1", port)]
    assert outcome.status == "failed"
    assert snapshot.description.primary is None


async def test_async_client_heartbeats_reach_the_core(primary: HelloServer) -> None:
    async with watched_async(replica_set_uri(primary)) as (waiter, _):
        snapshot = await waiter.wait_for(has_primary, timeout=10)
    assert snapshot.description.primary is not None


def test_primary_stepping_down_is_followed_and_heard_by_hooks(primary: HelloServer) -> None:
    moves: list[PrimaryChanged] = []
    hooks = HookRegistry()
    hooks.register(PrimaryChanged, moves.append)
    with watched(replica_set_uri(primary), hooks) as (waiter, _):
        waiter.wait_for(has_primary, timeout=10)
        primary.reply = secondary_reply
        snapshot = waiter.wait_for(lambda s: not has_primary(s), timeout=10)
    seed = Address("127.0.0.1", primary.port)
    assert snapshot.description.servers[seed].server_type is ServerType.RSSecondary
    assert [(m.previous, m.new) for m in moves] == [(None, seed), (seed, None)]


async def test_async_hooks_run_on_the_loop(primary: HelloServer) -> None:
    moves: list[PrimaryChanged] = []
    hooks = HookRegistry()

    async def on_primary(event: PrimaryChanged) -> None:
        moves.append(event)

    hooks.register(PrimaryChanged, on_primary)
    async with watched_async(replica_set_uri(primary), hooks) as (waiter, adapter):
        await waiter.wait_for(has_primary, timeout=10)
        await adapter.wait_for_hooks()
    assert moves[0].new == Address("127.0.0.1", primary.port)


def test_error_translation_covers_every_connection_failure() -> None:
    classes: list[type[BaseException]] = [pymongo.errors.ConnectionFailure]
    seen: set[type[BaseException]] = set()
    while classes:
        cls = classes.pop()
        if cls in seen:
            continue
        seen.add(cls)
        classes.extend(cls.__subclasses__())
        instance = cls.__new__(cls)
        BaseException.__init__(instance, "boom")
        translated = translate_pymongo_error(instance)
        if issubclass(cls, pymongo.errors.ServerSelectionTimeoutError):
            assert isinstance(translated, ServerSelectionTimeout), cls
        else:
            assert isinstance(translated, ConnectionFailure), cls
    assert isinstance(
        translate_pymongo_error(pymongo.errors.ConfigurationError("x")), ConfigurationError
    )
    assert isinstance(
        translate_pymongo_error(pymongo.errors.ProtocolError("x")), RemoteProtocolError
    )
    assert translate_pymongo_error(pymongo.errors.DuplicateKeyError("x")) is None


def test_map_keeps_the_cause_and_labels() -> None:
    original = pymongo.errors.AutoReconnect("gone", errors={"errorLabels": ["RetryableWriteError"]})
    with pytest.raises(ConnectionFailure) as info, map_pymongo_errors():
        raise original
    assert info.value.__cause__ is original
    assert isinstance(info.value, ConnectionError)


def test_settings_from_adapter_uri_match() -> None:
    adapter = PymongoTopologyAdapter(TopologySettings.of("x:1"))
    assert set(adapter.description.servers) == {Address("x", 1)}


def test_heartbeat_adapter_is_not_a_server_or_topology_listener() -> None:
    # pymongo runs an event-queue thread (and close() waits for it) only for those listeners.
    adapter = PymongoHeartbeatAdapter(TopologySettings.of("x:1"))
    assert isinstance(adapter, monitoring.ServerHeartbeatListener)
    assert not isinstance(adapter, monitoring.ServerListener | monitoring.TopologyListener)
    full = PymongoTopologyAdapter(TopologySettings.of("x:1"))
    assert isinstance(full, monitoring.ServerListener)

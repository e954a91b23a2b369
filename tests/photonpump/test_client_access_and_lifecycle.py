"""The client on a simulated cluster: credentials and access rules, the leader, lifecycle.

Split from ``test_client_api.py`` (same fixtures, see ``conftest.py``); outcomes are checked on
what the client returns and, where it cannot show it, on the simulator's log.
"""

from __future__ import annotations

import asyncio
import uuid
import warnings

import photonpump
import pytest
from clustersim.eventstore import Cluster
from photonpump import (
    Client,
    Credential,
    NewEvent,
    StreamDirection,
    connect,
    exceptions,
)
from photonpump.messages import OperationResult

from .conftest import BOUND, drain, fill, new_client, numbers

# --- security --------------------------------------------------------------------------------


@pytest.fixture
def restricted(cluster: Cluster) -> str:
    """A stream only ``alice`` may read and write; ``bob`` exists but may not."""
    cluster.add_user("alice", "alice-pw")
    cluster.add_user("bob", "bob-pw")
    cluster.restrict("secret", readers={"alice"}, writers={"alice"})
    return "secret"


@pytest.mark.parametrize("via", ["gossip", "tcp"])
async def test_access_denied_on_write_and_the_connection_keeps_serving(
    cluster: Cluster, restricted: str, via: str
) -> None:
    """R1: the original raised and then its dispatch loop was dead."""
    async with new_client(cluster, via, username="bob", password="bob-pw") as bob:
        with pytest.raises(exceptions.AccessDenied):
            await bob.publish_event(restricted, "Denied", body={"x": 1})
        assert await bob.ping() >= 0
        allowed = await bob.publish_event("public", "Fine", body={"x": 2})
        assert allowed.result == OperationResult.Success
        assert (await bob.get_event("public", 0)).json() == {"x": 2}
        with pytest.raises(exceptions.AccessDenied):
            await bob.delete_stream(restricted)
    async with new_client(cluster, via, username="alice", password="alice-pw") as alice:
        written = await alice.publish_event(restricted, "Allowed", body={"x": 3})
        assert written.result == OperationResult.Success
        assert (await alice.get_event(restricted, 0)).json() == {"x": 3}


async def test_access_denied_on_reads(cluster: Cluster, restricted: str) -> None:
    async with new_client(cluster, username="alice", password="alice-pw") as alice:
        await fill(alice, restricted, 3)
    async with new_client(cluster, username="bob", password="bob-pw") as bob:
        with pytest.raises(exceptions.AccessDenied):
            await bob.get_event(restricted, 0)
        with pytest.raises(exceptions.AccessDenied):
            await bob.get(restricted)
        with pytest.raises(exceptions.AccessDenied):
            await bob.get(restricted, StreamDirection.Backward)
        with pytest.raises(exceptions.AccessDenied):
            await drain(bob.iter(restricted))
        assert await bob.ping() >= 0


async def test_access_denied_on_subscribe(cluster: Cluster, restricted: str) -> None:
    async with new_client(cluster, username="bob", password="bob-pw") as bob:
        with pytest.raises(exceptions.AccessDenied):
            await bob.subscribe_to(restricted)
        with pytest.raises(exceptions.AccessDenied):
            await bob.create_subscription("group", restricted)
        assert await bob.ping() >= 0


async def test_access_denied_on_persistent_and_catch_up_subscriptions(
    cluster: Cluster, restricted: str
) -> None:
    async with new_client(cluster, username="admin", password="changeit") as admin:
        await admin.create_subscription("auditors", restricted)
        await admin.publish_event(restricted, "Hidden")
    async with new_client(cluster, username="bob", password="bob-pw") as bob:
        with pytest.raises(exceptions.AccessDenied):
            await bob.connect_subscription("auditors", restricted)

        # The original raised from subscribe_to (its first page failed); ours may also
        # return the subscription and raise from its events: either way, AccessDenied.
        async def first_event() -> object:
            catch_up = await bob.subscribe_to(restricted, start_from=0)
            async with asyncio.timeout(BOUND):
                return await anext(catch_up.events)

        with pytest.raises(exceptions.AccessDenied):
            await first_event()
        assert await bob.ping() >= 0


async def test_per_call_credentials_for_persistent_groups(
    cluster: Cluster, restricted: str
) -> None:
    admin = Credential("admin", "changeit")
    async with new_client(cluster, username="bob", password="bob-pw") as bob:
        await bob.create_subscription("by-admin", restricted, credential=admin)
        assert cluster.state.registry.get(restricted, "by-admin") is not None
        await bob.update_subscription("by-admin", restricted, max_retry_count=2, credential=admin)
        await bob.delete_subscription("by-admin", restricted, credential=admin)
        assert cluster.state.registry.get(restricted, "by-admin") is None


async def test_bad_credentials_raise_not_authenticated(cluster: Cluster) -> None:
    async with new_client(cluster, username="admin", password="wrong") as client:
        with pytest.raises(exceptions.NotAuthenticated):
            await client.publish_event("any", "Event")
        with pytest.raises(exceptions.NotAuthenticated):
            await client.get("any")
        assert await client.ping() >= 0  # ping carries no credentials
    async with new_client(cluster, username="admin", password="changeit") as admin:
        with pytest.raises(exceptions.StreamNotFound):
            await admin.get("any")  # nothing was written


# --- the leader ------------------------------------------------------------------------------


async def test_require_master_from_a_follower_is_served_by_the_leader(cluster: Cluster) -> None:
    """R9, R14: NotMaster is followed to the leader, and iter really sends require_master."""
    assert cluster.leader is not None
    follower = next(i for i in range(3) if i != cluster.leader)
    host, port = cluster.tcp_addresses[follower].rsplit(":", 1)
    async with connect(host, int(port), request_timeout=BOUND) as client:
        await fill(client, "led", 3)  # a follower serves this (no require_master)
        assert client.connection_address is not None
        assert client.connection_address.port == int(port)
        page = await client.get("led", require_master=True)
        assert numbers(page) == [0, 1, 2]
        leader_port = int(cluster.tcp_addresses[cluster.leader].rsplit(":", 1)[1])
        assert client.connection_address.port == leader_port
        async with asyncio.timeout(BOUND):
            events = [e async for e in client.iter("led", batch_size=2, require_master=True)]
        assert numbers(events) == [0, 1, 2]
        written = await client.publish_event("led", "Led", require_master=True)
        assert written.last_event_number == 3


async def test_persistent_groups_through_a_follower_reach_the_leader(cluster: Cluster) -> None:
    assert cluster.leader is not None
    follower = next(i for i in range(3) if i != cluster.leader)
    host, port = cluster.tcp_addresses[follower].rsplit(":", 1)
    async with connect(host, int(port), request_timeout=BOUND) as client:
        await client.create_subscription("via-follower", "routed", start_from=0)
        await fill(client, "routed", 1)
        subscription = await client.connect_subscription("via-follower", "routed")
        async with asyncio.timeout(BOUND):
            event = await anext(subscription.events)
        assert event.json() == {"n": 0}
        await subscription.ack(event)
        await subscription.stop()


# --- events and names ------------------------------------------------------------------------


async def test_event_properties(client: Client) -> None:
    event_id = uuid.uuid4()
    await client.publish("props", [NewEvent("First"), NewEvent("Second", id=event_id, data=[1])])
    event = (await client.get("props", from_event=1, max_count=1))[0]
    assert event.type == "Second"
    assert event.event_number == 1
    assert event.stream == "props"
    assert event.id == event_id
    assert event.json() == [1]
    assert event.received_event is event.event  # no link
    assert event.position is None  # stream reads carry no position
    assert event.created is not None
    assert "1@props:Second" in repr(event)


def test_the_public_names_import() -> None:
    namespace: dict[str, object] = {}
    exec("from photonpump import *", namespace)
    exported = set(namespace) - {"__builtins__"}
    assert exported == set(photonpump.__all__)
    for name in photonpump.__all__:
        assert getattr(photonpump, name) is namespace[name]
    assert photonpump.Client is Client
    assert photonpump.connect is connect
    assert "get" not in exported  # the original leaked webbrowser.get


# --- lifecycle -------------------------------------------------------------------------------


def test_connect_outside_a_running_loop_warns_nothing_and_starts_nothing() -> None:
    """R20: the original scheduled a task in its constructor, which needs a running loop."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        client = connect("127.0.0.1", 1, request_timeout=1.0)
    assert not client.is_connected
    assert client.connection_address is None
    assert client._connector is None

    with Cluster(1) as es:

        async def use() -> float:
            host, port = es.tcp_addresses[0].rsplit(":", 1)
            late = connect(host, int(port), request_timeout=BOUND)
            async with late:
                return await late.ping()

        assert asyncio.run(use()) >= 0

    async def close_unused() -> None:
        await client.close()

    asyncio.run(close_unused())


def test_connect_with_loop_is_deprecated() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.warns(DeprecationWarning, match="loop"):
            client = connect(loop=loop)
    finally:
        loop.close()
    assert isinstance(client, Client)
    assert client._connector is None


async def test_async_with_connect(cluster: Cluster) -> None:
    async with new_client(cluster) as client:
        assert await client.ping() >= 0
        connected_inside = client.is_connected
    assert connected_inside
    assert not client.is_connected
    with pytest.raises(exceptions.ClientClosed):
        await client.ping()


async def test_explicit_connect_and_close(cluster: Cluster) -> None:
    client = new_client(cluster, "tcp")
    await client.connect()
    try:
        assert await client.ping() >= 0
        result = await client.publish_event("lifecycle", "Opened")
        assert result.result == OperationResult.Success
    finally:
        await client.close()
    assert not client.is_connected
    await client.close()  # idempotent
    with pytest.raises(exceptions.ClientClosed):
        await client.ping()
    with pytest.raises(exceptions.ClientClosed):
        await client.publish_event("lifecycle", "AfterClose")
    with pytest.raises(exceptions.ClientClosed):
        await client.get("lifecycle")
    with pytest.raises(exceptions.ClientClosed):
        await client.subscribe_to("lifecycle")
    with pytest.raises(exceptions.ClientClosed):
        await client.connect()


async def test_close_fails_a_pending_request(cluster: Cluster) -> None:
    """R5: the original's close() left pending futures hanging."""
    async with new_client(cluster, "tcp") as client:
        await client.ping()
        assert cluster.leader is not None
        cluster.slow(cluster.leader, 60_000)
        pending = asyncio.create_task(client.get_event("slow", 0))
        await asyncio.sleep(0)  # the request is sent
    with pytest.raises(exceptions.ClientClosed):
        async with asyncio.timeout(BOUND):
            await pending


async def test_a_request_the_caller_gave_up_on_does_not_break_the_connection(
    cluster: Cluster,
) -> None:
    """R2: a late reply to a cancelled request is dropped; the connection goes on."""
    async with new_client(cluster, "tcp") as client:
        await client.publish_event("late", "One", body={"n": 1})
        assert cluster.leader is not None
        cluster.slow(cluster.leader, 200)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.02):
                await client.get_event("late", 0)
        with pytest.raises(exceptions.RequestTimeout):
            await client.get_event("late", 0, timeout=0.02)
        cluster.slow(cluster.leader, 0)
        event = await client.get_event("late", 0)  # its reply is not confused with a late one
        assert event.json() == {"n": 1}
        assert await client.ping() >= 0


async def test_close_before_connecting_is_fine(cluster: Cluster) -> None:
    client = new_client(cluster)
    await client.close()
    await client.close()
    with pytest.raises(exceptions.ClientClosed):
        await client.ping()

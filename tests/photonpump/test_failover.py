"""Failover: leader loss during writes and subscriptions, persistent groups, credentials, TLS.

Simulated clusters from clustersim on loopback, with the client's retries made fast. Every wait
is bounded; no test asserts on timing. "Exactly once, in order" is checked against the shared
log of the simulator as well as by reading back through the client.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import photonpump
import pytest
import trustme
from clustersim.eventstore import Cluster
from photonpump import Client, Event, NakAction
from photonpump._subscriptions import CatchUpSubscription
from photonpump.discovery import DiscoveryRetryPolicy, NodePreference, get_discoverer
from photonpump.exceptions import (
    AccessDenied,
    DiscoveryFailed,
    NotAuthenticated,
    RequestTimeout,
)

from resilient_topology.address import Address
from resilient_topology.hooks import Reconnected

T = TypeVar("T")
BOUND = 10.0  # seconds any single wait in these tests may take before the test fails


# --- helpers ----------------------------------------------------------------------------------


def policy(retries: int = 100) -> DiscoveryRetryPolicy:
    return DiscoveryRetryPolicy(retries, 0.01, 0, 2.0, 0.05, deadline=BOUND)


def node_client(es: Cluster, index: int, **options: Any) -> Client:
    address = Address.of(es.tcp_addresses[index])
    assert address.port is not None
    options.setdefault("request_timeout", BOUND / 2)
    options.setdefault("retry_policy", policy())
    return photonpump.connect(address.host, address.port, **options)


def leader_client(es: Cluster, **options: Any) -> Client:
    """A client that finds the leader through the cluster's gossip."""
    discoverer = get_discoverer(
        None,
        0,
        es.gossip_seeds,
        0,
        NodePreference.LEADER,
        policy(),
        gossip_timeout=0.5,
        gossip_interval=0.5,
    )
    options.setdefault("request_timeout", BOUND)
    return Client(discoverer, **options)


async def eventually(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(BOUND):
        while not predicate():  # noqa: ASYNC110 - the predicates read plain state
            await asyncio.sleep(0.01)


async def bounded(awaitable: Awaitable[T], seconds: float = BOUND) -> T:
    async with asyncio.timeout(seconds):
        return await awaitable


async def take(iterator: AsyncIterator[Event], count: int) -> list[Event]:
    async with asyncio.timeout(BOUND):
        return [await anext(iterator) for _ in range(count)]


async def publish(client: Client, stream: str, count: int, start: int = 0) -> list[uuid.UUID]:
    ids = []
    for n in range(start, start + count):
        event_id = uuid.uuid4()
        result = await bounded(client.publish_event(stream, "counted", {"n": n}, id=event_id))
        assert result.succeeded
        ids.append(event_id)
    return ids


def stored_ids(es: Cluster, stream: str) -> list[uuid.UUID]:
    return [uuid.UUID(bytes_le=e.event_id) for e in es.state.log.stream_events(stream)]


# --- writes across a leader kill ----------------------------------------------------------------

WRITERS, PER_WRITER = 20, 100


async def test_a_leader_kill_during_2000_appends_ends_with_each_exactly_once_in_order() -> None:
    async with Cluster(3, election_delay=0.2) as es:
        old_leader = es.leader
        assert old_leader is not None
        client = leader_client(es)
        reconnects: list[Reconnected] = []
        client.hooks.register(Reconnected, reconnects.append)
        async with client:
            await bounded(client.ping())
            assert client.connection_address == Address.of(es.tcp_addresses[old_leader])
            done = 0

            async def writer(w: int) -> list[uuid.UUID]:
                """100 events to one stream, one at a time, each expecting the one before."""
                nonlocal done
                ids = []
                for i in range(PER_WRITER):
                    event_id = uuid.uuid4()
                    result = await client.publish_event(
                        f"writer-{w}",
                        "appended",
                        {"w": w, "i": i},
                        id=event_id,
                        expected_version=i - 1,
                        require_master=True,
                    )
                    assert result.succeeded, result
                    assert (result.first_event_number, result.last_event_number) == (i, i)
                    ids.append(event_id)
                    done += 1
                return ids

            killed_at: list[int] = []

            async def killer() -> None:
                await eventually(lambda: done >= WRITERS * PER_WRITER // 4)
                killed_at.append(done)
                await es.akill(old_leader)

            async with asyncio.timeout(40.0):
                *written, _ = await asyncio.gather(*map(writer, range(WRITERS)), killer())
            assert done == WRITERS * PER_WRITER
            assert killed_at[0] < WRITERS * PER_WRITER  # the leader died mid-way
            assert es.leader not in (None, old_leader)
            assert len(reconnects) >= 2  # lost the leader, found the new one
            for w, ids in enumerate(written):
                assert stored_ids(es, f"writer-{w}") == ids  # exactly once, in order
                page = await bounded(client.get(f"writer-{w}", max_count=PER_WRITER + 1))
                assert [e.event_number for e in page] == list(range(PER_WRITER))
                assert [e.json() for e in page] == [{"w": w, "i": i} for i in range(PER_WRITER)]
            async with asyncio.timeout(BOUND):
                everything = [e.id async for e in client.iter_all(batch_size=500)]
            assert len(everything) == len(set(everything)) == WRITERS * PER_WRITER


# --- a catch-up subscription across a leader change ---------------------------------------------


@pytest.mark.parametrize("change", ["kill", "step_down"])
async def test_a_catch_up_subscription_delivers_each_event_once_across_a_leader_change(
    change: str,
) -> None:
    async with Cluster(3, election_delay=0.1) as es:
        old_leader = es.leader
        assert old_leader is not None
        async with leader_client(es) as reader, leader_client(es) as writer:
            ids = await publish(writer, "followed", 50)
            subscription = await bounded(reader.subscribe_to("followed", start_from=0))
            assert isinstance(subscription, CatchUpSubscription)
            events = await take(subscription.events, 30)

            async def write_on() -> None:
                for n in range(50, 200):
                    event_id = uuid.uuid4()
                    result = await writer.publish_event(
                        "followed", "counted", {"n": n}, id=event_id, require_master=True
                    )
                    assert result.succeeded
                    ids.append(event_id)
                    if n == 100 and change == "kill":
                        await es.akill(old_leader)
                    elif n == 100:
                        es.step_down()
                        await es.adrop_connections(old_leader)  # its clients go elsewhere

            async with asyncio.timeout(BOUND * 2):
                _, more = await asyncio.gather(write_on(), take(subscription.events, 170))
            events += more
            assert es.leader not in (None, old_leader)
            assert [e.event_number for e in events] == list(range(200))
            assert [e.id for e in events] == ids
            assert stored_ids(es, "followed") == ids
            await subscription.unsubscribe()


# --- persistent subscriptions -------------------------------------------------------------------


def group_of(es: Cluster, stream: str, name: str) -> Any:
    group = es.state.registry.get(stream, name)
    assert group is not None
    return group


async def test_a_persistent_subscription_delivers_every_event_and_acks_settle_them() -> None:
    async with Cluster(1) as es, node_client(es, 0) as client:
        ids = await publish(client, "orders", 10)
        await bounded(client.create_subscription("billing", "orders", start_from=0))
        subscription = await bounded(client.connect_subscription("billing", "orders"))
        assert subscription.name == "orders::billing"
        events = await take(subscription.events, 10)
        for event in events:
            await subscription.ack(event)
        ids += await publish(client, "orders", 5, 10)  # and live ones
        events += await take(subscription.events, 5)
        await subscription.ack(events[10:])
        assert [e.id for e in events] == ids
        group = group_of(es, "orders", "billing")
        await eventually(lambda: sum(group.in_flight.values()) == 0 and not group.queued)
        assert group.parked == []
        await subscription.stop()


async def test_unacked_events_are_redelivered_after_the_consumer_reconnects() -> None:
    async with Cluster(1) as es, node_client(es, 0) as client:
        ids = await publish(client, "orders", 10)
        await bounded(client.create_subscription("billing", "orders", start_from=0))
        subscription = await bounded(client.connect_subscription("billing", "orders"))
        events = await take(subscription.events, 10)
        await subscription.ack(events[:5])  # the last five are never acknowledged
        group = group_of(es, "orders", "billing")
        await eventually(lambda: sum(group.in_flight.values()) == 5)
        await es.adrop_connections()
        again = await take(subscription.events, 5)  # on the new connection
        assert [e.id for e in again] == ids[5:]
        await subscription.ack(again)
        await eventually(lambda: sum(group.in_flight.values()) == 0 and not group.queued)
        ids += await publish(client, "orders", 3, 10)  # still subscribed
        assert [e.id for e in await take(subscription.events, 3)] == ids[10:]
        await subscription.stop()


async def test_an_unacked_event_is_redelivered_after_the_message_timeout() -> None:
    async with Cluster(1) as es, node_client(es, 0) as client:
        ids = await publish(client, "orders", 2)
        await bounded(client.create_subscription("billing", "orders", start_from=0, timeout_ms=200))
        subscription = await bounded(client.connect_subscription("billing", "orders"))
        events = await take(subscription.events, 2)
        await subscription.ack(events[1])  # the first is left to time out
        again = await take(subscription.events, 1)
        assert again[0].id == ids[0]
        await subscription.ack(again[0])
        group = group_of(es, "orders", "billing")
        await eventually(lambda: sum(group.in_flight.values()) == 0 and not group.queued)
        assert group.parked == []
        await subscription.stop()


async def test_a_nak_with_park_parks_the_event() -> None:
    async with Cluster(1) as es, node_client(es, 0) as client:
        ids = await publish(client, "orders", 3)
        await bounded(client.create_subscription("billing", "orders", start_from=0))
        subscription = await bounded(client.connect_subscription("billing", "orders"))
        first, second, third = await take(subscription.events, 3)
        await subscription.nack(second, NakAction.Park, "cannot bill this one")
        await subscription.ack([first, third])
        group = group_of(es, "orders", "billing")
        await eventually(lambda: bool(group.parked))
        assert [c.event_id for c in group.parked] == [ids[1].bytes_le]
        await eventually(lambda: sum(group.in_flight.values()) == 0 and not group.queued)
        await subscription.stop()


async def test_an_event_retried_past_max_retry_count_is_parked() -> None:
    async with Cluster(1) as es, node_client(es, 0) as client:
        ids = await publish(client, "orders", 1)
        await bounded(
            client.create_subscription("billing", "orders", start_from=0, max_retry_count=2)
        )
        subscription = await bounded(client.connect_subscription("billing", "orders"))
        group = group_of(es, "orders", "billing")
        for _ in range(3):  # the first delivery and two retries; the third nak parks it
            (event,) = await take(subscription.events, 1)
            assert event.id == ids[0]
            await subscription.nack(event, NakAction.Retry)
        await eventually(lambda: bool(group.parked))
        assert sum(group.in_flight.values()) == 0
        assert group.queued == []
        assert subscription.events.buffered == 0
        assert [c.event_id for c in group.parked] == [ids[0].bytes_le]
        await subscription.stop()


async def test_a_persistent_subscription_survives_many_reconnects_through_a_follower() -> None:
    """Each reconnect lands on the follower first and is sent on to the leader (NotMaster)."""
    async with Cluster(3) as es:
        leader = es.leader
        assert leader is not None
        follower = next(i for i in range(3) if i != leader)
        async with node_client(es, follower) as client:
            await bounded(client.create_subscription("billing", "orders", start_from=0))
            subscription = await bounded(client.connect_subscription("billing", "orders"))
            assert client.connection_address == Address.of(es.tcp_addresses[leader])
            group = group_of(es, "orders", "billing")
            for round_ in range(8):
                (event_id,) = await publish(client, "orders", 1, round_)
                (event,) = await take(subscription.events, 1)
                assert event.id == event_id
                await subscription.ack(event)
                await eventually(lambda: sum(group.in_flight.values()) == 0)
                await es.adrop_connections()
            await subscription.stop()


# --- credentials --------------------------------------------------------------------------------


async def test_bad_credentials_raise_not_authenticated_and_the_connection_keeps_serving() -> None:
    async with Cluster(1) as es:
        es.restrict("ledger", readers={"admin"}, writers={"admin"})
        reconnects: list[Reconnected] = []
        async with node_client(es, 0, username="admin", password="wrong") as client:
            await bounded(client.ping())  # sent without credentials: fine
            client.hooks.register(Reconnected, reconnects.append)
            with pytest.raises(NotAuthenticated):
                await bounded(client.publish_event("ledger", "t"))
            with pytest.raises(NotAuthenticated):
                await bounded(client.get("ledger"))
            with pytest.raises(NotAuthenticated):
                await bounded(client.subscribe_to("ledger"))
            with pytest.raises(NotAuthenticated):
                await bounded(client.create_subscription("g", "ledger"))
            assert await bounded(client.ping()) >= 0
            assert reconnects == []
        async with node_client(es, 0, username="admin", password="changeit") as admin:
            assert (await bounded(admin.publish_event("ledger", "t", {"n": 1}))).succeeded
            assert [e.json() for e in await bounded(admin.get("ledger"))] == [{"n": 1}]
        async with node_client(es, 0) as anonymous:
            with pytest.raises(AccessDenied):
                await bounded(anonymous.get("ledger"))
        assert len(es.state.log.stream_events("ledger")) == 1


# --- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_cluster(ca: trustme.CA) -> AsyncIterator[Cluster]:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    async with Cluster(1, tls=server) as es:
        yield es


async def test_tls_a_client_that_trusts_the_ca_works(ca: trustme.CA, tls_cluster: Cluster) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with node_client(tls_cluster, 0, ssl_context=context) as client:
        assert await bounded(client.ping()) >= 0
        event_id = uuid.uuid4()
        assert (await bounded(client.publish_event("secure", "t", {"n": 1}, id=event_id))).succeeded
        page = await bounded(client.get("secure"))
        assert [(e.id, e.json()) for e in page] == [(event_id, {"n": 1})]
        assert (await bounded(client.get_event("secure", 0))).id == event_id


async def test_tls_a_client_without_the_ca_fails_clearly_within_its_deadline(
    tls_cluster: Cluster,
) -> None:
    few = DiscoveryRetryPolicy(3, 0.01, 0, 2.0, 0.05, deadline=BOUND)
    context = ssl.create_default_context()  # the system's roots: not our CA
    async with node_client(
        tls_cluster, 0, ssl_context=context, retry_policy=few, request_timeout=BOUND / 2
    ) as client:
        with pytest.raises(DiscoveryFailed) as caught:
            await bounded(client.ping())
        assert not isinstance(caught.value, RequestTimeout)
        assert isinstance(caught.value.last_error, ssl.SSLCertVerificationError)
        assert "certificate verify failed" in str(caught.value.last_error)
        assert tls_cluster.state.log.stream_events("secure") == []

"""The original photon-pump's defects (eventstore-tcp.md §15, R1-R19): ours must not have them.

Clusters come from clustersim; frame-level misbehaviour the simulator does not offer (a late
reply, an unknown command byte, NotModified) comes from the fake node in ``_fake_node``. Every
wait is bounded and no test asserts on timing. R10, R12, R15 and R20 are covered by the client
and discovery tests; R16's seed rotation by ``test_discovery``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import photonpump
import pytest
from clustersim.eventstore import Cluster
from photonpump import Client, Credential, Event, Position, StreamSlice
from photonpump._subscriptions import CatchUpSubscription
from photonpump.discovery import DiscoveryRetryPolicy
from photonpump.exceptions import (
    AccessDenied,
    ClientClosed,
    DiscoveryFailed,
    RequestTimeout,
    SubscriptionFailed,
)

import resilient_topology
from resilient_topology.address import Address
from resilient_topology.eventstore.framing import (
    Credentials,
    Frame,
    InvalidCredentials,
    TcpCommand,
)
from resilient_topology.eventstore.proto import messages_pb2 as pb
from resilient_topology.hooks import Reconnected

from ._fake_node import FakeConnection, FakeNode, pong, unknown_frame

C = TcpCommand
T = TypeVar("T")
BOUND = 10.0  # seconds any single wait in these tests may take before the test fails


# --- helpers ----------------------------------------------------------------------------------


def policy(retries: int = 100) -> DiscoveryRetryPolicy:
    """Fast reconnects: 10 ms doubling to 50 ms, ``retries`` attempts, within BOUND seconds."""
    return DiscoveryRetryPolicy(retries, 0.01, 0, 2.0, 0.05, deadline=BOUND)


def client_to(host: str, port: int, **options: Any) -> Client:
    options.setdefault("request_timeout", BOUND / 2)
    options.setdefault("retry_policy", policy())
    return photonpump.connect(host, port, **options)


def node_client(es: Cluster, index: int, **options: Any) -> Client:
    address = Address.of(es.tcp_addresses[index])
    assert address.port is not None
    return client_to(address.host, address.port, **options)


def fake_client(node: FakeNode, **options: Any) -> Client:
    return client_to(node.host, node.port, **options)


async def eventually(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(BOUND):
        while not predicate():  # noqa: ASYNC110 - the predicates read plain state
            await asyncio.sleep(0.01)


async def bounded(awaitable: Awaitable[T]) -> T:
    async with asyncio.timeout(BOUND):
        return await awaitable


async def take(iterator: AsyncIterator[Event], count: int) -> list[Event]:
    async with asyncio.timeout(BOUND):
        return [await anext(iterator) for _ in range(count)]


async def first(iterator: AsyncIterator[Event]) -> Event:
    return await anext(iterator)


async def publish(client: Client, stream: str, count: int, start: int = 0) -> list[uuid.UUID]:
    ids = []
    for n in range(start, start + count):
        event_id = uuid.uuid4()
        result = await bounded(client.publish_event(stream, "counted", {"n": n}, id=event_id))
        assert result.succeeded
        ids.append(event_id)
    return ids


def record(stream: str, number: int) -> pb.EventRecord:
    return pb.EventRecord(
        event_stream_id=stream,
        event_number=number,
        event_id=uuid.UUID(int=number + 1).bytes_le,
        event_type="faked",
        data_content_type=1,
        metadata_content_type=0,
        data=b'{"n": %d}' % number,
        created_epoch=0,
    )


def written(result_number: int) -> pb.WriteEventsCompleted:
    return pb.WriteEventsCompleted(
        result=pb.Success, first_event_number=result_number, last_event_number=result_number
    )


# --- R1: AccessDenied on a write ----------------------------------------------------------------


async def test_r1_an_access_denied_write_raises_and_the_connection_keeps_serving() -> None:
    async with Cluster(1) as es:
        es.restrict("locked", readers={None}, writers={"admin"})
        async with node_client(es, 0) as client:
            reconnects: list[Reconnected] = []
            await bounded(client.ping())
            client.hooks.register(Reconnected, reconnects.append)
            with pytest.raises(AccessDenied):
                await bounded(client.publish_event("locked", "denied", {"n": 0}))
            result = await bounded(client.publish_event("open", "allowed", {"n": 1}))
            assert result.succeeded
            with pytest.raises(AccessDenied):  # the same again: nothing was left broken
                await bounded(client.publish("locked", [photonpump.NewEvent("denied")]))
            assert [e.json() for e in await bounded(client.get("open"))] == [{"n": 1}]
            assert await bounded(client.ping()) >= 0
            assert es.state.log.stream_events("locked") == []
            assert reconnects == []  # served on the one connection throughout
            assert client.is_connected


async def test_r1_a_node_that_stops_answering_heartbeats_is_left_and_work_goes_on() -> None:
    """Liveness is what the node sends, not the socket being open."""
    async with (
        Cluster(1, heartbeat_interval=60.0) as es,
        node_client(es, 0, heartbeat_interval=0.1, heartbeat_timeout=0.2) as client,
    ):
        reconnects: list[Reconnected] = []
        await bounded(client.ping())
        client.hooks.register(Reconnected, reconnects.append)
        es.stop_heartbeats(0)
        await eventually(lambda: bool(reconnects))  # declared dead, connected again
        es.stop_heartbeats(0, stopped=False)
        assert (await bounded(client.publish_event("after", "t"))).succeeded


# --- R2: a request the caller gave up on ---------------------------------------------------------


@pytest.mark.parametrize("how", ["timeout", "cancel"])
async def test_r2_a_cancelled_request_s_late_reply_is_dropped(how: str) -> None:
    release, late_sent = asyncio.Event(), asyncio.Event()
    writes: list[Frame] = []

    def handler(connection: FakeConnection, frame: Frame) -> Awaitable[None] | None:
        pong(connection, frame)
        if frame.command != C.WriteEvents:
            return None
        number = len(writes)
        writes.append(frame)
        if number > 0:
            connection.reply(frame, C.WriteEventsCompleted, written(number))
            return None

        async def late() -> None:  # the first write is answered only when the test says so
            await release.wait()
            connection.reply(frame, C.WriteEventsCompleted, written(number))
            late_sent.set()

        return late()

    async with FakeNode(handler) as node, fake_client(node, request_timeout=30.0) as client:
        await bounded(client.ping())
        if how == "timeout":
            with pytest.raises(TimeoutError) as caught:
                async with asyncio.timeout(0.2):
                    await client.publish_event("s", "t", {"n": 0})
            assert not isinstance(caught.value, RequestTimeout)  # the caller's, not ours
        else:
            task = asyncio.create_task(client.publish_event("s", "t", {"n": 0}))
            await eventually(lambda: bool(writes))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await bounded(task)
        release.set()
        await bounded(late_sent.wait())
        # The late reply (first_event_number 0) reached the client first; it was dropped.
        result = await bounded(client.publish_event("s", "t", {"n": 1}))
        assert result.first_event_number == 1
        assert await bounded(client.ping()) >= 0
        assert len(node.connections) == 1  # the dispatch survived: no reconnect was needed


async def test_a_request_made_while_a_reconnect_hook_runs_is_sent_once() -> None:
    in_hook, release = asyncio.Event(), asyncio.Event()

    async def hook(event: Reconnected) -> None:
        in_hook.set()
        await release.wait()

    def handler(connection: FakeConnection, frame: Frame) -> Awaitable[None] | None:
        if frame.command != C.Ping:
            return None

        async def answer() -> None:
            await release.wait()
            connection.reply(frame, C.Pong)

        return answer()

    async with FakeNode(handler) as node:
        client = fake_client(node)
        client.hooks.register(Reconnected, hook)
        async with client:
            await bounded(in_hook.wait())  # connected, and the hook is still running
            ping = asyncio.create_task(client.ping())
            await eventually(lambda: len(node.frames(C.Ping)) == 1)
            release.set()
            await bounded(ping)
            await bounded(client.ping())
            pings = [frame.correlation_id for frame in node.frames(C.Ping)]
            assert len(pings) == len(set(pings)) == 2


# --- R3: unknown command bytes ------------------------------------------------------------------


async def test_r3_frames_with_unknown_command_bytes_are_skipped() -> None:
    def handler(connection: FakeConnection, frame: Frame) -> None:
        if frame.command == C.Ping:
            connection.send(unknown_frame(0x77))
            connection.send(unknown_frame(0x05))  # an internal replication code
            connection.send(unknown_frame(0xFF))
            connection.send(unknown_frame(0x77, frame.correlation_id))  # even for this request
            connection.reply(frame, C.Pong)

    async with FakeNode(handler) as node, fake_client(node) as client:
        for _ in range(3):
            assert await bounded(client.ping()) >= 0
        node.push(unknown_frame(0x42))  # unsolicited
        node.push(unknown_frame(0x10))
        assert await bounded(client.ping()) >= 0
        assert len(node.connections) == 1
        assert client.is_connected


# --- R4: a catch-up subscription's live phase across a reconnect ---------------------------------


@pytest.mark.parametrize("source", ["stream", "$all"])
@pytest.mark.parametrize("fault", ["drop_connections", "kill"])
async def test_r4_a_live_catch_up_subscription_resumes_without_loss_or_duplicate(
    fault: str, source: str
) -> None:
    async with Cluster(3) as es:
        assert es.leader is not None
        home = es.leader
        other = next(i for i in range(3) if i != home)
        reader = photonpump.connect(
            discovery_host=",".join(es.gossip_seeds),
            selector=photonpump.discovery.NodePreference.LEADER,
            retry_policy=policy(),
            request_timeout=BOUND / 2,
        )
        async with reader, node_client(es, other) as writer:
            ids = await publish(writer, "r4", 5)
            if source == "stream":
                subscription = await bounded(reader.subscribe_to("r4", start_from=0))
            else:  # the cluster is new: $all holds only these events
                subscription = await bounded(reader.subscribe_to_all(Position(0, 0)))
            assert isinstance(subscription, CatchUpSubscription)
            events = await take(subscription.events, 5)
            assert reader.connection_address == Address.of(es.tcp_addresses[home])
            ids += await publish(writer, "r4", 5, 5)  # live now
            events += await take(subscription.events, 5)
            if fault == "kill":
                await es.akill(home)
            else:
                await es.adrop_connections(home)
            ids += await publish(writer, "r4", 5, 10)  # during the outage
            events += await take(subscription.events, 5)
            ids += await publish(writer, "r4", 5, 15)  # after it
            events += await take(subscription.events, 5)
            assert [e.event_number for e in events] == list(range(20))
            assert [e.id for e in events] == ids
            assert subscription.restarts >= 1  # the live part did break and was resumed
            if fault == "kill":
                assert reader.connection_address != Address.of(es.tcp_addresses[home])
            assert subscription.events.buffered == 0  # and nothing else is coming
            await subscription.unsubscribe()


async def test_a_catch_up_subscription_to_a_stream_not_written_yet_goes_live() -> None:
    """Nothing to catch up on is not an error: the events come when they are written."""
    async with Cluster(1) as es, node_client(es, 0) as client:
        subscription = await bounded(client.subscribe_to("not-yet", start_from=0))
        await asyncio.sleep(0.05)  # let it find the stream missing
        ids = await publish(client, "not-yet", 3)
        events = await take(subscription.events, 3)
        assert [event.id for event in events] == ids
        await es.adrop_connections()  # and it resumes like any other
        ids += await publish(client, "not-yet", 2, 3)
        events += await take(subscription.events, 2)
        assert [event.event_number for event in events] == [0, 1, 2, 3, 4]
        assert [event.id for event in events] == ids
        await subscription.unsubscribe()


# --- R5: deadlines, close, discovery failure ------------------------------------------------


async def test_r5_every_request_has_a_deadline() -> None:
    async with FakeNode() as node, fake_client(node, request_timeout=0.15) as client:
        requests: list[Callable[[], Awaitable[object]]] = [
            client.ping,
            lambda: client.publish_event("s", "t"),
            lambda: client.get("s"),
            lambda: client.get_event("s", 0),
            lambda: client.get_all(),
            lambda: first(client.iter("s")),
            lambda: first(client.iter_all()),
            lambda: client.subscribe_to("s"),
            lambda: client.subscribe_to_all(),
            lambda: client.create_subscription("g", "s"),
            lambda: client.connect_subscription("g", "s"),
            lambda: client.ping(timeout=0.05),
        ]
        for request in requests:
            with pytest.raises(RequestTimeout):
                await bounded(request())
        catch_up = await bounded(client.subscribe_to("s", start_from=0))
        with pytest.raises(RequestTimeout):
            await bounded(first(catch_up.events))
        # They all reached the node: it is the node's silence that timed out.
        assert len(node.frames(C.Ping)) == 2
        assert len(node.frames(C.SubscribeToStream)) == 3
        assert len(node.received) == len(requests) + 1


def confirming(connection: FakeConnection, frame: Frame) -> None:
    """Confirms volatile subscriptions, answers nothing else."""
    if frame.command == C.SubscribeToStream:
        confirmation = pb.SubscriptionConfirmation(last_commit_position=0, last_event_number=-1)
        connection.reply(frame, C.SubscriptionConfirmation, confirmation)


async def test_r5_close_fails_every_pending_request_and_iterator_with_client_closed() -> None:
    async with FakeNode(confirming) as node:
        client = fake_client(node, request_timeout=30.0)
        await client.connect()
        volatile = await bounded(client.subscribe_to("live"))
        catch_up = await bounded(client.subscribe_to("history", start_from=0))
        pending = [
            asyncio.create_task(client.ping()),
            asyncio.create_task(client.publish_event("s", "t")),
            asyncio.create_task(client.get("s")),
            asyncio.create_task(first(client.iter("s"))),
            asyncio.create_task(first(volatile.events)),
            asyncio.create_task(first(catch_up.events)),
        ]
        # ping, write, two reads and the catch-up's history read are with the node.
        await eventually(lambda: len(node.received) >= 7)
        await bounded(client.close())
        for task in pending:
            with pytest.raises(ClientClosed):
                await bounded(task)
        with pytest.raises(ClientClosed):
            await bounded(client.ping())
        with pytest.raises(ClientClosed):
            await bounded(client.subscribe_to("again"))


async def test_r5_unsubscribing_can_be_cancelled_and_close_waits_for_no_node() -> None:
    def handler(connection: FakeConnection, frame: Frame) -> None:
        pong(connection, frame)
        confirming(connection, frame)  # and never a word about an unsubscribe

    async with FakeNode(handler) as node:
        client = fake_client(node, request_timeout=30.0)
        await client.connect()
        catch_up = await bounded(client.subscribe_to("history", start_from=0))
        live = await bounded(client.subscribe_to("live"))
        await eventually(lambda: len(node.frames(C.ReadStreamEventsForward)) == 1)
        with pytest.raises(TimeoutError):  # the caller's deadline is honoured
            async with asyncio.timeout(0.2):
                await catch_up.unsubscribe()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await live.unsubscribe()
        assert catch_up.is_complete
        assert live.is_complete
        assert len(node.frames(C.UnsubscribeFromStream)) == 2
        node.drop_connections()  # given up on, they are not subscribed again either
        await eventually(lambda: len(node.connections) == 2)
        assert await bounded(client.ping()) >= 0
        assert len(node.frames(C.SubscribeToStream)) == 2
        await bounded(client.close())  # and closing waits for no reply


async def test_r5_discovery_failure_fails_pending_requests_with_discovery_failed() -> None:
    node = await FakeNode(confirming).__aenter__()
    few = DiscoveryRetryPolicy(3, 0.01, 0, 2.0, 0.05, deadline=BOUND)
    async with fake_client(node, request_timeout=30.0, retry_policy=few) as client:
        try:
            volatile = await bounded(client.subscribe_to("live"))
            pending = [
                asyncio.create_task(client.ping()),
                asyncio.create_task(client.get("s")),
                asyncio.create_task(first(volatile.events)),
            ]
            await eventually(lambda: len(node.received) >= 3)
        finally:
            await node.close()  # gone for good: nothing to reconnect to
        for task in pending:
            with pytest.raises(DiscoveryFailed):
                await bounded(task)
        # The next request starts a new round, which ends the same way: nothing hangs.
        with pytest.raises(DiscoveryFailed):
            await bounded(client.ping())


# --- R6: a slow consumer holds up nobody else ---------------------------------------------------


async def test_r6_a_full_volatile_subscription_does_not_hold_up_other_conversations() -> None:
    async with Cluster(1) as es, node_client(es, 0, subscription_buffer=5) as client:
        subscription = await bounded(client.subscribe_to("busy"))
        for n in range(20):  # nobody reads the subscription
            await bounded(client.publish_event("busy", "t", {"n": n}))
            assert await bounded(client.ping()) >= 0
            assert subscription.events.buffered <= 5
        received: list[Event] = []

        async def drain() -> None:
            async with asyncio.timeout(BOUND):
                async for event in subscription.events:
                    received.append(event)

        with pytest.raises(SubscriptionFailed):  # dropped, and says so, rather than block
            await drain()
        numbers = [event.json()["n"] for event in received]
        assert len(numbers) <= 5
        assert numbers == sorted(set(numbers))
        assert await bounded(client.ping()) >= 0


async def test_r6_an_undrained_catch_up_subscription_does_not_hold_up_other_conversations() -> None:
    async with Cluster(1) as es, node_client(es, 0, subscription_buffer=5) as client:
        ids = await publish(client, "deep", 30)
        subscription = await bounded(client.subscribe_to("deep", start_from=0, batch_size=10))
        await eventually(lambda: subscription.events.buffered == 5)  # full: it waits for us
        for n in range(30, 60):  # live events pile up on the node's side of it
            ids += await publish(client, "deep", 1, n)
            assert await bounded(client.ping()) >= 0
            assert subscription.events.buffered <= 5
        events = await take(subscription.events, 60)
        assert [event.event_number for event in events] == list(range(60))
        assert [event.id for event in events] == ids
        ids += await publish(client, "deep", 5, 60)  # and it goes on live
        events = await take(subscription.events, 5)
        assert [event.id for event in events] == ids[60:]
        await subscription.unsubscribe()


# --- R7 / R8: paging iterators across a reconnect -----------------------------------------------


async def reconnect_while_next(es: Cluster, iterator: AsyncIterator[Event]) -> Event:
    """The next event, with the node's connections dropped while its page request is out."""
    es.slow(0, 300)
    task = asyncio.create_task(first(iterator))
    await asyncio.sleep(0.05)  # the request is with the (slow) node now
    await es.adrop_connections()
    es.slow(0, 0)
    return await bounded(task)


@pytest.mark.parametrize("in_flight", [False, True])
async def test_r7_iter_all_resumes_after_a_reconnect_without_duplicates(in_flight: bool) -> None:
    async with Cluster(1) as es, node_client(es, 0) as client:
        for n in range(11):
            await publish(client, f"r7-{n % 3}", 1, n)
        expected = [event.id for event in await bounded(client.get_all(max_count=100))]
        assert len(expected) == 11
        iterator = client.iter_all(batch_size=3)
        seen = [event.id for event in await take(iterator, 4)]  # inside the second page
        await es.adrop_connections()
        seen += [event.id for event in await take(iterator, 2)]  # the second page's rest
        if in_flight:
            seen.append((await reconnect_while_next(es, iterator)).id)
        async with asyncio.timeout(BOUND):
            seen += [event.id async for event in iterator]
        assert seen == expected


@pytest.mark.parametrize("in_flight", [False, True])
async def test_r8_iter_resumes_after_a_reconnect_without_re_yielding_event_0(
    in_flight: bool,
) -> None:
    async with Cluster(1) as es, node_client(es, 0) as client:
        ids = await publish(client, "r8", 4)
        iterator = client.iter("r8", batch_size=1)
        seen = await take(iterator, 1)
        assert seen[0].event_number == 0  # the last event delivered is number 0
        if in_flight:
            seen.append(await reconnect_while_next(es, iterator))
        else:
            await es.adrop_connections()
        async with asyncio.timeout(BOUND):
            seen += [event async for event in iterator]
        assert [event.event_number for event in seen] == [0, 1, 2, 3]
        assert [event.id for event in seen] == ids


async def test_r8_iter_resumes_after_a_reconnect_in_the_middle_of_the_stream() -> None:
    async with Cluster(1) as es, node_client(es, 0) as client:
        ids = await publish(client, "r8", 7)
        iterator = client.iter("r8", from_event=2, batch_size=2)
        seen = await take(iterator, 3)  # 2, 3 and the first of the next page
        await es.adrop_connections()
        seen.append(await reconnect_while_next(es, iterator))  # 5: from the page in hand
        seen.append(await reconnect_while_next(es, iterator))  # 6: a request cut off
        async with asyncio.timeout(BOUND):
            seen += [event async for event in iterator]
        assert [event.id for event in seen] == ids[2:]


# --- R9: NotHandled ----------------------------------------------------------------------------


async def test_r9_not_master_is_followed_to_the_leader_and_completes_there() -> None:
    async with Cluster(3) as es:
        leader = es.leader
        assert leader is not None
        follower = next(i for i in range(3) if i != leader)
        async with node_client(es, follower) as client:
            await bounded(client.ping())
            assert client.connection_address == Address.of(es.tcp_addresses[follower])
            event_id = uuid.uuid4()
            result = await bounded(
                client.publish_event("r9", "t", {"n": 1}, id=event_id, require_master=True)
            )
            assert result.succeeded
            assert result.first_event_number == 0
            assert client.connection_address == Address.of(es.tcp_addresses[leader])
            stored = es.state.log.stream_events("r9")
            assert [(e.event_number, e.event_id) for e in stored] == [(0, event_id.bytes_le)]
            event = await bounded(client.get_event("r9", 0, require_master=True))
            assert event.id == event_id


@pytest.mark.parametrize("fault", ["not_ready", "too_busy"])
async def test_r9_not_ready_and_too_busy_are_retried_until_the_node_recovers(fault: str) -> None:
    async with Cluster(1) as es, node_client(es, 0) as client:
        await publish(client, "r9-read", 1)
        set_fault = es.set_not_ready if fault == "not_ready" else es.set_too_busy
        set_fault(0, True)
        write = asyncio.create_task(client.publish_event("r9-write", "t", {"n": 0}))
        read = asyncio.create_task(client.get("r9-read"))
        await asyncio.sleep(0.3)  # refused a few times meanwhile (retries every 0.1 s)
        assert not write.done()
        assert not read.done()
        assert es.state.log.stream_events("r9-write") == []
        set_fault(0, False)
        assert (await bounded(write)).succeeded
        assert len(await bounded(read)) == 1
        assert len(es.state.log.stream_events("r9-write")) == 1


# --- R11: NotModified ---------------------------------------------------------------------------


async def test_r11_not_modified_is_an_empty_page() -> None:
    def handler(connection: FakeConnection, frame: Frame) -> None:
        pong(connection, frame)
        if frame.command == C.ReadStreamEventsForward:
            reply = pb.ReadStreamEventsCompleted(
                result=pb.ReadStreamEventsCompleted.NotModified,
                next_event_number=5,
                last_event_number=4,
                is_end_of_stream=True,
                last_commit_position=100,
            )
            connection.reply(frame, C.ReadStreamEventsForwardCompleted, reply)

    async with FakeNode(handler) as node, fake_client(node) as client:
        page = await bounded(client.get("unchanged", from_event=5))
        assert isinstance(page, StreamSlice)
        assert list(page) == []
        assert page.events == []
        assert page.is_end_of_stream
        assert page.last_event_number == 4
        async with asyncio.timeout(BOUND):
            assert [event async for event in client.iter("unchanged", from_event=5)] == []
        assert await bounded(client.ping()) >= 0


# --- R13 / R14: credentials and require_master on the wire --------------------------------------


def serving_five_events(connection: FakeConnection, frame: Frame) -> None:
    """Serves stream ``s`` and ``$all`` with five events, and answers writes and pings."""
    pong(connection, frame)
    events = [record("s", n) for n in range(5)]
    if frame.command == C.WriteEvents:
        connection.reply(frame, C.WriteEventsCompleted, written(0))
    elif frame.command == C.ReadStreamEventsForward:
        request = pb.ReadStreamEvents.FromString(frame.payload)
        start = request.from_event_number
        page = events[start : start + request.max_count]
        following = start + len(page)
        reply = pb.ReadStreamEventsCompleted(
            result=pb.ReadStreamEventsCompleted.Success,
            next_event_number=following,
            last_event_number=4,
            is_end_of_stream=following > 4,
            last_commit_position=4,
        )
        for item in page:
            reply.events.add().event.CopyFrom(item)
        connection.reply(frame, C.ReadStreamEventsForwardCompleted, reply)
    elif frame.command == C.ReadAllEventsForward:
        read = pb.ReadAllEvents.FromString(frame.payload)
        start = read.commit_position
        page = events[start : start + read.max_count]
        following = start + len(page)
        answer = pb.ReadAllEventsCompleted(
            commit_position=start,
            prepare_position=start,
            next_commit_position=following,
            next_prepare_position=following,
        )
        for n, item in enumerate(page, start):
            answer.events.add(event=item, commit_position=n, prepare_position=n)
        connection.reply(frame, C.ReadAllEventsForwardCompleted, answer)
    elif frame.command == C.ReadEvent:
        number = pb.ReadEvent.FromString(frame.payload).event_number
        found = pb.ReadEventCompleted(result=pb.ReadEventCompleted.Success)
        found.event.event.CopyFrom(events[number])
        connection.reply(frame, C.ReadEventCompleted, found)


def test_r13_credentials_survive_a_round_trip() -> None:
    for username, password in [("admin", "changeit"), ("ünïcødé", "pässwörd"), ("a" * 255, "b")]:
        credential = Credential(username, password)
        assert Credential.from_bytes(credential.bytes) == credential
        assert len(credential.bytes) == credential.length
    Credential("é" * 127 + "a", "x")  # 255 bytes as UTF-8: the limit itself is fine


async def test_r13_credentials_travel_with_requests_and_oversize_ones_never_leave() -> None:
    async with FakeNode(serving_five_events) as node:
        for username, password in [("é" * 128, "x"), ("user", "p" * 256)]:  # 256 bytes each
            with pytest.raises(InvalidCredentials):
                photonpump.connect(node.host, node.port, username=username, password=password)
        assert node.connections == []  # rejected before anything was sent
        login = "é" * 127 + "a"
        async with fake_client(node, username=login, password="pässwörd") as client:
            await bounded(client.publish_event("s", "t"))
            await bounded(client.get("s"))
            await bounded(client.ping())
        expected = Credentials(login, "pässwörd")
        assert node.frames(C.WriteEvents)[0].credentials == expected
        assert node.frames(C.ReadStreamEventsForward)[0].credentials == expected
        assert node.frames(C.Ping)[0].credentials is None  # as the original: none on ping


async def test_r14_iter_really_sends_require_master() -> None:
    async with FakeNode(serving_five_events) as node, fake_client(node) as client:
        async with asyncio.timeout(BOUND):
            led = [
                event.event_number
                async for event in client.iter("s", batch_size=2, require_master=True)
            ]
            assert led == [0, 1, 2, 3, 4]
            everything = [
                e.event_number async for e in client.iter_all(batch_size=2, require_master=True)
            ]
            assert everything == [0, 1, 2, 3, 4]
        await bounded(client.get_event("s", 3, require_master=True))
        pages = [
            pb.ReadStreamEvents.FromString(f.payload)
            for f in node.frames(C.ReadStreamEventsForward)
        ]
        assert len(pages) == 3
        assert all(page.require_master for page in pages)
        all_pages = [
            pb.ReadAllEvents.FromString(f.payload) for f in node.frames(C.ReadAllEventsForward)
        ]
        assert len(all_pages) == 4  # three with events, and the empty one that ends it
        assert all(page.require_master for page in all_pages)
        assert pb.ReadEvent.FromString(node.frames(C.ReadEvent)[0].payload).require_master
        node.received.clear()
        async with asyncio.timeout(BOUND):
            assert len([event async for event in client.iter("s", batch_size=2)]) == 5
        pages = [
            pb.ReadStreamEvents.FromString(f.payload)
            for f in node.frames(C.ReadStreamEventsForward)
        ]
        assert not any(page.require_master for page in pages)  # the caller's flag, not a constant


async def test_r14_iter_with_require_master_from_a_follower_reads_on_the_leader() -> None:
    async with Cluster(3) as es:
        leader = es.leader
        assert leader is not None
        follower = next(i for i in range(3) if i != leader)
        async with node_client(es, follower) as client:
            ids = await publish(client, "r14", 5)
            assert client.connection_address == Address.of(es.tcp_addresses[follower])
            async with asyncio.timeout(BOUND):
                read = [e.id async for e in client.iter("r14", batch_size=2, require_master=True)]
            assert read == ids
            assert client.connection_address == Address.of(es.tcp_addresses[leader])


# --- R16: a node that failed is tried again --------------------------------------------------


async def test_r16_a_node_that_failed_is_tried_again_and_pending_work_completes() -> None:
    async with Cluster(1) as es, node_client(es, 0) as client:
        await bounded(client.ping())
        await es.akill(0)
        write = asyncio.create_task(client.publish_event("r16", "t", {"n": 0}))
        ping = asyncio.create_task(client.ping())
        await asyncio.sleep(0.1)  # a few refused connection attempts
        await es.arestart(0)
        assert (await bounded(write)).succeeded
        assert await bounded(ping) >= 0
        assert len(es.state.log.stream_events("r16")) == 1


# --- R17: a failed subscription setup is forgotten -----------------------------------------


def connected_times(node: FakeNode, count: int) -> bool:
    return len(node.connections) == count


async def test_r17_a_failed_subscription_setup_is_not_sent_again_on_reconnect() -> None:
    def handler(connection: FakeConnection, frame: Frame) -> None:
        pong(connection, frame)
        denied = pb.SubscriptionDropped(reason=pb.SubscriptionDropped.AccessDenied)
        if frame.command == C.SubscribeToStream:
            if pb.SubscribeToStream.FromString(frame.payload).event_stream_id == "denied":
                connection.reply(frame, C.SubscriptionDropped, denied)
        elif frame.command == C.ConnectToPersistentSubscription:
            connection.reply(frame, C.SubscriptionDropped, denied)

    async with FakeNode(handler) as node, fake_client(node, request_timeout=0.5) as client:
        with pytest.raises(AccessDenied):
            await bounded(client.subscribe_to("denied"))
        with pytest.raises(AccessDenied):
            await bounded(client.connect_subscription("group", "denied"))
        with pytest.raises(RequestTimeout):
            await bounded(client.subscribe_to("silent"))
        catch_up = await bounded(client.subscribe_to("denied", start_from=0))
        with pytest.raises(AccessDenied):
            await bounded(first(catch_up.events))
        setups = [C.SubscribeToStream, C.ConnectToPersistentSubscription]
        sent = {command: len(node.frames(command)) for command in setups}
        assert sent == {C.SubscribeToStream: 3, C.ConnectToPersistentSubscription: 1}
        for reconnect in range(1, 4):
            node.drop_connections()
            await eventually(functools.partial(connected_times, node, reconnect + 1))
            assert await bounded(client.ping()) >= 0
        assert {command: len(node.frames(command)) for command in setups} == sent


# --- R18: persistent events have no position -----------------------------------------------


async def test_r18_persistent_subscription_events_have_no_fake_position() -> None:
    async with Cluster(1) as es, node_client(es, 0) as client:
        ids = await publish(client, "r18", 3)
        await bounded(client.create_subscription("group", "r18", start_from=0))
        subscription = await bounded(client.connect_subscription("group", "r18"))
        events = await take(subscription.events, 3)
        assert [event.id for event in events] == ids
        assert [event.position for event in events] == [None, None, None]
        assert [event.event_number for event in events] == [0, 1, 2]
        await subscription.ack(events)
        await subscription.stop()
        volatile_events = await bounded(client.get_all())  # $all reads do carry one
        assert all(event.position is not None for event in volatile_events)


# --- R19: imports ------------------------------------------------------------------------------

_IMPORT_CHECK = """
import logging
before = dict(vars(logging.Logger))
import photonpump, photonpump.connection, photonpump.discovery
from google.protobuf.internal import api_implementation
from resilient_topology.eventstore.proto import messages_pb2 as pb
assert api_implementation.Type() == "python", api_implementation.Type()
assert dict(vars(logging.Logger)) == before, "logging.Logger was patched"
assert logging.getLoggerClass() is logging.Logger
event = photonpump.NewEvent("t", data={"a": 1})
message = photonpump.messages.new_event_message(event)
assert pb.NewEvent.FromString(message.SerializeToString()).data == b'{"a": 1}'
print("ok")
"""


def test_r19_imports_with_pure_python_protobuf_and_leaves_logging_alone() -> None:
    paths = [
        Path(photonpump.__file__).resolve().parent.parent,
        Path(resilient_topology.__file__).resolve().parent.parent,
    ]
    env = dict(os.environ)
    env["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = "python"
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_CHECK],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_r19_importing_here_did_not_patch_logging_either() -> None:
    assert logging.getLoggerClass() is logging.Logger
    assert not any(name.startswith("photon") for name in vars(logging.Logger))

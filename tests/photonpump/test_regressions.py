"""The original photon-pump's defects (eventstore-tcp.md §15, R1-R19): ours must not have them.

Clusters come from clustersim; frame-level misbehaviour the simulator does not offer (a late
reply, an unknown command byte, NotModified) comes from the fake node in ``_fake_node``. Every
wait is bounded and no test asserts on timing. R10, R12, R15 and R20 are covered by the client
and discovery tests; R16's seed rotation by ``test_discovery``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import photonpump
import pytest
from clustersim.eventstore import Cluster
from photonpump import Event, Position
from photonpump._subscriptions import CatchUpSubscription
from photonpump.discovery import DiscoveryRetryPolicy
from photonpump.exceptions import (
    AccessDenied,
    ClientClosed,
    DiscoveryFailed,
    RequestTimeout,
    SubscriptionFailed,
)

from resilient_topology.address import Address
from resilient_topology.eventstore.framing import (
    Frame,
)
from resilient_topology.eventstore.proto import messages_pb2 as pb
from resilient_topology.hooks import Reconnected

from ._fake_node import FakeConnection, FakeNode, pong, unknown_frame
from ._regressions import (
    BOUND,
    C,
    bounded,
    eventually,
    fake_client,
    first,
    node_client,
    policy,
    publish,
    take,
    written,
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

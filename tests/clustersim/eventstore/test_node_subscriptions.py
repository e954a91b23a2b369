"""Volatile and persistent subscriptions over real sockets.

Absence is checked with :meth:`RawClient.barrier` (a ping on the same connection): the node
serves a connection's frames in order and writes pushes synchronously, so once the pong is in,
every push an earlier request caused is in too; no test waits for something not to happen.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from clustersim.eventstore.cluster import Cluster

from resilient_topology.eventstore.framing import Frame
from resilient_topology.eventstore.proto import messages_pb2 as pb

from ._raw import (
    C,
    Connector,
    RawClient,
    connect_group,
    decode,
    group_settings,
    new_event,
    subscribe,
)

STREAM, GROUP = "orders", "workers"
SUBSCRIPTION_ID = f"{STREAM}::{GROUP}"
Dropped = pb.SubscriptionDropped
Nak = pb.PersistentSubscriptionNakEvents
CreateDone = pb.CreatePersistentSubscriptionCompleted
UpdateDone = pb.UpdatePersistentSubscriptionCompleted
DeleteDone = pb.DeletePersistentSubscriptionCompleted


@pytest.fixture
async def es() -> AsyncIterator[Cluster]:
    async with Cluster(3) as cluster:
        yield cluster


@pytest.fixture
async def connect(es: Cluster) -> AsyncIterator[Connector]:
    connector = Connector(es)
    yield connector
    await connector.aclose()


@pytest.fixture
async def client(connect: Connector) -> RawClient:
    return await connect(0)


def appeared(frame: Frame) -> pb.ResolvedEvent:
    assert frame.command == C.StreamEventAppeared, frame
    return decode(pb.StreamEventAppeared, frame).event


def delivered(frame: Frame) -> pb.EventRecord:
    assert frame.command == C.PersistentSubscriptionStreamEventAppeared, frame
    return decode(pb.PersistentSubscriptionStreamEventAppeared, frame).event.event


# --- volatile ----------------------------------------------------------------------------------


async def test_subscribe_to_a_stream_confirms_then_pushes_its_new_events(
    connect: Connector,
) -> None:
    subscriber, writer = await connect(0), await connect(1)
    await writer.write(STREAM, new_event(), new_event())

    correlation_id = subscriber.send(C.SubscribeToStream, subscribe(STREAM))
    frame = await subscriber.expect(correlation_id, C.SubscriptionConfirmation)
    confirmation = decode(pb.SubscriptionConfirmation, frame)
    assert confirmation.last_event_number == 1

    event = new_event("later")
    written = await writer.write(STREAM, event)
    await writer.write("elsewhere", new_event())

    pushed = appeared(await subscriber.next(correlation_id))
    assert pushed.event.event_id == event.event_id
    assert (pushed.event.event_stream_id, pushed.event.event_number) == (STREAM, 2)
    assert pushed.commit_position == pushed.prepare_position == written.commit_position
    await subscriber.barrier()
    assert subscriber.pending(correlation_id) == []  # nothing from the other stream


async def test_subscribe_to_all_pushes_every_stream(connect: Connector) -> None:
    subscriber, writer = await connect(1), await connect(0)
    await writer.write("before", new_event())

    correlation_id = subscriber.send(C.SubscribeToStream, subscribe(""))
    frame = await subscriber.expect(correlation_id, C.SubscriptionConfirmation)
    confirmation = decode(pb.SubscriptionConfirmation, frame)
    assert confirmation.last_commit_position >= 0
    assert not confirmation.HasField("last_event_number")

    replies = [await writer.write(stream, new_event()) for stream in ("a", "b", "a")]

    pushes = [appeared(await subscriber.next(correlation_id)) for _ in replies]
    assert [(p.event.event_stream_id, p.event.event_number) for p in pushes] == [
        ("a", 0),
        ("b", 0),
        ("a", 1),
    ]
    assert [p.commit_position for p in pushes] == [r.commit_position for r in replies]
    assert all(p.commit_position > confirmation.last_commit_position for p in pushes)


async def test_two_subscriptions_on_one_connection_keep_their_ids(connect: Connector) -> None:
    subscriber, writer = await connect(0), await connect(0)
    to_stream = subscriber.send(C.SubscribeToStream, subscribe(STREAM))
    to_all = subscriber.send(C.SubscribeToStream, subscribe(""))
    await subscriber.expect(to_stream, C.SubscriptionConfirmation)
    await subscriber.expect(to_all, C.SubscriptionConfirmation)

    await writer.write(STREAM, new_event())

    assert appeared(await subscriber.next(to_stream)).event.event_number == 0
    assert appeared(await subscriber.next(to_all)).event.event_stream_id == STREAM


async def test_unsubscribe_drops_the_subscription(connect: Connector) -> None:
    subscriber, writer = await connect(0), await connect(0)
    correlation_id = subscriber.send(C.SubscribeToStream, subscribe(STREAM))
    await subscriber.expect(correlation_id, C.SubscriptionConfirmation)

    subscriber.send(C.UnsubscribeFromStream, correlation_id=correlation_id)

    frame = await subscriber.expect(correlation_id, C.SubscriptionDropped)
    assert decode(Dropped, frame).reason == Dropped.Unsubscribed
    await writer.write(STREAM, new_event())
    await subscriber.barrier()
    assert subscriber.pending(correlation_id) == []


async def test_unsubscribe_of_an_unknown_conversation_is_ignored(client: RawClient) -> None:
    correlation_id = client.send(C.UnsubscribeFromStream)

    await client.barrier()

    assert client.pending(correlation_id) == []


# --- persistent: group management --------------------------------------------------------------


async def create(client: RawClient, **kw: Any) -> pb.CreatePersistentSubscriptionCompleted:
    return await client.call(
        C.CreatePersistentSubscription,
        group_settings(STREAM, GROUP, **kw),
        C.CreatePersistentSubscriptionCompleted,
        CreateDone,
    )


async def join(client: RawClient, allowed: int = 10) -> uuid.UUID:
    """Connect to the group; the confirmation is checked, the id returned."""
    correlation_id = client.send(
        C.ConnectToPersistentSubscription, connect_group(STREAM, GROUP, allowed)
    )
    frame = await client.expect(correlation_id, C.PersistentSubscriptionConfirmation)
    confirmation = decode(pb.PersistentSubscriptionConfirmation, frame)
    assert confirmation.subscription_id == SUBSCRIPTION_ID
    return correlation_id


def ack(client: RawClient, correlation_id: uuid.UUID, *events: pb.EventRecord) -> None:
    message = pb.PersistentSubscriptionAckEvents(
        subscription_id=SUBSCRIPTION_ID, processed_event_ids=[e.event_id for e in events]
    )
    client.send(C.PersistentSubscriptionAckEvents, message, correlation_id=correlation_id)


def nak(
    client: RawClient, correlation_id: uuid.UUID, action: Nak.NakAction, *events: pb.EventRecord
) -> None:
    message = Nak(
        subscription_id=SUBSCRIPTION_ID,
        processed_event_ids=[e.event_id for e in events],
        message="no thanks",
        action=action,
    )
    client.send(C.PersistentSubscriptionNakEvents, message, correlation_id=correlation_id)


async def receive(client: RawClient, correlation_id: uuid.UUID, count: int) -> list[pb.EventRecord]:
    return [delivered(await client.next(correlation_id)) for _ in range(count)]


async def test_create_twice_is_already_exists(client: RawClient) -> None:
    first = await create(client)
    second = await create(client)

    assert first.result == CreateDone.Success
    assert second.result == CreateDone.AlreadyExists
    assert second.reason


async def test_update_and_delete_need_an_existing_group(client: RawClient) -> None:
    missing_update = await client.call(
        C.UpdatePersistentSubscription,
        group_settings(STREAM, GROUP, update=True),
        C.UpdatePersistentSubscriptionCompleted,
        UpdateDone,
    )
    assert missing_update.result == UpdateDone.DoesNotExist
    await create(client)

    updated = await client.call(
        C.UpdatePersistentSubscription,
        group_settings(STREAM, GROUP, update=True, max_retry_count=3),
        C.UpdatePersistentSubscriptionCompleted,
        UpdateDone,
    )
    deleted, deleted_again = [
        await client.call(
            C.DeletePersistentSubscription,
            pb.DeletePersistentSubscription(subscription_group_name=GROUP, event_stream_id=STREAM),
            C.DeletePersistentSubscriptionCompleted,
            DeleteDone,
        )
        for _ in range(2)
    ]

    assert updated.result == UpdateDone.Success
    assert deleted.result == DeleteDone.Success
    assert deleted_again.result == DeleteDone.DoesNotExist


async def test_update_drops_connected_consumers(client: RawClient) -> None:
    await create(client)
    correlation_id = await join(client)

    await client.call(
        C.UpdatePersistentSubscription,
        group_settings(STREAM, GROUP, update=True),
        C.UpdatePersistentSubscriptionCompleted,
        UpdateDone,
    )

    frame = await client.expect(correlation_id, C.SubscriptionDropped)
    assert decode(Dropped, frame).reason == Dropped.Unsubscribed


async def test_connect_to_a_missing_group_is_dropped_not_found(client: RawClient) -> None:
    correlation_id = client.send(
        C.ConnectToPersistentSubscription, connect_group(STREAM, "nobody", 10)
    )

    frame = await client.expect(correlation_id, C.SubscriptionDropped)

    assert decode(Dropped, frame).reason == Dropped.NotFound


async def test_persistent_subscriptions_live_on_the_leader(connect: Connector) -> None:
    follower = await connect(1)

    frame = await follower.request(C.CreatePersistentSubscription, group_settings(STREAM, GROUP))

    assert frame.command == C.NotHandled
    assert decode(pb.NotHandled, frame).reason == pb.NotHandled.NotMaster


# --- persistent: delivery ----------------------------------------------------------------------


async def test_connect_confirms_and_delivers_at_most_allowed_in_flight(
    connect: Connector,
) -> None:
    consumer, writer = await connect(0), await connect(0)
    events = [new_event(data=f'{{"n": {n}}}'.encode()) for n in range(5)]
    await writer.write(STREAM, *events)
    await create(writer, start_from=0)

    correlation_id = consumer.send(
        C.ConnectToPersistentSubscription, connect_group(STREAM, GROUP, 2)
    )
    frame = await consumer.expect(correlation_id, C.PersistentSubscriptionConfirmation)
    confirmation = decode(pb.PersistentSubscriptionConfirmation, frame)
    assert confirmation.subscription_id == SUBSCRIPTION_ID
    assert confirmation.last_event_number == 4

    first = await receive(consumer, correlation_id, 2)
    assert [e.event_number for e in first] == [0, 1]
    assert [e.event_id for e in first] == [e.event_id for e in events[:2]]
    await consumer.barrier()
    assert consumer.pending(correlation_id) == []  # two in flight: no more

    ack(consumer, correlation_id, first[0])
    assert [e.event_number for e in await receive(consumer, correlation_id, 1)] == [2]
    await consumer.barrier()
    assert consumer.pending(correlation_id) == []


async def test_start_from_the_end_delivers_only_new_events(connect: Connector) -> None:
    consumer, writer = await connect(0), await connect(0)
    await writer.write(STREAM, new_event(), new_event())
    await create(writer, start_from=-1)
    correlation_id = await join(consumer)

    await writer.write(STREAM, new_event())

    assert [e.event_number for e in await receive(consumer, correlation_id, 1)] == [2]
    await consumer.barrier()
    assert consumer.pending(correlation_id) == []


async def test_acked_events_are_not_redelivered(connect: Connector) -> None:
    consumer, writer = await connect(0), await connect(0)
    await create(writer, start_from=0, message_timeout_ms=100)
    correlation_id = await join(consumer)
    await writer.write(STREAM, new_event(), new_event())
    events = await receive(consumer, correlation_id, 2)

    ack(consumer, correlation_id, *events)
    await writer.write(STREAM, new_event())

    # The next delivery comes after any timeout of the first two would have: they were acked.
    later = await receive(consumer, correlation_id, 1)
    assert [e.event_number for e in later] == [2]
    ack(consumer, correlation_id, *later)
    await consumer.barrier()
    assert consumer.pending(correlation_id) == []


@pytest.mark.parametrize(
    ("action", "redelivered"),
    [(Nak.Retry, True), (Nak.Unknown, True), (Nak.Park, False), (Nak.Skip, False)],
    ids=["retry", "unknown", "park", "skip"],
)
async def test_nak_actions(
    connect: Connector, es: Cluster, action: Nak.NakAction, redelivered: bool
) -> None:
    consumer, writer = await connect(0), await connect(0)
    await create(writer, start_from=0)
    correlation_id = await join(consumer, allowed=1)
    await writer.write(STREAM, new_event(), new_event())
    (first,) = await receive(consumer, correlation_id, 1)

    nak(consumer, correlation_id, action, first)

    (following,) = await receive(consumer, correlation_id, 1)
    assert following.event_id == first.event_id if redelivered else following.event_number == 1
    group = es.state.registry.get(STREAM, GROUP)
    assert group is not None
    assert [c.event_number for c in group.parked] == ([0] if action == Nak.Park else [])


async def test_nak_stop_drops_the_consumer_and_the_event_goes_to_another(
    connect: Connector,
) -> None:
    first, second, writer = await connect(0), await connect(0), await connect(0)
    await create(writer, start_from=0, strategy="DispatchToSingle")
    stopping = await join(first)
    waiting = await join(second)
    await writer.write(STREAM, new_event())
    (event,) = await receive(first, stopping, 1)

    nak(first, stopping, Nak.Stop, event)

    frame = await first.expect(stopping, C.SubscriptionDropped)
    assert decode(Dropped, frame).reason == Dropped.Unsubscribed
    (again,) = await receive(second, waiting, 1)
    assert again.event_id == event.event_id


async def test_unacked_events_are_redelivered_after_the_message_timeout(
    connect: Connector,
) -> None:
    consumer, writer = await connect(0), await connect(0)
    await create(writer, start_from=0, message_timeout_ms=100)
    correlation_id = await join(consumer)
    await writer.write(STREAM, new_event())

    (event,) = await receive(consumer, correlation_id, 1)
    (again,) = await receive(consumer, correlation_id, 1)  # nobody acked: the timer fired

    assert again.event_id == event.event_id
    ack(consumer, correlation_id, again)


async def test_an_event_is_parked_after_max_retry_count(connect: Connector, es: Cluster) -> None:
    consumer, writer = await connect(0), await connect(0)
    await create(writer, start_from=0, max_retry_count=1)
    correlation_id = await join(consumer, allowed=1)
    await writer.write(STREAM, new_event(), new_event())

    (first,) = await receive(consumer, correlation_id, 1)
    nak(consumer, correlation_id, Nak.Retry, first)  # retry 1: allowed
    (retried,) = await receive(consumer, correlation_id, 1)
    nak(consumer, correlation_id, Nak.Retry, retried)  # retry 2: over the limit, parked
    (following,) = await receive(consumer, correlation_id, 1)

    assert retried.event_id == first.event_id
    assert following.event_number == 1
    group = es.state.registry.get(STREAM, GROUP)
    assert group is not None
    assert [c.event_number for c in group.parked] == [0]


async def test_round_robin_between_two_connections(connect: Connector) -> None:
    first, second, writer = await connect(0), await connect(0), await connect(0)
    await create(writer, start_from=0, strategy="RoundRobin")
    one = await join(first)
    two = await join(second)

    await writer.write(STREAM, *(new_event() for _ in range(4)))

    got_one = [e.event_number for e in await receive(first, one, 2)]
    got_two = [e.event_number for e in await receive(second, two, 2)]
    assert (got_one, got_two) == ([0, 2], [1, 3])
    for client, correlation_id in ((first, one), (second, two)):
        await client.barrier()
        assert client.pending(correlation_id) == []


async def test_a_closed_connections_events_go_to_another_consumer(connect: Connector) -> None:
    leaving, staying, writer = await connect(0), await connect(0), await connect(0)
    await create(writer, start_from=0, strategy="DispatchToSingle")
    gone = await join(leaving)
    kept = await join(staying)
    await writer.write(STREAM, new_event(), new_event())
    held = await receive(leaving, gone, 2)

    await leaving.close()

    redelivered = await receive(staying, kept, 2)
    assert [e.event_id for e in redelivered] == [e.event_id for e in held]


async def test_delete_drops_connected_consumers(connect: Connector) -> None:
    consumer, admin = await connect(0), await connect(0)
    await create(admin)
    correlation_id = await join(consumer)

    deleted = await admin.call(
        C.DeletePersistentSubscription,
        pb.DeletePersistentSubscription(subscription_group_name=GROUP, event_stream_id=STREAM),
        C.DeletePersistentSubscriptionCompleted,
        DeleteDone,
    )

    assert deleted.result == DeleteDone.Success
    frame = await consumer.expect(correlation_id, C.SubscriptionDropped)
    assert decode(Dropped, frame).reason == Dropped.PersistentSubscriptionDeleted
    await admin.write(STREAM, new_event())
    await consumer.barrier()
    assert consumer.pending(correlation_id) == []


async def test_unsubscribe_ends_a_persistent_subscription(connect: Connector) -> None:
    leaving, staying, writer = await connect(0), await connect(0), await connect(0)
    await create(writer, start_from=0, strategy="DispatchToSingle")
    gone = await join(leaving)
    kept = await join(staying)
    await writer.write(STREAM, new_event())
    (held,) = await receive(leaving, gone, 1)

    leaving.send(C.UnsubscribeFromStream, correlation_id=gone)

    frame = await leaving.expect(gone, C.SubscriptionDropped)
    assert decode(Dropped, frame).reason == Dropped.Unsubscribed
    (again,) = await receive(staying, kept, 1)  # its unacked event goes to the other consumer
    assert again.event_id == held.event_id
    await writer.write(STREAM, new_event())
    assert [e.event_number for e in await receive(staying, kept, 1)] == [1]
    await leaving.barrier()
    assert leaving.pending(gone) == []


async def test_parked_after_max_retry_count_of_timeouts(connect: Connector, es: Cluster) -> None:
    consumer, writer = await connect(0), await connect(0)
    await create(writer, start_from=0, message_timeout_ms=50, max_retry_count=0)
    correlation_id = await join(consumer, allowed=1)
    await writer.write(STREAM, new_event(), new_event())

    (first,) = await receive(consumer, correlation_id, 1)
    (following,) = await receive(consumer, correlation_id, 1)  # first timed out: parked

    assert (first.event_number, following.event_number) == (0, 1)
    ack(consumer, correlation_id, following)
    group = es.state.registry.get(STREAM, GROUP)
    assert group is not None
    assert [c.event_number for c in group.parked] == [0]

"""Subscriptions against a simulated cluster: volatile, catch-up, ``$all``, persistent groups.

Real sockets on loopback (see ``conftest.py``). Every wait on an iterator is bounded; ordering
that the tests rely on comes from the protocol (a node serves one connection's frames in order),
never from sleeping.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from clustersim.eventstore import Cluster
from photonpump import Client, Event, NakAction, NewEvent, Position, exceptions
from photonpump._subscriptions import VolatileSubscription
from photonpump.messages import OperationResult

from .conftest import BOUND, collect, eventually, new_client


async def write(client: Client, stream: str, *values: int) -> None:
    result = await client.publish(stream, [NewEvent("Value", data={"v": v}) for v in values])
    assert result.result == OperationResult.Success


def values(events: list[Event]) -> list[int]:
    return [event.json()["v"] for event in events]


def numbers(events: list[Event]) -> list[int]:
    return [event.event_number for event in events]


async def drain(events: Any) -> list[Event]:
    """Everything left in an iterator that is ending (bounded)."""
    async with asyncio.timeout(BOUND):
        return [event async for event in events]


def group_of(es: Cluster, stream: str, name: str) -> Any:
    group = es.state.registry.get(stream, name)
    assert group is not None, f"no group {name} on {stream}"
    return group


# --- volatile ----------------------------------------------------------------------------------


async def test_volatile_subscription_sees_only_new_events(client: Client) -> None:
    await write(client, "live", 1, 2, 3)
    subscription = await client.subscribe_to("live")
    assert subscription.stream == "live"
    assert subscription.last_event_number == 2  # where the stream stood when confirmed
    await write(client, "live", 4, 5)
    await write(client, "elsewhere", 99)
    await write(client, "live", 6)
    received = await collect(subscription.events, 3)
    assert values(received) == [4, 5, 6]
    assert numbers(received) == [3, 4, 5]
    assert all(event.stream == "live" for event in received)
    assert all(event.position is not None for event in received)
    await subscription.unsubscribe()
    assert subscription.is_complete
    assert await drain(subscription.events) == []
    # The connection goes on, and the unsubscribed stream delivers nothing more.
    await write(client, "live", 7)
    assert await client.ping() >= 0
    assert await drain(subscription.events) == []


async def test_volatile_subscription_as_a_context_manager(client: Client) -> None:
    async with await client.subscribe_to("ctx") as subscription:
        await write(client, "ctx", 1)
        assert values(await collect(subscription.events, 1)) == [1]
    assert subscription.is_complete
    assert await drain(subscription.events) == []


async def test_raise_error_is_awaitable_and_fails_the_iterator(client: Client) -> None:
    """The original's ``raise_error`` was a coroutine: ``await sub.raise_error(exc)``."""
    subscription = await client.subscribe_to("doomed-live")
    assert isinstance(subscription, VolatileSubscription)
    raise_error: Any = subscription.raise_error  # typed as the original's coroutine
    await raise_error(ValueError("stop here"))
    with pytest.raises(ValueError, match="stop here"):
        await collect(subscription.events, 1)
    assert subscription.is_complete


async def test_subscribing_with_bad_credentials_raises_not_authenticated(
    cluster: Cluster,
) -> None:
    async with new_client(cluster, username="admin", password="nope") as client:
        with pytest.raises(exceptions.NotAuthenticated):
            await client.subscribe_to("anything")
        with pytest.raises(exceptions.NotAuthenticated):
            await client.connect_subscription("group", "anything")
        assert await client.ping() >= 0


async def test_unsubscribe_ends_a_waiting_iterator(client: Client) -> None:
    subscription = await client.subscribe_to("waiting")

    async def read_all() -> list[Event]:
        return [event async for event in subscription.events]

    reader = asyncio.create_task(read_all())
    await write(client, "waiting", 1)
    await eventually(lambda: subscription.events.last_event_number == 0)
    await subscription.unsubscribe()
    async with asyncio.timeout(BOUND):
        assert values(await reader) == [1]


# --- catch-up ----------------------------------------------------------------------------------


async def test_catch_up_from_zero_reads_history_then_live_events(client: Client) -> None:
    await write(client, "history", *range(5))
    subscription = await client.subscribe_to("history", start_from=0, batch_size=2)
    history = await collect(subscription.events, 5)
    assert numbers(history) == [0, 1, 2, 3, 4]
    await write(client, "history", 5, 6)
    await write(client, "history", 7)
    live = await collect(subscription.events, 3)
    assert numbers(live) == [5, 6, 7]
    assert values(history + live) == list(range(8))
    assert subscription.last_event_number == 7
    await subscription.unsubscribe()
    assert await drain(subscription.events) == []


async def test_catch_up_from_a_middle_event_number(client: Client) -> None:
    await write(client, "middle", *range(10))
    subscription = await client.subscribe_to("middle", start_from=6)
    assert numbers(await collect(subscription.events, 4)) == [6, 7, 8, 9]
    await write(client, "middle", 10)
    assert numbers(await collect(subscription.events, 1)) == [10]
    await subscription.unsubscribe()


async def test_catch_up_on_a_stream_that_does_not_exist_yet(client: Client) -> None:
    """The first page answers NoStream: an empty history, then live events (as the .NET client
    does), not an iterator that dies with ``StreamNotFound``."""
    assert await client.ping() >= 0  # connected first: this is not the test below
    subscription = await client.subscribe_to("not-yet", start_from=0)
    # Let the catch-up read its (missing) history before the stream appears: without this
    # pause the read may come after the write and the test would pass by luck. A correct
    # client passes however long the pause is.
    await asyncio.sleep(0.2)
    await write(client, "not-yet", 1, 2)
    assert numbers(await collect(subscription.events, 2)) == [0, 1]
    await subscription.unsubscribe()


@pytest.mark.parametrize("via", ["gossip", "tcp"])
async def test_catch_up_as_the_first_request_of_a_new_client(cluster: Cluster, via: str) -> None:
    """Subscribed before the connection is up, the live part must still be sent."""
    async with new_client(cluster) as writer:
        await write(writer, "first-thing", 0, 1)
    # A short deadline: without the fix, the live part's confirmation never comes.
    async with new_client(cluster, via, request_timeout=3.0) as client:
        subscription = await client.subscribe_to("first-thing", start_from=0)
        assert numbers(await collect(subscription.events, 2)) == [0, 1]
        await write(client, "first-thing", 2)
        assert numbers(await collect(subscription.events, 1)) == [2]
        await subscription.unsubscribe()


async def test_subscribe_to_all_catch_up_as_the_first_request(cluster: Cluster) -> None:
    async with new_client(cluster) as writer:
        await write(writer, "early", 0)
    async with new_client(cluster, request_timeout=3.0) as client:
        subscription = await client.subscribe_to_all(start_from=Position(0, 0))
        assert values(await collect(subscription.events, 1)) == [0]
        await subscription.unsubscribe()


async def test_volatile_subscription_as_the_first_request(cluster: Cluster) -> None:
    async with new_client(cluster) as client:
        subscription = await client.subscribe_to("fresh")
        await write(client, "fresh", 5)
        assert values(await collect(subscription.events, 1)) == [5]
        await subscription.unsubscribe()


async def test_catch_up_while_writes_go_on_loses_and_repeats_nothing(client: Client) -> None:
    await write(client, "busy", *range(150))
    subscription = await client.subscribe_to("busy", start_from=0, batch_size=40)
    await write(client, "busy", *range(150, 200))
    received = await collect(subscription.events, 200)
    assert numbers(received) == list(range(200))
    await subscription.unsubscribe()


async def test_catch_up_in_its_live_phase_survives_a_reconnect(
    client: Client, cluster: Cluster
) -> None:
    """R4: the original's live phase stalled for ever after a reconnect."""
    await write(client, "resumed", 0, 1)
    subscription = await client.subscribe_to("resumed", start_from=0)
    assert numbers(await collect(subscription.events, 2)) == [0, 1]
    await write(client, "resumed", 2)
    assert numbers(await collect(subscription.events, 1)) == [2]  # live now
    await cluster.adrop_connections()
    await write(client, "resumed", 3, 4)  # sent again on the new connection if need be
    assert numbers(await collect(subscription.events, 2)) == [3, 4]
    await write(client, "resumed", 5)
    assert numbers(await collect(subscription.events, 1)) == [5]
    await subscription.unsubscribe()
    assert await drain(subscription.events) == []


async def test_volatile_subscription_resubscribes_after_a_reconnect(
    client: Client, cluster: Cluster
) -> None:
    subscription = await client.subscribe_to("volatile-again")
    assert isinstance(subscription, VolatileSubscription)
    await write(client, "volatile-again", 0)
    assert values(await collect(subscription.events, 1)) == [0]
    await cluster.adrop_connections()
    # On the new connection the subscription is sent before the write, so it sees the write.
    await write(client, "volatile-again", 1)
    assert values(await collect(subscription.events, 1)) == [1]
    assert subscription.resubscriptions == 1
    await subscription.unsubscribe()


# --- $all --------------------------------------------------------------------------------------


async def test_subscribe_to_all_live(client: Client) -> None:
    await write(client, "before", 0)
    subscription = await client.subscribe_to_all()
    await write(client, "one", 1)
    await write(client, "two", 2, 3)
    received = await collect(subscription.events, 3)
    assert [(e.stream, e.json()["v"]) for e in received] == [("one", 1), ("two", 2), ("two", 3)]
    positions = [e.position for e in received if e.position is not None]
    assert len(positions) == len(received)
    assert positions == sorted(positions)
    await subscription.unsubscribe()
    assert await drain(subscription.events) == []


async def test_subscribe_to_all_catch_up_from_a_position(client: Client) -> None:
    await write(client, "a", 0, 1, 2)
    await write(client, "b", 3, 4)
    everything = await client.get_all()
    start = everything[2].position
    assert start is not None
    subscription = await client.subscribe_to_all(start_from=start, batch_size=2)
    history = await collect(subscription.events, 3)
    assert values(history) == [2, 3, 4]
    await write(client, "c", 5)
    live = await collect(subscription.events, 1)
    assert [(e.stream, e.json()["v"]) for e in live] == [("c", 5)]
    await subscription.unsubscribe()


async def test_subscribe_to_all_from_the_beginning(client: Client) -> None:
    await write(client, "x", 0, 1)
    subscription = await client.subscribe_to_all(start_from=Position(0, 0))
    await write(client, "y", 2)
    assert values(await collect(subscription.events, 3)) == [0, 1, 2]
    await subscription.unsubscribe()


# --- persistent: management --------------------------------------------------------------------


async def test_create_update_and_delete_a_group(client: Client, cluster: Cluster) -> None:
    await client.create_subscription("workers", "jobs", max_retry_count=4)
    assert group_of(cluster, "jobs", "workers").settings.max_retry_count == 4
    with pytest.raises(exceptions.SubscriptionAlreadyExists) as exists:
        await client.create_subscription("workers", "jobs")
    assert isinstance(exists.value, exceptions.SubscriptionCreationFailed)
    assert exists.value.result == 1  # AlreadyExists
    await client.update_subscription("workers", "jobs", max_retry_count=7)
    assert group_of(cluster, "jobs", "workers").settings.max_retry_count == 7
    await client.delete_subscription("workers", "jobs")
    assert cluster.state.registry.get("jobs", "workers") is None
    with pytest.raises(exceptions.SubscriptionUpdateFailed) as update_missing:
        await client.update_subscription("workers", "jobs")
    assert update_missing.value.result == 1  # DoesNotExist
    with pytest.raises(exceptions.SubscriptionDeletionFailed) as delete_missing:
        await client.delete_subscription("workers", "jobs")
    assert delete_missing.value.result == 1  # DoesNotExist
    # Created again after its deletion: the name is free.
    await client.create_subscription("workers", "jobs")


async def test_connecting_to_a_missing_group_fails(client: Client) -> None:
    with pytest.raises(exceptions.SubscriptionFailed) as failed:
        await client.connect_subscription("nobody", "nowhere")
    assert failed.value.drop_reason == 2  # NotFound
    assert await client.ping() >= 0


# --- persistent: consuming ---------------------------------------------------------------------


async def test_connect_subscription_delivers_history_and_live_events(
    client: Client, cluster: Cluster
) -> None:
    await write(client, "orders", 0, 1, 2)
    await client.create_subscription("billing", "orders", start_from=0)
    subscription = await client.connect_subscription("billing", "orders")
    assert subscription.name == "orders::billing"
    assert subscription.stream == "orders"
    assert subscription.last_event_number == 2
    history = await collect(subscription.events, 3)
    assert values(history) == [0, 1, 2]
    assert all(event.position is None for event in history)  # R18: no fake (0, 0)
    for event in history:
        await subscription.ack(event)
    await write(client, "orders", 3, 4)
    live = await collect(subscription.events, 2)
    assert values(live) == [3, 4]
    await subscription.ack(live)  # several in one message
    group = group_of(cluster, "orders", "billing")
    await eventually(lambda: not group.in_flight_by_id)
    await subscription.stop()
    assert await drain(subscription.events) == []
    await eventually(lambda: not group.consumers)  # the node let the consumer go


async def test_default_start_from_delivers_only_events_after_creation(client: Client) -> None:
    await write(client, "late", 0, 1)
    await client.create_subscription("newcomer", "late")
    async with await client.connect_subscription("newcomer", "late") as subscription:
        await write(client, "late", 2)
        (event,) = await collect(subscription.events, 1)
        assert (event.event_number, values([event])) == (2, [2])
        await subscription.ack(event)


async def test_nack_retry_redelivers_the_event(client: Client, cluster: Cluster) -> None:
    await write(client, "retry", 0, 1)
    await client.create_subscription("g", "retry", start_from=0)
    subscription = await client.connect_subscription("g", "retry", allowed_in_flight=1)
    (first,) = await collect(subscription.events, 1)
    assert first.event_number == 0
    await subscription.nack(first, NakAction.Retry, "try again")
    (again,) = await collect(subscription.events, 1)
    assert (again.event_number, again.id) == (0, first.id)
    await subscription.ack(again)
    (second,) = await collect(subscription.events, 1)
    assert second.event_number == 1
    await subscription.ack(second)
    assert group_of(cluster, "retry", "g").parked == []
    await subscription.stop()


@pytest.mark.parametrize("action", [NakAction.Park, NakAction.Skip])
async def test_nack_park_and_skip_move_on(
    client: Client, cluster: Cluster, action: NakAction
) -> None:
    await write(client, "refused", 0, 1)
    await client.create_subscription("g", "refused", start_from=0)
    subscription = await client.connect_subscription("g", "refused", allowed_in_flight=1)
    (first,) = await collect(subscription.events, 1)
    await subscription.nack(first, action)
    (second,) = await collect(subscription.events, 1)
    assert second.event_number == 1  # event 0 is not sent again
    await subscription.ack(second)
    parked = [candidate.event_number for candidate in group_of(cluster, "refused", "g").parked]
    assert parked == ([0] if action == NakAction.Park else [])
    await write(client, "refused", 2)
    (third,) = await collect(subscription.events, 1)
    assert third.event_number == 2
    await subscription.stop()


async def test_unacked_events_are_redelivered_to_the_next_consumer_after_close(
    cluster: Cluster,
) -> None:
    async with new_client(cluster) as setup:
        await write(setup, "inbox", 0, 1, 2)
        await setup.create_subscription("readers", "inbox", start_from=0)
    async with new_client(cluster) as first:
        subscription = await first.connect_subscription("readers", "inbox")
        unacked = await collect(subscription.events, 3)
        assert numbers(unacked) == [0, 1, 2]
        await subscription.ack(unacked[0])
    group = group_of(cluster, "inbox", "readers")
    await eventually(lambda: not group.consumers)
    async with new_client(cluster, "tcp") as second:
        subscription = await second.connect_subscription("readers", "inbox")
        redelivered = await collect(subscription.events, 2)
        assert numbers(redelivered) == [1, 2]
        assert [e.id for e in redelivered] == [e.id for e in unacked[1:]]
        await subscription.ack(redelivered)
        await eventually(lambda: not group.in_flight_by_id)


async def test_unacked_events_are_redelivered_after_a_reconnect(
    client: Client, cluster: Cluster
) -> None:
    await write(client, "dropped", 0, 1)
    await client.create_subscription("g", "dropped", start_from=0)
    subscription = await client.connect_subscription("g", "dropped")
    assert numbers(await collect(subscription.events, 2)) == [0, 1]
    await cluster.adrop_connections()
    # The client reconnects and connects to the group again; the node sends both again.
    redelivered = await collect(subscription.events, 2)
    assert numbers(redelivered) == [0, 1]
    await subscription.ack(redelivered)
    await write(client, "dropped", 2)
    assert numbers(await collect(subscription.events, 1)) == [2]
    await subscription.stop()


async def test_two_consumers_share_a_round_robin_group(cluster: Cluster) -> None:
    async with new_client(cluster) as one, new_client(cluster, "tcp") as two:
        await one.create_subscription("pool", "tasks", consumer_strategy="RoundRobin")
        first = await one.connect_subscription("pool", "tasks")
        second = await two.connect_subscription("pool", "tasks")
        await write(one, "tasks", *range(10))
        got: dict[str, list[Event]] = {"one": [], "two": []}

        async def consume(name: str, subscription: Any) -> None:
            async for event in subscription.events:
                got[name].append(event)
                await subscription.ack(event)

        readers = [
            asyncio.create_task(consume("one", first)),
            asyncio.create_task(consume("two", second)),
        ]
        try:
            await eventually(lambda: len(got["one"]) + len(got["two"]) >= 10)
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
        one_numbers, two_numbers = numbers(got["one"]), numbers(got["two"])
        assert len(one_numbers) == len(two_numbers) == 5
        assert sorted(one_numbers + two_numbers) == list(range(10))


async def test_dispatch_to_single_sends_everything_to_one_consumer(cluster: Cluster) -> None:
    async with new_client(cluster) as one, new_client(cluster, "tcp") as two:
        await one.create_subscription("solo", "chores", consumer_strategy="DispatchToSingle")
        first = await one.connect_subscription("solo", "chores")
        second = await two.connect_subscription("solo", "chores")
        await write(one, "chores", 0, 1, 2)
        received = await collect(first.events, 3)
        assert numbers(received) == [0, 1, 2]
        group = group_of(cluster, "chores", "solo")
        assert len(set(group.in_flight_by_id.values())) == 1  # one consumer holds all three
        assert second.events.buffered == 0
        await first.ack(received)
        await eventually(lambda: not group.in_flight_by_id)
        await second.stop()
        await first.stop()


async def test_deleting_a_group_drops_its_consumers(client: Client) -> None:
    await client.create_subscription("doomed", "stuff")
    subscription = await client.connect_subscription("doomed", "stuff")
    await client.delete_subscription("doomed", "stuff")
    with pytest.raises(exceptions.SubscriptionFailed) as failed:
        await collect(subscription.events, 1)
    assert failed.value.drop_reason == 3  # PersistentSubscriptionDeleted

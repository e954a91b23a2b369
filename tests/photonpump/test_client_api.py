"""The client's request API on a simulated cluster: writes, reads, iterators, errors, lifecycle.

Real sockets on loopback (see ``conftest.py``). Tests taking the ``client`` fixture run twice:
through gossip discovery and through the leader's TCP address. Outcomes are checked on what
the client returns and, where the client cannot show it (content types, stored ids), on the
simulator's log. Regression scenarios of the reference (``R<n>``) are named where they apply.
"""

from __future__ import annotations

import asyncio
import json
import uuid
import warnings
from collections.abc import AsyncIterator

import photonpump
import pytest
from clustersim.eventstore import Cluster
from clustersim.eventstore.log import StoredEvent
from photonpump import (
    Client,
    ContentType,
    Credential,
    ExpectedVersion,
    NewEvent,
    Position,
    StreamDirection,
    connect,
    exceptions,
)
from photonpump.messages import OperationResult

from .conftest import BOUND, new_client


def stored(es: Cluster, stream: str) -> list[StoredEvent]:
    """The simulator's readable records of ``stream``."""
    return list(es.state.log.stream_events(stream))


async def fill(client: Client, stream: str, count: int) -> None:
    result = await client.publish(
        stream, [NewEvent("Counted", data={"n": n}) for n in range(count)]
    )
    assert result.result == OperationResult.Success
    assert result.last_event_number == count - 1


def numbers(events: list[photonpump.Event]) -> list[int]:
    return [event.event_number for event in events]


async def drain(events: AsyncIterator[photonpump.Event]) -> list[photonpump.Event]:
    async with asyncio.timeout(BOUND):
        return [event async for event in events]


# --- ping and writes -------------------------------------------------------------------------


async def test_ping_returns_the_round_trip_in_seconds(client: Client, cluster: Cluster) -> None:
    rtt = await client.ping()
    assert await client.ping(conversation_id=uuid.uuid4()) >= 0
    assert isinstance(rtt, float)
    assert 0 <= rtt < BOUND
    assert client.is_connected
    # Both fixtures reach the leader: gossip with prefer_master, or its address.
    assert cluster.leader is not None
    assert str(client.connection_address) == cluster.tcp_addresses[cluster.leader]


async def test_publish_event_with_a_dict_body_is_json(client: Client, cluster: Cluster) -> None:
    result = await client.publish_event(
        "ponies", "PonyJumped", body={"Pony": "Derpy", "Height": 10}
    )
    assert result.result == OperationResult.Success
    assert result.succeeded
    assert (result.first_event_number, result.last_event_number) == (0, 0)
    event = await client.get_event("ponies", 0)
    assert event.json() == {"Pony": "Derpy", "Height": 10}
    assert event.type == "PonyJumped"
    assert event.stream == "ponies"
    assert event.event_number == 0
    (record,) = stored(cluster, "ponies")
    assert record.data_content_type == ContentType.Json


async def test_publish_event_with_a_str_body_sends_it_as_json_text(
    client: Client, cluster: Cluster
) -> None:
    await client.publish_event("texts", "Said", body='{"hello": "world"}')
    event = await client.get_event("texts", 0)
    assert event.data == b'{"hello": "world"}'
    assert event.json() == {"hello": "world"}
    (record,) = stored(cluster, "texts")
    assert record.data_content_type == ContentType.Json


async def test_publish_event_with_a_bytes_body_is_binary(client: Client, cluster: Cluster) -> None:
    await client.publish_event("blobs", "Blob", body=b"\x00\xffraw")
    event = await client.get_event("blobs", 0)
    assert event.data == b"\x00\xffraw"
    (record,) = stored(cluster, "blobs")
    assert record.data_content_type == ContentType.Binary
    with pytest.raises(exceptions.PayloadUnreadable):
        event.json()


async def test_publish_event_without_a_body_writes_empty_data(client: Client) -> None:
    await client.publish_event("empty", "Nothing")
    event = await client.get_event("empty", 0)
    assert event.data == b""
    assert event.metadata == b""


async def test_publish_event_with_metadata_and_an_explicit_id(
    client: Client, cluster: Cluster
) -> None:
    event_id = uuid.uuid4()
    await client.publish_event(
        "meta", "Tagged", body={"x": 1}, id=event_id, metadata={"causation": "test"}
    )
    event = await client.get_event("meta", 0)
    assert event.id == event_id
    assert json.loads(event.metadata) == {"causation": "test"}
    (record,) = stored(cluster, "meta")
    assert record.event_id == event_id.bytes_le  # .NET order
    assert record.metadata_content_type == ContentType.Json


async def test_publishing_the_same_event_id_twice_writes_it_once(client: Client) -> None:
    event_id = uuid.uuid4()
    first = await client.publish_event("once", "Done", body={"n": 1}, id=event_id)
    again = await client.publish_event("once", "Done", body={"n": 1}, id=event_id)
    assert again.result == OperationResult.Success
    assert again.last_event_number == first.last_event_number == 0
    assert len(await client.get("once")) == 1


async def test_publish_several_events_and_the_write_result(client: Client) -> None:
    await client.publish_event("batch", "First")
    result = await client.publish(
        "batch", [NewEvent("Next", data={"n": n}) for n in range(3)], expected_version=0
    )
    assert result.result == OperationResult.Success
    assert (result.first_event_number, result.last_event_number) == (1, 3)
    assert result.prepare_position is not None
    assert result.commit_position is not None
    assert result.commit_position >= result.prepare_position >= 0
    events = await client.get("batch")
    assert numbers(events) == [0, 1, 2, 3]
    assert [e.type for e in events] == ["First", "Next", "Next", "Next"]
    assert [e.json() for e in events[1:]] == [{"n": 0}, {"n": 1}, {"n": 2}]
    # Positions grow with the log, and the last write's position is its last event's.
    last = await client.get_all(StreamDirection.Backward, max_count=1)
    assert last[0].position == Position(result.commit_position, result.prepare_position)


async def test_expected_versions_are_checked(client: Client) -> None:
    must_not_exist = ExpectedVersion.StreamMustNotExist
    created = await client.publish_event("versions", "A", expected_version=must_not_exist)
    assert created.result == OperationResult.Success
    exists = await client.publish_event(
        "versions", "B", expected_version=ExpectedVersion.StreamMustExist
    )
    assert exists.result == OperationResult.Success
    assert exists.last_event_number == 1
    exact = await client.publish_event("versions", "C", expected_version=1)
    assert exact.result == OperationResult.Success
    any_version = await client.publish_event("versions", "D", expected_version=ExpectedVersion.Any)
    assert any_version.last_event_number == 3


async def test_a_wrong_expected_version_is_returned_not_raised(client: Client) -> None:
    await client.publish_event("wev", "A")
    result = await client.publish_event(
        "wev", "B", expected_version=ExpectedVersion.StreamMustNotExist
    )
    assert result.result == OperationResult.WrongExpectedVersion
    assert not result.succeeded
    stale = await client.publish("wev", [NewEvent("C")], expected_version=5)
    assert stale.result == OperationResult.WrongExpectedVersion
    missing = await client.publish_event(
        "wev-missing", "A", expected_version=ExpectedVersion.StreamMustExist
    )
    assert missing.result == OperationResult.WrongExpectedVersion
    # Nothing was written, and the connection goes on.
    assert numbers(await client.get("wev")) == [0]
    assert await client.ping() >= 0


# --- single-event reads ----------------------------------------------------------------------


async def test_get_event_reads_by_number_and_minus_one_is_the_last(client: Client) -> None:
    await fill(client, "numbered", 5)
    third = await client.get_event("numbered", 2)
    assert (third.event_number, third.json()) == (2, {"n": 2})
    # The original passed the number through; the server reads -1 as the stream's last event.
    last = await client.get_event("numbered", -1)
    assert (last.event_number, last.json()) == (4, {"n": 4})


async def test_get_event_errors(client: Client) -> None:
    with pytest.raises(exceptions.StreamNotFound) as no_stream:
        await client.get_event("never-written", 0)
    assert no_stream.value.stream == "never-written"
    await fill(client, "short", 1)
    with pytest.raises(exceptions.EventNotFound) as no_event:
        await client.get_event("short", 7)
    assert (no_event.value.stream, no_event.value.event_number) == ("short", 7)
    await client.delete_stream("short", hard_delete=True)
    with pytest.raises(exceptions.StreamDeleted) as deleted:
        await client.get_event("short", 0)
    assert deleted.value.stream == "short"
    assert await client.ping() >= 0


# --- pages -----------------------------------------------------------------------------------


async def test_get_forward_with_from_event_and_max_count(client: Client) -> None:
    await fill(client, "paged", 10)
    everything = await client.get("paged")
    assert numbers(everything) == list(range(10))
    assert everything.is_end_of_stream
    assert everything.events is everything  # the original's ``.events``
    page = await client.get("paged", from_event=3, max_count=4)
    assert numbers(page) == [3, 4, 5, 6]
    assert page.next_event_number == 7
    assert page.last_event_number == 9
    assert not page.is_end_of_stream
    assert [e.json() for e in page] == [{"n": n} for n in range(3, 7)]
    tail = await client.get("paged", StreamDirection.Forward, 8, 100)
    assert numbers(tail) == [8, 9]
    assert tail.is_end_of_stream


async def test_get_backward_with_from_event_and_max_count(client: Client) -> None:
    await fill(client, "paged-back", 10)
    page = await client.get("paged-back", StreamDirection.Backward, from_event=5, max_count=3)
    assert numbers(page) == [5, 4, 3]
    assert page.next_event_number == 2
    assert not page.is_end_of_stream
    bottom = await client.get("paged-back", StreamDirection.Backward, from_event=1, max_count=5)
    assert numbers(bottom) == [1, 0]
    assert bottom.is_end_of_stream


async def test_get_backward_without_from_event_reads_from_the_end(client: Client) -> None:
    """R15: the original started at event 0 although it documented "from the end"."""
    await fill(client, "latest", 10)
    page = await client.get("latest", direction=StreamDirection.Backward, max_count=3)
    assert numbers(page) == [9, 8, 7]
    everything = await client.get("latest", StreamDirection.Backward)
    assert numbers(everything) == list(range(9, -1, -1))


async def test_get_errors(client: Client) -> None:
    with pytest.raises(exceptions.StreamNotFound):
        await client.get("nothing-here")
    with pytest.raises(exceptions.StreamNotFound):
        await client.get("nothing-here", StreamDirection.Backward)
    await fill(client, "gone", 2)
    await client.delete_stream("gone", hard_delete=True)
    with pytest.raises(exceptions.StreamDeleted):
        await client.get("gone")


async def test_get_all_forward_positions(client: Client) -> None:
    """R12: ``start_position`` is where the page was read from, ``next_position`` what follows."""
    await fill(client, "all-a", 3)
    await fill(client, "all-b", 4)
    first = await client.get_all(max_count=4)
    assert first.start_position == Position(0, 0)
    assert [(e.stream, e.event_number) for e in first] == [
        ("all-a", 0),
        ("all-a", 1),
        ("all-a", 2),
        ("all-b", 0),
    ]
    positions = [e.position for e in first if e.position is not None]
    assert len(positions) == len(first)
    assert positions == sorted(positions)
    assert first.next_position > positions[-1]
    second = await client.get_all(from_position=first.next_position, max_count=100)
    assert second.start_position == first.next_position
    assert [(e.stream, e.event_number) for e in second] == [("all-b", n) for n in (1, 2, 3)]
    end = await client.get_all(from_position=second.next_position)
    assert len(end) == 0
    assert first.events is first


async def test_get_all_backward_positions(client: Client) -> None:
    await fill(client, "back-a", 3)
    await fill(client, "back-b", 2)
    page = await client.get_all(StreamDirection.Backward, max_count=3)
    assert [(e.stream, e.event_number) for e in page] == [
        ("back-b", 1),
        ("back-b", 0),
        ("back-a", 2),
    ]
    assert page.start_position == Position(-1, -1)  # from the end
    rest = await client.get_all(StreamDirection.Backward, page.next_position, max_count=100)
    assert [(e.stream, e.event_number) for e in rest] == [("back-a", 1), ("back-a", 0)]
    assert rest.start_position == page.next_position


# --- iterators -------------------------------------------------------------------------------


async def test_iter_forward_and_backward_page_through_250_events(client: Client) -> None:
    await fill(client, "long", 250)
    async with asyncio.timeout(BOUND):
        forward = [e async for e in client.iter("long", batch_size=100)]
        backward = [
            e async for e in client.iter("long", direction=StreamDirection.Backward, batch_size=100)
        ]
    assert numbers(forward) == list(range(250))
    assert [e.json()["n"] for e in forward] == list(range(250))
    assert numbers(backward) == list(range(249, -1, -1))


async def test_iter_from_an_event_number(client: Client) -> None:
    await fill(client, "from-middle", 250)
    async with asyncio.timeout(BOUND):
        forward = [e async for e in client.iter("from-middle", from_event=120, batch_size=100)]
        backward = [
            e
            async for e in client.iter(
                "from-middle", StreamDirection.Backward, from_event=120, batch_size=100
            )
        ]
        zero = [e async for e in client.iter("from-middle", from_event=0, batch_size=100)]
    assert numbers(forward) == list(range(120, 250))
    assert numbers(backward) == list(range(120, -1, -1))
    assert numbers(zero) == list(range(250))


async def test_iter_of_a_single_event_stream_from_event_zero(client: Client) -> None:
    await fill(client, "single", 1)
    async with asyncio.timeout(BOUND):
        events = [e async for e in client.iter("single", from_event=0, batch_size=1)]
        back = [e async for e in client.iter("single", StreamDirection.Backward, batch_size=1)]
    assert numbers(events) == [0]
    assert numbers(back) == [0]


async def test_iter_of_a_missing_stream_raises(client: Client) -> None:
    with pytest.raises(exceptions.StreamNotFound):
        await drain(client.iter("missing-iter"))


async def test_iter_all_forward_and_backward(client: Client) -> None:
    await fill(client, "everything-a", 30)
    await fill(client, "everything-b", 25)
    async with asyncio.timeout(BOUND):
        forward = [e async for e in client.iter_all(batch_size=7)]
        backward = [e async for e in client.iter_all(StreamDirection.Backward, batch_size=7)]
    expected = [("everything-a", n) for n in range(30)] + [("everything-b", n) for n in range(25)]
    assert [(e.stream, e.event_number) for e in forward] == expected
    assert [(e.stream, e.event_number) for e in backward] == expected[::-1]
    # From a position: the event at that position and everything after it.
    position = forward[40].position
    assert position is not None
    async with asyncio.timeout(BOUND):
        later = [e async for e in client.iter_all(from_position=position, batch_size=4)]
    assert [(e.stream, e.event_number) for e in later] == expected[40:]


@pytest.mark.parametrize("batch_size", [1, 10])
async def test_iterators_resume_after_a_reconnect_without_repeats(
    client: Client, cluster: Cluster, batch_size: int
) -> None:
    """R7, R8: the original re-yielded the last event (or restarted ``$all``) after a reconnect;
    with ``batch_size=1`` the first page ends at event 0, the original's worst case."""
    await fill(client, "resume", 30)
    stream_events = client.iter("resume", batch_size=batch_size)
    all_events = client.iter_all(batch_size=batch_size)
    first = [await anext(stream_events) for _ in range(batch_size)]
    first_all = [await anext(all_events) for _ in range(batch_size)]
    await cluster.adrop_connections()
    rest = await drain(stream_events)
    rest_all = await drain(all_events)
    assert numbers(first + rest) == list(range(30))
    assert numbers(first_all + rest_all) == list(range(30))


# --- deletes ---------------------------------------------------------------------------------


async def test_soft_delete_hides_the_stream_and_a_later_write_continues(client: Client) -> None:
    await fill(client, "soft", 3)
    result = await client.delete_stream("soft", expected_version=2)
    assert result.result == OperationResult.Success
    with pytest.raises(exceptions.StreamNotFound):
        await client.get("soft")
    with pytest.raises(exceptions.StreamNotFound):
        await client.get_event("soft", 0)
    again = await client.publish_event("soft", "Again", body={"back": True})
    assert again.result == OperationResult.Success
    assert again.last_event_number == 3  # numbering goes on after a soft delete
    assert numbers(await client.get("soft")) == [3]


async def test_hard_delete_tombstones_the_stream(client: Client) -> None:
    await fill(client, "hard", 2)
    result = await client.delete_stream("hard", hard_delete=True)
    assert result.result == OperationResult.Success
    with pytest.raises(exceptions.StreamDeleted):
        await client.get("hard")
    write = await client.publish_event("hard", "Late")
    assert write.result == OperationResult.StreamDeleted  # returned, not raised
    # The events stay in $all (until a scavenge, on a real server).
    async with asyncio.timeout(BOUND):
        in_all = [e async for e in client.iter_all() if e.stream == "hard"]
    assert numbers(in_all) == [0, 1]


async def test_delete_with_a_wrong_expected_version_is_returned(client: Client) -> None:
    await fill(client, "keep", 2)
    result = await client.delete_stream("keep", expected_version=0)
    assert result.result == OperationResult.WrongExpectedVersion
    assert numbers(await client.get("keep")) == [0, 1]


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

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

import pytest
from clustersim.eventstore import Cluster
from clustersim.eventstore.log import StoredEvent
from photonpump import (
    Client,
    ContentType,
    ExpectedVersion,
    NewEvent,
    Position,
    StreamDirection,
    exceptions,
)
from photonpump.messages import OperationResult

from .conftest import BOUND, drain, fill, numbers


def stored(es: Cluster, stream: str) -> list[StoredEvent]:
    """The simulator's readable records of ``stream``."""
    return list(es.state.log.stream_events(stream))


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

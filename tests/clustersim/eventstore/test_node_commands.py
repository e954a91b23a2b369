"""Requests and replies over real sockets: ping, identify, credentials, writes, reads, deletes.

Every test runs a fresh three-node cluster on its own event loop and talks to the leader (node 0)
unless it says otherwise; the raw client sends exactly the frames built here.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from clustersim.eventstore.cluster import Cluster
from google.protobuf.message import Message

from resilient_topology.eventstore.framing import Credentials
from resilient_topology.eventstore.proto import messages_pb2 as pb

from ._raw import (
    ADMIN,
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    C,
    Connector,
    RawClient,
    decode,
    new_event,
    read_event,
    subscribe,
    write,
)

ALICE = Credentials("alice", "wonderland")
BAD = Credentials("admin", "wrong")
RES = pb.ReadEventCompleted
RSS = pb.ReadStreamEventsCompleted


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


def numbers(reply: pb.ReadStreamEventsCompleted) -> list[int]:
    return [e.event.event_number for e in reply.events]


# --- simple commands ---------------------------------------------------------------------------


async def test_ping_gets_pong_with_the_same_correlation_id(client: RawClient) -> None:
    correlation_id = client.send(C.Ping)

    pong = await client.expect(correlation_id, C.Pong)

    assert pong.payload == b""
    assert pong.credentials is None


async def test_identify_client_is_acknowledged(client: RawClient) -> None:
    message = pb.IdentifyClient(version=1, connection_name="tests")

    reply = await client.request(C.IdentifyClient, message)

    assert reply.command == C.ClientIdentified


async def test_authenticate_with_good_credentials(client: RawClient) -> None:
    reply = await client.request(C.Authenticate, credentials=ADMIN)

    assert reply.command == C.Authenticated


@pytest.mark.parametrize(
    "credentials",
    [BAD, Credentials("nobody", "changeit"), Credentials("ädmin", "pässwörd")],
    ids=["bad-password", "unknown-user", "non-ascii"],
)
async def test_authenticate_with_bad_credentials(
    client: RawClient, credentials: Credentials
) -> None:
    reply = await client.request(C.Authenticate, credentials=credentials)

    assert reply.command == C.NotAuthenticated
    assert reply.payload.decode("utf-8").strip()


async def test_added_user_authenticates(es: Cluster, client: RawClient) -> None:
    es.add_user(ALICE.username, ALICE.password)

    reply = await client.request(C.Authenticate, credentials=ALICE)

    assert reply.command == C.Authenticated


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (C.Ping, b""),
        (C.IdentifyClient, pb.IdentifyClient(version=1)),
        (C.WriteEvents, write("s", new_event())),
        (C.ReadEvent, read_event("s", 0)),
        (C.SubscribeToStream, subscribe("s")),
    ],
    ids=["ping", "identify", "write", "read", "subscribe"],
)
async def test_any_request_with_bad_credentials_is_not_authenticated(
    client: RawClient, command: int, message: Message | bytes
) -> None:
    correlation_id = client.send(command, message, credentials=BAD)

    reply = await client.expect(correlation_id, C.NotAuthenticated)

    assert reply.payload.decode("utf-8")
    # Nothing was written, and the connection still serves.
    read = await client.read_stream("s", 0, 10)
    assert read.result == RSS.NoStream


# --- writes ------------------------------------------------------------------------------------


async def test_writes_number_events_and_report_growing_positions(client: RawClient) -> None:
    first = await client.write("orders", new_event(), new_event(), expected=NO_STREAM)
    second = await client.write("orders", new_event(), expected=1)
    other = await client.write("other", new_event(data=b'{"big": "' + b"x" * 500 + b'"}'))

    assert (first.result, first.first_event_number, first.last_event_number) == (pb.Success, 0, 1)
    assert (second.result, second.first_event_number, second.last_event_number) == (
        pb.Success,
        2,
        2,
    )
    assert (other.first_event_number, other.last_event_number) == (0, 0)
    for reply in (first, second, other):
        assert reply.commit_position == reply.prepare_position
    assert 0 < first.commit_position < second.commit_position < other.commit_position


@pytest.mark.parametrize(
    ("expected", "on_new", "on_existing"),
    [
        (ANY, True, True),
        (NO_STREAM, True, False),
        (STREAM_EXISTS, False, True),
        (0, False, True),
        (5, False, False),
    ],
    ids=["any", "no-stream", "stream-exists", "exact", "wrong-exact"],
)
async def test_expected_versions(
    client: RawClient, expected: int, on_new: bool, on_existing: bool
) -> None:
    fresh = await client.write("new-stream", new_event(), expected=expected)
    await client.write("existing", new_event(), expected=NO_STREAM)
    existing = await client.write("existing", new_event(), expected=expected)

    for reply, ok in ((fresh, on_new), (existing, on_existing)):
        if ok:
            assert reply.result == pb.Success
        else:
            assert reply.result == pb.WrongExpectedVersion
            assert reply.message  # says which version it found
    assert (await client.read_event("existing", -1)).event.event.event_number == int(on_existing)


async def test_a_repeated_write_is_idempotent(client: RawClient) -> None:
    events = [new_event(), new_event()]
    first = await client.write("orders", *events, expected=NO_STREAM)
    again = await client.write("orders", *events, expected=NO_STREAM)
    once_more = await client.write("orders", *events, expected=ANY)

    for reply in (again, once_more):
        assert reply.result == pb.Success
        assert (reply.first_event_number, reply.last_event_number) == (0, 1)
    assert again.commit_position == first.commit_position
    read = await client.read_stream("orders", 0, 100)
    assert [e.event.event_id for e in read.events] == [e.event_id for e in events]


async def test_an_event_id_of_the_wrong_length_is_a_bad_request(client: RawClient) -> None:
    correlation_id = client.send(C.WriteEvents, write("s", new_event(event_id=b"short")))

    await client.expect(correlation_id, C.BadRequest)
    assert (await client.read_stream("s", 0, 1)).result == RSS.NoStream


# --- reads -------------------------------------------------------------------------------------


async def test_read_event_by_number_and_last(client: RawClient) -> None:
    events = [new_event("a", b'{"n": 0}'), new_event("b", b'{"n": 1}')]
    await client.write("s", *events)

    first = await client.read_event("s", 0)
    last = await client.read_event("s", -1)

    assert first.result == RES.Success
    assert (first.event.event.event_id, first.event.event.event_type) == (events[0].event_id, "a")
    assert first.event.event.event_stream_id == "s"
    assert first.event.event.data == b'{"n": 0}'
    assert first.event.event.created_epoch > 0
    assert last.event.event.event_number == 1
    assert last.event.event.event_id == events[1].event_id


@pytest.mark.parametrize(
    ("stream", "number", "result"), [("s", 7, RES.NotFound), ("missing", 0, RES.NoStream)]
)
async def test_a_failed_read_event_still_carries_a_dummy_event(
    client: RawClient, stream: str, number: int, result: int
) -> None:
    await client.write("s", new_event())

    frame = await client.request(C.ReadEvent, read_event(stream, number))

    assert frame.command == C.ReadEventCompleted
    reply = decode(pb.ReadEventCompleted, frame)
    assert reply.result == result
    assert reply.IsInitialized()  # the required event is there
    assert reply.HasField("event")
    assert reply.event.event.event_number == -1
    assert len(reply.event.event.event_id) == 16


async def test_read_stream_forward_pages(client: RawClient) -> None:
    await client.write("s", *(new_event() for _ in range(5)))

    pages = [await client.read_stream("s", start, 2) for start in (0, 2, 4)]

    assert [numbers(p) for p in pages] == [[0, 1], [2, 3], [4]]
    assert [p.next_event_number for p in pages] == [2, 4, 5]
    assert [p.is_end_of_stream for p in pages] == [False, False, True]
    assert {p.last_event_number for p in pages} == {4}
    assert {p.result for p in pages} == {RSS.Success}


async def test_read_stream_backward_pages(client: RawClient) -> None:
    await client.write("s", *(new_event() for _ in range(5)))

    pages = []
    start = -1
    for _ in range(5):
        page = await client.read_stream("s", start, 2, backward=True)
        pages.append(page)
        if page.is_end_of_stream:
            break
        start = page.next_event_number

    assert [numbers(p) for p in pages] == [[4, 3], [2, 1], [0]]
    assert [p.next_event_number for p in pages] == [2, 0, -1]
    assert {p.last_event_number for p in pages} == {4}


async def test_reading_a_missing_stream_is_no_stream(client: RawClient) -> None:
    for backward in (False, True):
        reply = await client.read_stream("missing", 0, 10, backward=backward)
        assert reply.result == RSS.NoStream
        assert list(reply.events) == []


async def _page_all(client: RawClient, size: int, *, backward: bool) -> list[pb.ResolvedEvent]:
    events: list[pb.ResolvedEvent] = []
    position = -1 if backward else 0
    for _ in range(100):
        page = await client.read_all(position, size, backward=backward)
        assert page.result == pb.ReadAllEventsCompleted.Success
        assert page.commit_position == page.prepare_position == position
        if not page.events:
            return events
        events.extend(page.events)
        assert page.next_commit_position == page.next_prepare_position
        position = page.next_commit_position
    raise AssertionError("paging $all never ended")


async def test_read_all_both_ways_gives_the_same_events_in_opposite_orders(
    client: RawClient,
) -> None:
    written = []
    for index in range(7):
        stream = f"stream-{index % 3}"
        event = new_event(data=b"x" * (index * 10))
        reply = await client.write(stream, event)
        written.append((event.event_id, stream, reply.commit_position))

    forward = await _page_all(client, 3, backward=False)
    backward = await _page_all(client, 3, backward=True)

    def key(e: pb.ResolvedEvent) -> tuple[bytes, str, int]:
        assert e.commit_position == e.prepare_position
        return (e.event.event_id, e.event.event_stream_id, e.commit_position)

    assert [key(e) for e in forward] == written
    assert [key(e) for e in backward] == written[::-1]
    positions = [e.commit_position for e in forward]
    assert positions == sorted(set(positions))


async def test_follower_reads_see_the_leaders_writes(connect: Connector) -> None:
    leader, follower = await connect(0), await connect(1)
    written = await leader.write("s", new_event())

    read = await follower.read_stream("s", 0, 10)

    assert numbers(read) == [0]
    assert read.last_commit_position == written.commit_position


# --- deletes -----------------------------------------------------------------------------------


async def test_soft_delete_then_write_continues_numbering(client: RawClient) -> None:
    await client.write("s", new_event(), new_event(), new_event())

    deleted = await client.delete("s", expected=2)

    assert deleted.result == pb.Success
    assert (await client.read_stream("s", 0, 10)).result == RSS.NoStream
    assert (await client.read_event("s", 0)).result == RES.NoStream
    again = await client.write("s", new_event(), expected=NO_STREAM)
    assert (again.result, again.first_event_number) == (pb.Success, 3)
    assert numbers(await client.read_stream("s", 0, 10)) == [3]


async def test_delete_with_a_wrong_expected_version(client: RawClient) -> None:
    await client.write("s", new_event())

    reply = await client.delete("s", expected=5)

    assert reply.result == pb.WrongExpectedVersion
    assert numbers(await client.read_stream("s", 0, 10)) == [0]


async def test_hard_delete_refuses_reads_and_writes(client: RawClient) -> None:
    await client.write("s", new_event())

    assert (await client.delete("s", hard=True)).result == pb.Success

    assert (await client.read_stream("s", 0, 10)).result == RSS.StreamDeleted
    assert (await client.read_stream("s", -1, 10, backward=True)).result == RSS.StreamDeleted
    assert (await client.read_event("s", 0)).result == RES.StreamDeleted
    assert (await client.write("s", new_event())).result == pb.StreamDeleted
    assert (await client.delete("s")).result == pb.StreamDeleted


# --- access rules ------------------------------------------------------------------------------


@pytest.fixture
async def restricted(es: Cluster) -> str:
    es.add_user(ALICE.username, ALICE.password)
    es.add_user("bob", "builder")
    es.restrict("secret", readers={"bob"}, writers={"bob"})
    return "secret"


async def test_a_restricted_user_is_denied(client: RawClient, restricted: str) -> None:
    await client.write(restricted, new_event(), credentials=ADMIN)

    wrote = await client.write(restricted, new_event(), credentials=ALICE)
    event = await client.read_event(restricted, 0, credentials=ALICE)
    stream = await client.read_stream(restricted, 0, 10, credentials=ALICE)
    subscription = await client.request(
        C.SubscribeToStream, subscribe(restricted), credentials=ALICE
    )
    deleted = await client.call(
        C.DeleteStream,
        pb.DeleteStream(event_stream_id=restricted, expected_version=ANY, require_master=False),
        C.DeleteStreamCompleted,
        pb.DeleteStreamCompleted,
        credentials=ALICE,
    )

    assert wrote.result == pb.AccessDenied
    assert event.result == RES.AccessDenied
    assert event.IsInitialized()  # a dummy event even here
    assert stream.result == RSS.AccessDenied
    assert subscription.command == C.SubscriptionDropped
    dropped = decode(pb.SubscriptionDropped, subscription)
    assert dropped.reason == pb.SubscriptionDropped.AccessDenied
    assert deleted.result == pb.AccessDenied
    # Unauthenticated requests are denied as well; the denied write wrote nothing.
    assert (await client.read_stream(restricted, 0, 10)).result == RSS.AccessDenied
    assert numbers(await client.read_stream(restricted, 0, 10, credentials=ADMIN)) == [0]


async def test_allowed_users_and_admin_are_served(client: RawClient, restricted: str) -> None:
    bob = Credentials("bob", "builder")
    for credentials in (bob, ADMIN):
        assert (await client.write(restricted, new_event(), credentials=credentials)).result == (
            pb.Success
        )
        read = await client.read_stream(restricted, 0, 10, credentials=credentials)
        assert read.result == RSS.Success
        correlation_id = client.send(
            C.SubscribeToStream, subscribe(restricted), credentials=credentials
        )
        await client.expect(correlation_id, C.SubscriptionConfirmation)
    assert numbers(await client.read_stream(restricted, 0, 10, credentials=ADMIN)) == [0, 1]


async def test_system_streams_need_admin_to_write(client: RawClient) -> None:
    denied = await client.write("$settings", new_event())
    allowed = await client.write("$settings", new_event(), credentials=ADMIN)

    assert denied.result == pb.AccessDenied
    assert allowed.result == pb.Success


async def test_a_restricted_all_denies_reading_all(es: Cluster, client: RawClient) -> None:
    es.add_user(ALICE.username, ALICE.password)
    es.restrict("$all", readers=set(), writers=set())
    await client.write("s", new_event())

    denied = await client.read_all(0, 10, credentials=ALICE)
    allowed = await client.read_all(0, 10, credentials=ADMIN)

    assert denied.result == pb.ReadAllEventsCompleted.AccessDenied
    assert list(denied.events) == []
    assert allowed.result == pb.ReadAllEventsCompleted.Success
    assert len(allowed.events) == 1


async def test_correlation_ids_are_echoed_for_interleaved_requests(client: RawClient) -> None:
    ids = [uuid.uuid4() for _ in range(5)]
    for index, correlation_id in enumerate(ids):
        client.send(C.WriteEvents, write(f"s{index}", new_event()), correlation_id=correlation_id)

    for index, correlation_id in enumerate(ids):
        frame = await client.expect(correlation_id, C.WriteEventsCompleted)
        assert decode(pb.WriteEventsCompleted, frame).first_event_number == 0, index

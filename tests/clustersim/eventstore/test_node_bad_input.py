"""Broken bytes on one connection: that connection is answered or closed, every other one served.

A frame that breaks the framing (a length under 18 or over the limit, an auth block that overruns
the frame) closes its connection; a well-framed request the node cannot serve (an unknown command,
a payload that does not parse) gets ``BadRequest`` with its correlation id and the connection goes
on. One node with a 1 KiB frame limit serves the whole module; heartbeats are slowed down so an
idle blocking socket is never dropped.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from clustersim.eventstore.cluster import Cluster
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilient_topology.eventstore.framing import (
    AUTHENTICATED,
    Credentials,
    Frame,
    FrameDecoder,
    encode_frame,
)
from resilient_topology.eventstore.proto import messages_pb2 as pb

from ._raw import (
    ADMIN,
    WAIT,
    C,
    Connector,
    RawClient,
    connect_group,
    decode,
    group_settings,
    new_event,
    parse_address,
    read_event,
    subscribe,
    write,
)

LIMIT = 1024
KNOWN = {int(c) for c in C}


@pytest.fixture(scope="module")
def es() -> Iterator[Cluster]:
    with Cluster(1, max_frame_size=LIMIT, heartbeat_interval=60.0) as cluster:
        yield cluster


@pytest.fixture
async def connect(es: Cluster) -> AsyncIterator[Connector]:
    connector = Connector(es)
    yield connector
    await connector.aclose()


@pytest.fixture
async def client(connect: Connector) -> RawClient:
    return await connect()


@pytest.fixture
async def bystander(connect: Connector) -> RawClient:
    """A second connection that must keep being served whatever the first one receives."""
    client = await connect()
    await client.barrier()
    return client


def header(length: int, command: int = C.Ping, flags: int = 0) -> bytes:
    return struct.pack("<I", length) + bytes((command, flags)) + uuid.uuid4().bytes_le


# --- framing errors close that connection only -------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 17])
async def test_a_length_shorter_than_the_header_closes_the_connection(
    client: RawClient, bystander: RawClient, length: int
) -> None:
    client.send_bytes(header(length))

    await client.wait_closed_by_server()
    await bystander.barrier()


async def test_a_frame_over_the_limit_closes_the_connection_before_its_body(
    client: RawClient, bystander: RawClient
) -> None:
    client.send_bytes(struct.pack("<I", LIMIT + 1))  # the length alone: no body follows

    await client.wait_closed_by_server()
    await bystander.barrier()


async def test_a_frame_at_the_limit_is_served(client: RawClient) -> None:
    payload = b"\x00" * (LIMIT - 18)
    correlation_id = client.send(C.Ping, payload)

    await client.expect(correlation_id, C.Pong)


@pytest.mark.parametrize(
    "auth",
    [b"", b"\x05adm", b"\x05admin\x08change"],
    ids=["no-block", "short-login", "short-password"],
)
async def test_an_auth_block_overrunning_the_frame_closes_the_connection(
    client: RawClient, bystander: RawClient, auth: bytes
) -> None:
    client.send_bytes(header(18 + len(auth), C.Ping, AUTHENTICATED) + auth)

    await client.wait_closed_by_server()
    await bystander.barrier()


async def test_credentials_that_are_not_utf8_close_the_connection(
    client: RawClient, bystander: RawClient
) -> None:
    auth = b"\x02\xff\xfe\x01x"
    client.send_bytes(header(18 + len(auth), C.Ping, AUTHENTICATED) + auth)

    await client.wait_closed_by_server()
    await bystander.barrier()


# --- framing that works however the bytes arrive -----------------------------------------------


async def test_a_frame_split_into_single_bytes_is_reassembled(client: RawClient) -> None:
    correlation_id = uuid.uuid4()
    data = encode_frame(
        Frame(C.WriteEvents, correlation_id, write("split", new_event()).SerializeToString(), ADMIN)
    )

    for index in range(len(data)):
        client.send_bytes(data[index : index + 1])
        await client.writer.drain()

    reply = await client.expect(correlation_id, C.WriteEventsCompleted)
    assert decode(pb.WriteEventsCompleted, reply).result == pb.Success


async def test_several_frames_in_one_write_are_each_answered(client: RawClient) -> None:
    ids = [uuid.uuid4() for _ in range(4)]

    client.send_bytes(b"".join(encode_frame(Frame(C.Ping, i)) for i in ids))

    for correlation_id in ids:
        await client.expect(correlation_id, C.Pong)


# --- requests the node cannot serve: BadRequest, and the connection goes on --------------------


@pytest.mark.parametrize("command", [0x00, 0x05, 0x10, 0x7F, 0x84, 0xD0, 0xF0, 0xFF])
async def test_an_unknown_command_is_a_bad_request(
    client: RawClient, bystander: RawClient, command: int
) -> None:
    correlation_id = client.send(command, b"whatever")

    reply = await client.expect(correlation_id, C.BadRequest)

    assert reply.payload.decode("utf-8")
    await client.barrier()
    await bystander.barrier()


PARTIAL = [
    (C.WriteEvents, pb.WriteEvents(event_stream_id="s", expected_version=-2)),
    (C.WriteEvents, write("s", pb.NewEvent(event_id=uuid.uuid4().bytes_le, event_type="t"))),
    (C.ReadEvent, pb.ReadEvent(event_stream_id="s")),
    (C.ReadStreamEventsForward, pb.ReadStreamEvents(event_stream_id="s", max_count=1)),
    (C.ReadAllEventsBackward, pb.ReadAllEvents(max_count=1)),
    (C.DeleteStream, pb.DeleteStream(event_stream_id="s")),
    (C.SubscribeToStream, pb.SubscribeToStream(event_stream_id="s")),
    (C.IdentifyClient, pb.IdentifyClient(connection_name="no version")),
    (
        C.CreatePersistentSubscription,
        pb.CreatePersistentSubscription(subscription_group_name="g", event_stream_id="s"),
    ),
    (C.ConnectToPersistentSubscription, pb.ConnectToPersistentSubscription(subscription_id="g")),
    (C.PersistentSubscriptionAckEvents, pb.PersistentSubscriptionAckEvents()),
]


@pytest.mark.parametrize(
    ("command", "message"), PARTIAL, ids=[f"{C(c).name}-{i}" for i, (c, _) in enumerate(PARTIAL)]
)
async def test_a_missing_required_field_is_a_bad_request(
    client: RawClient, command: int, message: Message
) -> None:
    correlation_id = client.send(command, message.SerializePartialToString())

    reply = await client.expect(correlation_id, C.BadRequest)

    assert "required" in reply.payload.decode("utf-8")
    await client.barrier()


@pytest.mark.parametrize(
    "command",
    [
        C.WriteEvents,
        C.ReadEvent,
        C.ReadAllEventsForward,
        C.SubscribeToStream,
        C.CreatePersistentSubscription,
        C.PersistentSubscriptionNakEvents,
        C.IdentifyClient,
    ],
)
async def test_a_payload_that_is_not_protobuf_is_a_bad_request(
    client: RawClient, bystander: RawClient, command: int
) -> None:
    correlation_id = client.send(command, b"\xff\xff\xff\xff")

    await client.expect(correlation_id, C.BadRequest)
    await client.barrier()
    await bystander.barrier()


def _break_text(message: Message, text: str) -> bytes:
    """``message`` with the UTF-8 of ``text`` replaced by bytes that are not UTF-8."""
    data = message.SerializeToString()
    assert data.count(text.encode()) == 1
    return data.replace(text.encode(), b"\xff" * len(text.encode()))


INVALID_TEXT = [
    (C.WriteEvents, _break_text(write("s-bad", new_event("TYPE")), "TYPE")),
    (C.WriteEvents, _break_text(write("STREAM", new_event()), "STREAM")),
    (C.ReadEvent, _break_text(read_event("STREAM", 0), "STREAM")),
    (C.SubscribeToStream, _break_text(subscribe("STREAM"), "STREAM")),
    (C.CreatePersistentSubscription, _break_text(group_settings("s", "GROUP"), "GROUP")),
    (C.ConnectToPersistentSubscription, _break_text(connect_group("STREAM", "g", 1), "STREAM")),
]


@pytest.mark.parametrize(
    ("command", "payload"),
    INVALID_TEXT,
    ids=["event-type", "write-stream", "read-stream", "subscribe", "group", "connect"],
)
async def test_text_that_is_not_utf8_is_a_bad_request(
    client: RawClient, command: int, payload: bytes
) -> None:
    correlation_id = client.send(command, payload, credentials=ADMIN)

    reply = await client.expect(correlation_id, C.BadRequest)

    assert "UTF-8" in reply.payload.decode("utf-8")
    # Nothing was stored that could break a later read of $all.
    page = await client.read_all(-1, 1000, backward=True, credentials=ADMIN)
    assert page.result == pb.ReadAllEventsCompleted.Success
    assert all(e.event.event_stream_id != "s-bad" for e in page.events)


# --- fuzz: random bytes on one connection, pongs on another -------------------------------------


class Blocking:
    """A blocking socket speaking frames, for hypothesis examples (which cannot await)."""

    def __init__(self, address: str) -> None:
        self.sock = socket.create_connection(parse_address(address), timeout=WAIT)
        self.decoder = FrameDecoder()
        self.frames: list[Frame] = []

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        with contextlib.suppress(OSError):  # the node may already have closed it
            self.sock.sendall(data)

    def ping(self) -> None:
        """Ping and read until the pong; a dead or silent node fails the example."""
        correlation_id = uuid.uuid4()
        self.sock.sendall(encode_frame(Frame(C.Ping, correlation_id)))
        while True:
            while self.frames:
                frame = self.frames.pop(0)
                if frame.correlation_id == correlation_id:
                    assert frame.command == C.Pong, frame
                    return
            data = self.sock.recv(65536)
            assert data, "the node closed the connection"
            self.frames.extend(self.decoder.feed(data))


@pytest.fixture(scope="module")
def watcher(es: Cluster) -> Iterator[Blocking]:
    client = Blocking(es.tcp_addresses[0])
    yield client
    client.close()


@contextlib.contextmanager
def fuzz_connection(es: Cluster) -> Iterator[Blocking]:
    client = Blocking(es.tcp_addresses[0])
    try:
        yield client
    finally:
        client.close()


credentials = st.one_of(
    st.none(),
    st.just(ADMIN),
    st.builds(Credentials, st.text(max_size=20), st.text(max_size=20)),
)
frames = st.builds(
    Frame,
    command=st.one_of(st.sampled_from(sorted(KNOWN)), st.integers(0, 255)),
    correlation_id=st.uuids(),
    payload=st.binary(max_size=600),
    credentials=credentials,
    flags=st.sampled_from([0, 0x02, 0x80]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=5))
def test_random_bytes_never_disturb_another_connection(
    es: Cluster, watcher: Blocking, chunks: list[bytes]
) -> None:
    with fuzz_connection(es) as fuzzed:
        for chunk in chunks:
            fuzzed.send(chunk)
        watcher.ping()
    watcher.ping()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sent=st.lists(frames, min_size=1, max_size=5))
def test_well_framed_random_requests_never_end_the_connection(
    es: Cluster, watcher: Blocking, sent: list[Frame]
) -> None:
    with fuzz_connection(es) as fuzzed:
        fuzzed.send(b"".join(encode_frame(frame) for frame in sent))
        fuzzed.ping()  # every frame was answered or ignored, and the connection still serves
    watcher.ping()

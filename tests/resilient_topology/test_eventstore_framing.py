"""EventStore TCP framing: layout, reassembly, limits, and the generated messages loading."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_topology.errors import ConfigurationError, RemoteProtocolError
from resilient_topology.eventstore.framing import (
    Credentials,
    Frame,
    FrameDecoder,
    FrameTooLarge,
    InvalidCredentials,
    MalformedFrame,
    TcpCommand,
    encode_frame,
)
from resilient_topology.eventstore.proto import messages_pb2 as messages

ID = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")


def test_heartbeat_has_the_captured_layout() -> None:
    wire = encode_frame(Frame(TcpCommand.HeartbeatRequest, ID))
    assert wire[:4] == b"\x12\x00\x00\x00"  # 18 bytes follow
    assert wire[4:6] == b"\x01\x00"
    assert wire[6:] == ID.bytes_le  # .NET GUID byte order
    assert len(wire) == 22


def test_authenticated_ping_length_and_auth_block() -> None:
    frame = Frame(TcpCommand.Ping, ID, credentials=Credentials("username", "password"))
    wire = encode_frame(frame)
    assert int.from_bytes(wire[:4], "little") == 36
    assert wire[5] == 0x01
    assert wire[22:] == b"\x08username\x08password"
    (decoded,) = FrameDecoder().feed(wire)
    assert decoded.credentials == Credentials("username", "password")
    assert decoded.payload == b""


def test_credentials_are_checked_before_anything_is_sent() -> None:
    with pytest.raises(InvalidCredentials):
        Credentials("u" * 256, "p")
    with pytest.raises(InvalidCredentials):
        Credentials("user", "é" * 128)  # 256 bytes as UTF-8
    assert isinstance(InvalidCredentials("x"), ValueError)
    assert "secret" not in repr(Credentials("user", "secret"))
    assert "secret" not in repr(Frame(1, ID, credentials=Credentials("user", "secret")))


def test_split_and_joined_frames() -> None:
    frames = [Frame(TcpCommand.Ping, uuid.uuid4(), b"x" * n) for n in (0, 1, 300)]
    wire = b"".join(encode_frame(f) for f in frames)
    decoder = FrameDecoder()
    out: list[Frame] = []
    for byte in wire:  # one byte at a time
        out += decoder.feed(bytes([byte]))
    assert out == [Frame(f.command, f.correlation_id, f.payload, None, 0) for f in frames]
    assert decoder.buffered == 0
    assert FrameDecoder().feed(wire) == out  # all at once


def test_unknown_command_bytes_still_decode() -> None:
    (frame,) = FrameDecoder().feed(encode_frame(Frame(0x7E, ID, b"?")))
    assert frame.command == 0x7E
    assert "0x7E" in repr(frame)


def test_oversize_frame_fails_on_its_header_alone() -> None:
    decoder = FrameDecoder(max_frame_size=1024)
    with pytest.raises(FrameTooLarge) as caught:
        decoder.feed((1025).to_bytes(4, "little"))  # nothing else arrived yet
    assert (caught.value.length, caught.value.limit) == (1025, 1024)
    assert isinstance(caught.value, RemoteProtocolError)
    with pytest.raises(FrameTooLarge):  # the stream stays failed
        decoder.feed(b"")


@pytest.mark.parametrize(
    "wire",
    [
        (17).to_bytes(4, "little") + b"\x03" * 17,  # under the minimum
        (19).to_bytes(4, "little") + b"\x03\x01" + ID.bytes_le + b"\x05",  # login overruns
        (20).to_bytes(4, "little") + b"\x03\x01" + ID.bytes_le + b"\x01a",  # no password length
        (22).to_bytes(4, "little") + b"\x03\x01" + ID.bytes_le + b"\x01\xff\x01a",  # not UTF-8
    ],
)
def test_malformed_frames_are_refused(wire: bytes) -> None:
    with pytest.raises(MalformedFrame):
        FrameDecoder().feed(wire)


def test_bad_limits_and_commands_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        FrameDecoder(max_frame_size=10)
    with pytest.raises(ConfigurationError):
        encode_frame(Frame(256, ID))


@given(
    command=st.integers(0, 255),
    payload=st.binary(max_size=2000),
    user=st.none() | st.tuples(st.text(max_size=40), st.text(max_size=40)),
    cuts=st.lists(st.integers(0, 3000), max_size=5),
)
def test_round_trip_through_any_split(
    command: int, payload: bytes, user: tuple[str, str] | None, cuts: list[int]
) -> None:
    credentials = None
    if user is not None and all(len(part.encode()) <= 255 for part in user):
        credentials = Credentials(*user)
    frame = Frame(command, uuid.uuid4(), payload, credentials)
    wire = encode_frame(frame) * 2
    decoder = FrameDecoder()
    out: list[Frame] = []
    start = 0
    for cut in sorted(c % (len(wire) + 1) for c in cuts):
        out += decoder.feed(wire[start:cut])
        start = max(start, cut)
    out += decoder.feed(wire[start:])
    flags = 1 if credentials else 0
    assert out == [Frame(command, frame.correlation_id, payload, credentials, flags)] * 2


def test_generated_messages_load_and_fill_required_fields() -> None:
    write = messages.WriteEvents(event_stream_id="s", expected_version=-2, require_master=False)
    write.events.add(
        event_id=ID.bytes_le,
        event_type="t",
        data_content_type=1,
        metadata_content_type=0,
        data=b"{}",
    )
    parsed = messages.WriteEvents.FromString(write.SerializeToString())
    assert parsed.expected_version == -2
    assert parsed.events[0].event_id == ID.bytes_le
    with pytest.raises(Exception, match="required"):
        messages.WriteEvents(event_stream_id="s").SerializeToString()

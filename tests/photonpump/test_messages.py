"""photonpump.messages: encoding rules, credentials (R13), events (R18), slices (R11, R12)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

import pytest
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from photonpump import messages
from photonpump.exceptions import PayloadUnreadable
from photonpump.messages import (
    AllStreamSlice,
    Beginning,
    ContentType,
    Credential,
    End,
    Event,
    EventRecord,
    ExpectedVersion,
    MasterInfo,
    NewEvent,
    NewEventData,
    OperationResult,
    Position,
    StreamDirection,
    StreamSlice,
    WriteResult,
    encode_payload,
    new_event_message,
)

from resilient_topology.errors import ConfigurationError
from resilient_topology.eventstore import framing
from resilient_topology.eventstore.proto import messages_pb2 as pb

# A UUID whose .NET byte order differs from its RFC order, so a mix-up shows.
EVENT_ID = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")
LINK_ID = uuid.UUID("ffeeddcc-bbaa-9988-7766-554433221100")
CREATED_MS = 1_700_000_000_123  # 2023-11-14T22:13:20.123Z


def record(
    stream: str = "ponies",
    number: int = 7,
    event_id: uuid.UUID = EVENT_ID,
    type: str = "PonyJumped",
    data: bytes = b'{"Pony": "Derpy"}',
    created_epoch: int | None = CREATED_MS,
) -> pb.EventRecord:
    message = pb.EventRecord(
        event_stream_id=stream,
        event_number=number,
        event_id=event_id.bytes_le,
        event_type=type,
        data_content_type=1,
        metadata_content_type=0,
        data=data,
        metadata=b"meta",
    )
    if created_epoch is not None:
        message.created_epoch = created_epoch
    return message


def link_record() -> pb.EventRecord:
    return record(stream="$ce-ponies", number=42, event_id=LINK_ID, type="$>", data=b"7@ponies")


# --- NewEvent and its encoding -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "content_type", "encoded"),
    [
        ({"Pony": "Derpy", "Height": 10}, ContentType.Json, b'{"Pony": "Derpy", "Height": 10}'),
        ([1, 2], ContentType.Json, b"[1, 2]"),
        ('{"already": "json"}', ContentType.Json, b'{"already": "json"}'),
        ("h\u00e9", ContentType.Json, "h\u00e9".encode()),
        ("", ContentType.Json, b""),  # a str is JSON text even when empty, as in the original
        (b"\x00\x01", ContentType.Binary, b"\x00\x01"),
        (bytearray(b"ab"), ContentType.Binary, b"ab"),
        (b"", ContentType.Binary, b""),
        (None, ContentType.Binary, b""),
        ({}, ContentType.Binary, b""),
        (0, ContentType.Binary, b""),
    ],
)
def test_encode_payload_rules(value: object, content_type: ContentType, encoded: bytes) -> None:
    assert encode_payload(value) == (content_type, encoded)


def test_new_event_keeps_values_and_encodes_them_on_the_wire() -> None:
    event = NewEvent("PonyJumped", EVENT_ID, {"a": 1}, {"source": "test"})
    assert event == NewEventData(EVENT_ID, "PonyJumped", {"a": 1}, {"source": "test"})
    proto = new_event_message(event)
    assert uuid.UUID(bytes_le=proto.event_id) == EVENT_ID
    assert proto.event_id == EVENT_ID.bytes_le != EVENT_ID.bytes
    assert proto.event_type == "PonyJumped"
    assert (proto.data_content_type, proto.data) == (ContentType.Json, b'{"a": 1}')
    assert (proto.metadata_content_type, proto.metadata) == (
        ContentType.Json,
        b'{"source": "test"}',
    )
    # Every required field is set, so the message serializes and parses back unchanged.
    assert pb.NewEvent.FromString(proto.SerializeToString()) == proto


@pytest.mark.parametrize(
    ("metadata", "content_type", "encoded"),
    [
        (None, ContentType.Binary, b""),
        ({}, ContentType.Binary, b""),
        ({"k": "v"}, ContentType.Json, b'{"k": "v"}'),
        ('{"k": "v"}', ContentType.Json, b'{"k": "v"}'),
        (b"raw", ContentType.Binary, b"raw"),
    ],
)
def test_metadata_follows_the_data_rules(
    metadata: object, content_type: ContentType, encoded: bytes
) -> None:
    proto = new_event_message(NewEvent("t", metadata=metadata))
    assert (proto.metadata_content_type, proto.metadata) == (content_type, encoded)


def test_new_event_without_data_is_empty_binary() -> None:
    proto = new_event_message(NewEvent("tick"))
    assert (proto.data_content_type, proto.data) == (ContentType.Binary, b"")


def test_new_event_ids_default_to_fresh_uuid4() -> None:
    first, second = NewEvent("t"), NewEvent("t")
    assert first.id != second.id
    assert first.id.version == 4


def test_new_event_accepts_a_uuid_string() -> None:
    assert NewEvent("t", id=str(EVENT_ID)).id == EVENT_ID


def test_new_event_accepts_body_as_the_seed_readme_does() -> None:
    event = NewEvent("pony.jumped", body={"name": "Applejack"})
    assert event.data == {"name": "Applejack"}
    assert new_event_message(event).data == b'{"name": "Applejack"}'


def test_new_event_rejects_both_data_and_body() -> None:
    with pytest.raises(TypeError, match="data or body"):
        NewEvent("t", data={"a": 1}, body={"b": 2})


def test_unencodable_data_fails_when_encoded() -> None:
    with pytest.raises(TypeError):
        new_event_message(NewEvent("t", data={"when": object()}))


def test_new_event_data_is_a_tuple_in_the_original_order() -> None:
    event_id, type_, data, metadata = NewEvent("t", EVENT_ID, "d", "m")
    assert (event_id, type_, data, metadata) == (EVENT_ID, "t", "d", "m")


# --- Credential (R13) ------------------------------------------------------------------------


def test_credential_auth_block_layout() -> None:
    cred = Credential("admin", "changeit")
    assert cred.bytes == b"\x05admin\x08changeit"
    assert cred.length == len(cred.bytes) == 15


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("admin", "changeit"),
        ("", ""),
        ("\u00e9" * 127 + "a", "p" * 255),
        ("\u7528\u6237", "\u5bc6"),
    ],
)
def test_credential_round_trips_through_its_bytes(username: str, password: str) -> None:
    cred = Credential(username, password)
    parsed = Credential.from_bytes(cred.bytes)
    assert (parsed.username, parsed.password) == (username, password)
    assert isinstance(parsed, Credential)


@pytest.mark.parametrize(
    ("username", "password"),
    [("a" * 256, "p"), ("u", "p" * 256), ("\u00e9" * 128, "p")],  # 256 bytes, even as 128 chars
)
def test_credential_over_255_utf8_bytes_is_rejected(username: str, password: str) -> None:
    with pytest.raises(framing.InvalidCredentials) as info:
        Credential(username, password)
    assert isinstance(info.value, ConfigurationError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "block", [b"", b"\x05adm", b"\x05admin", b"\x05admin\x08chan", b"\x01a\x01b!", b"\x01\xff\x00"]
)
def test_credential_from_bytes_rejects_malformed_blocks(block: bytes) -> None:
    with pytest.raises(framing.MalformedFrame):
        Credential.from_bytes(block)


def test_credential_repr_hides_the_password() -> None:
    text = repr(Credential("admin", "s3cret-value"))
    assert "s3cret-value" not in text
    assert "admin" in text


def test_credential_is_a_framing_credentials_and_survives_a_frame() -> None:
    cred = Credential("admin", "changeit")
    assert cred == framing.Credentials("admin", "changeit") == cred
    assert hash(cred) == hash(framing.Credentials("admin", "changeit"))
    assert cred.to_credentials() == framing.Credentials("admin", "changeit")
    assert type(cred.to_credentials()) is framing.Credentials
    frame = framing.Frame(framing.TcpCommand.Ping, EVENT_ID, credentials=cred)
    (decoded,) = framing.FrameDecoder().feed(framing.encode_frame(frame))
    assert decoded.credentials == cred


# --- Events (R18) ----------------------------------------------------------------------------


def expected_local(ms: int) -> datetime:
    """Independent computation: the UTC instant shown as naive local time."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone().replace(tzinfo=None)


def test_event_from_indexed_event() -> None:
    event = Event.from_indexed(pb.ResolvedIndexedEvent(event=record()))
    assert event.id == EVENT_ID
    assert (event.stream, event.type, event.event_number) == ("ponies", "PonyJumped", 7)
    assert (event.data, event.metadata) == (b'{"Pony": "Derpy"}', b"meta")
    assert event.created == expected_local(CREATED_MS)
    assert event.created is not None
    assert event.created.tzinfo is None
    assert event.created.microsecond == 123_000
    assert event.json() == {"Pony": "Derpy"}
    assert event.link is None
    assert event.received_event is event.event
    assert event.position is None  # stream reads carry no position


def test_event_with_a_link_reports_the_link_as_received() -> None:
    message = pb.ResolvedIndexedEvent(event=record(), link=link_record())
    event = Event.from_indexed(message)
    assert event.link is not None
    assert event.received_event is event.link
    assert event.received_event.id == LINK_ID
    assert event.event_number == 42  # the link's number: the one to resume from
    # The event's own attributes still describe the event, not the link.
    assert (event.stream, event.id, event.type) == ("ponies", EVENT_ID, "PonyJumped")
    assert event.event.event_number == 7
    assert event.json() == {"Pony": "Derpy"}


def test_event_from_resolved_event_has_its_position() -> None:
    message = pb.ResolvedEvent(event=record(), commit_position=1200, prepare_position=1100)
    event = Event.from_resolved(message)
    assert event.position == Position(1200, 1100)
    assert (event.position.commit, event.position.prepare) == (1200, 1100)


def test_persistent_subscription_event_has_no_fake_position() -> None:
    appeared = pb.PersistentSubscriptionStreamEventAppeared(
        event=pb.ResolvedIndexedEvent(event=record(), link=link_record())
    )
    parsed = pb.PersistentSubscriptionStreamEventAppeared.FromString(appeared.SerializeToString())
    event = Event.from_persistent(parsed)
    assert event.position is None
    assert event.id == EVENT_ID
    assert event.received_event.id == LINK_ID  # the id a persistent ack must carry


def test_unresolved_link_yields_the_link_record() -> None:
    message = pb.ResolvedEvent(link=link_record(), commit_position=5, prepare_position=4)
    event = Event.from_resolved(message)
    assert event.id == LINK_ID
    assert event.link is None
    assert event.position == Position(5, 4)


def test_event_without_created_epoch_has_no_created_time() -> None:
    event = Event.from_indexed(pb.ResolvedIndexedEvent(event=record(created_epoch=None)))
    assert event.created is None


@pytest.mark.parametrize("data", [b"not json", b"\xff\xfe", b""])
def test_json_of_non_json_data_raises_payload_unreadable(data: bytes) -> None:
    event = Event.from_indexed(pb.ResolvedIndexedEvent(event=record(data=data)))
    with pytest.raises(PayloadUnreadable) as info:
        event.json()
    assert isinstance(info.value, ValueError)
    assert info.value.payload == data
    assert isinstance(info.value.__cause__, ValueError)


def test_event_record_keeps_the_original_field_order() -> None:
    rec = EventRecord.from_message(record())
    stream, event_id, number, type_, data, metadata, created = rec
    assert (stream, event_id, number, type_) == ("ponies", EVENT_ID, 7, "PonyJumped")
    assert (data, metadata, created) == (b'{"Pony": "Derpy"}', b"meta", expected_local(CREATED_MS))
    assert rec.json() == {"Pony": "Derpy"}


def test_event_repr_names_number_stream_and_type() -> None:
    text = repr(Event.from_indexed(pb.ResolvedIndexedEvent(event=record())))
    assert "7@ponies:PonyJumped" in text


# --- Slices (R11, R12) -----------------------------------------------------------------------


def test_stream_slice_from_reply() -> None:
    reply = pb.ReadStreamEventsCompleted(
        events=[
            pb.ResolvedIndexedEvent(event=record(number=3)),
            pb.ResolvedIndexedEvent(event=record(number=4)),
        ],
        result=pb.ReadStreamEventsCompleted.Success,
        next_event_number=5,
        last_event_number=9,
        is_end_of_stream=False,
        last_commit_position=777,
    )
    page = StreamSlice.from_message(reply)
    assert [e.event_number for e in page] == [3, 4]
    assert page.events is page
    assert isinstance(page, list)
    assert (page.next_event_number, page.last_event_number) == (5, 9)
    assert (page.prepare_position, page.commit_position) == (None, 777)
    assert page.is_end_of_stream is False
    assert all(e.position is None for e in page)


def test_not_modified_stream_page_is_an_empty_slice() -> None:
    reply = pb.ReadStreamEventsCompleted(
        result=pb.ReadStreamEventsCompleted.NotModified,
        next_event_number=10,
        last_event_number=9,
        is_end_of_stream=True,
        last_commit_position=0,
    )
    page = StreamSlice.from_message(reply)
    assert list(page) == []
    assert (page.next_event_number, page.is_end_of_stream) == (10, True)


def test_all_stream_slice_has_start_and_next_in_the_right_fields() -> None:
    reply = pb.ReadAllEventsCompleted(
        commit_position=100,
        prepare_position=90,
        events=[pb.ResolvedEvent(event=record(), commit_position=150, prepare_position=140)],
        next_commit_position=200,
        next_prepare_position=190,
    )
    page = AllStreamSlice.from_message(reply)
    assert page.start_position == Position(100, 90)  # where this page was read from
    assert page.next_position == Position(200, 190)  # where the next page starts
    assert [e.position for e in page] == [Position(150, 140)]
    assert page.events is page


def test_all_stream_slice_positional_constructor_matches_the_original() -> None:
    page = AllStreamSlice([], Position(1, 1), Position(2, 2))
    assert (page.start_position, page.next_position) == (Position(1, 1), Position(2, 2))


# --- Enums, constants and positions ----------------------------------------------------------


def test_expected_version_values() -> None:
    assert {v.name: v.value for v in ExpectedVersion} == {
        "Any": -2,
        "StreamMustNotExist": -1,
        "StreamMustBeEmpty": 0,
        "StreamMustExist": -4,
    }
    assert ExpectedVersion(-2) is ExpectedVersion.Any


def test_stream_direction_has_the_readme_aliases() -> None:
    # mypy does not model enum aliases, so look them up by name as a user's code resolves them.
    assert StreamDirection["forward"] is StreamDirection.Forward
    assert StreamDirection["backward"] is StreamDirection.Backward
    assert (StreamDirection.Forward.value, StreamDirection.Backward.value) == (0, 1)
    assert [d.name for d in StreamDirection] == ["Forward", "Backward"]


def test_constants() -> None:
    assert (ContentType.Json, ContentType.Binary) == (1, 0)
    assert (messages.OperationFlags.Empty, messages.OperationFlags.Authenticated) == (0, 1)
    assert messages.ROUND_ROBIN == "RoundRobin"
    assert messages.PINNED == "Pinned"
    assert messages.DISPATCH_TO_SINGLE == "DispatchToSingle"
    assert messages.TcpCommand is framing.TcpCommand


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (messages.OperationResult, pb.OperationResult),
        (messages.ReadEventResult, pb.ReadEventCompleted.ReadEventResult),
        (messages.ReadStreamResult, pb.ReadStreamEventsCompleted.ReadStreamResult),
        (messages.ReadAllResult, pb.ReadAllEventsCompleted.ReadAllResult),
        (
            messages.SubscriptionResult,
            pb.CreatePersistentSubscriptionCompleted.CreatePersistentSubscriptionResult,
        ),
        (messages.SubscriptionDropReason, pb.SubscriptionDropped.SubscriptionDropReason),
        (messages.NakAction, pb.PersistentSubscriptionNakEvents.NakAction),
        (messages.NotHandledReason, pb.NotHandled.NotHandledReason),
    ],
)
def test_enums_match_the_protocol(ours: type[IntEnum], theirs: EnumTypeWrapper) -> None:
    assert {m.name: m.value for m in ours} == dict(theirs.items())


def test_nak_action_values() -> None:
    assert [(a.name, a.value) for a in messages.NakAction] == [
        ("Unknown", 0),
        ("Park", 1),
        ("Retry", 2),
        ("Skip", 3),
        ("Stop", 4),
    ]


def test_position_ordering_and_hashing() -> None:
    assert Position(1, 5) < Position(2, 0) < Position(2, 1)
    assert sorted([Position(3, 3), Beginning, Position(1, 0)]) == [
        Beginning,
        Position(1, 0),
        Position(3, 3),
    ]
    assert len({Position(1, 1), Position(1, 1), Position(1, 2)}) == 2
    assert (Beginning, End) == (Position(0, 0), Position(-1, -1))


def test_position_for_direction() -> None:
    assert Position.for_direction(StreamDirection.Forward, None) == Position(0, 0)
    assert Position.for_direction(StreamDirection.Backward, None) == Position(-1, -1)
    assert Position.for_direction(StreamDirection.Backward, Position(7, 6)) == Position(7, 6)


# --- Write results and master info -----------------------------------------------------------


def test_write_result_from_reply() -> None:
    reply = pb.WriteEventsCompleted(
        result=pb.Success,
        first_event_number=3,
        last_event_number=5,
        prepare_position=800,
        commit_position=810,
    )
    result = WriteResult.from_message(reply)
    assert result.result is OperationResult.Success
    assert (result.first_event_number, result.last_event_number) == (3, 5)
    assert (result.prepare_position, result.commit_position) == (800, 810)
    assert result.message == ""
    assert result.succeeded


def test_write_result_keeps_a_failure_and_missing_positions() -> None:
    reply = pb.WriteEventsCompleted(
        result=pb.WrongExpectedVersion,
        message="expected 3",
        first_event_number=-1,
        last_event_number=-1,
    )
    result = WriteResult.from_message(reply)
    assert result.result is OperationResult.WrongExpectedVersion
    assert (result.prepare_position, result.commit_position) == (None, None)
    assert result.message == "expected 3"
    assert not result.succeeded


def test_master_info_from_not_handled_additional_info() -> None:
    info = pb.NotHandled.MasterInfo(
        external_tcp_address="10.0.0.1",
        external_tcp_port=1113,
        external_http_address="10.0.0.1",
        external_http_port=2113,
        external_secure_tcp_address="10.0.0.1",
        external_secure_tcp_port=1115,
    )
    master = MasterInfo.from_bytes(info.SerializeToString())
    assert master == MasterInfo(("10.0.0.1", 1113), ("10.0.0.1", 2113), ("10.0.0.1", 1115))


def test_master_info_without_secure_port() -> None:
    info = pb.NotHandled.MasterInfo(
        external_tcp_address="node2",
        external_tcp_port=1113,
        external_http_address="node2",
        external_http_port=2113,
        external_secure_tcp_port=0,
    )
    assert MasterInfo.from_message(info).secure_tcp is None


# --- Public names ----------------------------------------------------------------------------


def _isort_key(name: str) -> tuple[bool, bool, str]:
    return (not name.isupper(), not name[0].isupper(), name)


def test_all_is_complete_resolvable_and_sorted() -> None:
    public: list[str] = list(messages.__all__)
    assert len(set(public)) == len(public)
    assert public == sorted(public, key=_isort_key)
    for name in public:
        assert getattr(messages, name) is not None
    defined: Any = {
        name
        for name, value in vars(messages).items()
        if not name.startswith("_")
        and getattr(value, "__module__", None) == messages.__name__
        and (isinstance(value, type) or callable(value))
    }
    assert defined <= set(public)
    for name in ("NewEvent", "Event", "StreamSlice", "ExpectedVersion", "Credential", "End"):
        assert name in public

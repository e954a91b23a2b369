"""photonpump's data types: enums, credentials, new and recorded events, slices, write results.

Pure data, no I/O. Names, values and positional shapes follow photon-pump 0.9.5 so existing
code keeps working; where the original was wrong this module is not (the fixes are noted where
they apply). Event ids travel in .NET GUID byte order, which is ``UUID.bytes_le``.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any, NamedTuple, Self
from uuid import UUID, uuid4

from resilient_topology.eventstore.framing import Credentials, MalformedFrame, TcpCommand
from resilient_topology.eventstore.proto import messages_pb2

from .exceptions import PayloadUnreadable

__all__ = [
    "DISPATCH_TO_SINGLE",
    "PINNED",
    "ROUND_ROBIN",
    "AllStreamSlice",
    "Beginning",
    "ContentType",
    "Credential",
    "End",
    "Event",
    "EventRecord",
    "ExpectedVersion",
    "MasterInfo",
    "NakAction",
    "NewEvent",
    "NewEventData",
    "NotHandledReason",
    "OperationFlags",
    "OperationResult",
    "Position",
    "ReadAllResult",
    "ReadEventResult",
    "ReadStreamResult",
    "StreamDirection",
    "StreamSlice",
    "SubscriptionDropReason",
    "SubscriptionResult",
    "TcpCommand",
    "WriteResult",
    "add_new_event",
    "encode_payload",
    "new_event_message",
]

# Named consumer strategies of persistent subscriptions. The original spelled the value of
# DISPATCH_TO_SINGLE "DisptchToSingle", which servers reject; the name stays, the value is fixed.
ROUND_ROBIN = "RoundRobin"
DISPATCH_TO_SINGLE = "DispatchToSingle"
PINNED = "Pinned"


class StreamDirection(IntEnum):
    """Read direction. ``forward``/``backward`` are aliases the original README uses."""

    Forward = 0
    Backward = 1
    forward = 0
    backward = 1


class ContentType(IntEnum):
    """Content type of event data and metadata, as sent in ``NewEvent``."""

    Json = 0x01
    Binary = 0x00


class OperationFlags(IntEnum):
    """Frame flags a client may set."""

    Empty = 0x00
    Authenticated = 0x01


class ExpectedVersion(IntEnum):
    """Magic expected versions for optimistic concurrency; any other value is an event number.

    ``StreamMustBeEmpty = 0`` keeps the original's name and value, which follow EventStore 3:
    there 0 means "the stream exists and is empty". From v4/v5 on, 0 simply means "the last event
    number is 0" (the stream holds exactly one event), and "no stream or empty" is -1
    (``StreamMustNotExist``, the .NET clients' ``NoStream``/``EmptyStream``).
    """

    Any = -2
    StreamMustNotExist = -1
    StreamMustBeEmpty = 0
    StreamMustExist = -4


class OperationResult(IntEnum):
    """Result of a write (``WriteEventsCompleted.result``)."""

    Success = 0
    PrepareTimeout = 1
    CommitTimeout = 2
    ForwardTimeout = 3
    WrongExpectedVersion = 4
    StreamDeleted = 5
    InvalidTransaction = 6
    AccessDenied = 7


class ReadEventResult(IntEnum):
    """Result of a single-event read."""

    Success = 0
    NotFound = 1
    NoStream = 2
    StreamDeleted = 3
    Error = 4
    AccessDenied = 5


class ReadStreamResult(IntEnum):
    """Result of a stream page read; ``NotModified`` is an unchanged, empty page."""

    Success = 0
    NoStream = 1
    StreamDeleted = 2
    NotModified = 3
    Error = 4
    AccessDenied = 5


class ReadAllResult(IntEnum):
    """Result of an ``$all`` page read."""

    Success = 0
    NotModified = 1
    Error = 2
    AccessDenied = 3


class SubscriptionResult(IntEnum):
    """Result of creating a persistent subscription (the original's name for it)."""

    Success = 0
    AlreadyExists = 1
    Fail = 2
    AccessDenied = 3


class SubscriptionDropReason(IntEnum):
    """Why the server dropped a subscription."""

    Unsubscribed = 0
    AccessDenied = 1
    NotFound = 2
    PersistentSubscriptionDeleted = 3
    SubscriberMaxCountReached = 4


class NakAction(IntEnum):
    """What the server should do with a negatively acknowledged persistent-subscription event."""

    Unknown = 0
    Park = 1
    Retry = 2
    Skip = 3
    Stop = 4


class NotHandledReason(IntEnum):
    """Why a node did not handle a request; servers from 20.x call ``NotMaster`` NotLeader."""

    NotReady = 0
    TooBusy = 1
    NotMaster = 2
    IsReadOnly = 3


class Position(NamedTuple):
    """A position in the transaction log (``$all``); ordered as the server orders them."""

    commit: int
    prepare: int

    @classmethod
    def for_direction(cls, direction: StreamDirection, pos: Position | None) -> Position:
        """``pos``, or where a read in ``direction`` starts by default (first or last event)."""
        if pos is not None:
            return pos
        return Beginning if direction == StreamDirection.Forward else End


# The original used opaque sentinels; real positions compare, hash and go on the wire as they are.
Beginning = Position(0, 0)
End = Position(-1, -1)


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Credential(Credentials):
    """A login and password sent with a request; each at most 255 bytes as UTF-8.

    A framing ``Credentials``, so it goes straight into a frame; equal to a ``Credentials`` with
    the same values. The limit is checked on construction (the original overflowed silently).
    """

    def __repr__(self) -> str:  # never print a password
        return f"Credential(username={self.username!r}, password='***')"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Credentials):
            return NotImplemented
        return (self.username, self.password) == (other.username, other.password)

    def __hash__(self) -> int:
        return hash((self.username, self.password))

    @property
    def bytes(self) -> builtins.bytes:
        """The frame's auth block: login length, login, password length, password."""
        return self.encode()

    @property
    def length(self) -> int:
        """Size of the auth block in bytes."""
        return len(self.encode())

    def to_credentials(self) -> Credentials:
        return Credentials(self.username, self.password)

    @classmethod
    def from_bytes(cls, data: builtins.bytes | bytearray | memoryview) -> Self:
        """Parse an auth block as :attr:`bytes` makes it; ``MalformedFrame`` if it is malformed.

        (The original read two-byte lengths here, so it could not read its own output.)
        """
        raw = builtins.bytes(data)
        fields: list[str] = []
        offset = 0
        for name in ("login", "password"):
            if offset >= len(raw):
                raise MalformedFrame(f"auth block ends before the {name} length")
            end = offset + 1 + raw[offset]
            if end > len(raw):
                raise MalformedFrame(f"auth {name} overruns the block")
            try:
                fields.append(raw[offset + 1 : end].decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise MalformedFrame(f"auth {name} is not UTF-8") from exc
            offset = end
        if offset != len(raw):
            raise MalformedFrame(f"{len(raw) - offset} bytes after the auth block")
        return cls(fields[0], fields[1])


def encode_payload(value: object) -> tuple[ContentType, builtins.bytes]:
    """Content type and bytes for event data or metadata, by the original's rules.

    ``str`` is taken as JSON text (UTF-8); bytes-like values are binary; any other truthy value
    is JSON-encoded; a falsy one (None, ``{}``, ``0``) is empty binary.
    """
    if isinstance(value, str):
        return ContentType.Json, value.encode("utf-8")
    if isinstance(value, builtins.bytes | bytearray | memoryview):
        return ContentType.Binary, builtins.bytes(value)
    if value:
        return ContentType.Json, json.dumps(value).encode("utf-8")
    return ContentType.Binary, b""


class NewEventData(NamedTuple):
    """An event to write; ``data`` and ``metadata`` stay as given until :func:`new_event_message`.

    Metadata follows the same rules as data. The original JSON-encoded any truthy metadata, so
    a ``str`` was sent as a quoted JSON string and ``bytes`` failed; here a ``str`` is JSON text
    and ``bytes`` is binary, as for data.
    """

    id: UUID
    type: str
    data: Any
    metadata: Any


def NewEvent(
    type: str,
    id: UUID | str | None = None,
    data: Any = None,
    metadata: Any = None,
    *,
    body: Any = None,
) -> NewEventData:
    """Build an event to write; ``id`` defaults to a fresh uuid4.

    ``body`` is accepted as another name for ``data``: the original README uses it, although the
    original function did not take it (``publish_event`` does). Passing both is an error.
    """
    if body is not None:
        if data is not None:
            raise TypeError("NewEvent() takes data or body, not both")
        data = body
    event_id = uuid4() if id is None else id if isinstance(id, UUID) else UUID(id)
    return NewEventData(event_id, type, data, metadata)


def new_event_message(event: NewEventData) -> messages_pb2.NewEvent:
    """The protobuf ``NewEvent`` for ``event``; ``TypeError`` for values JSON cannot encode."""
    data_type, data = encode_payload(event.data)
    metadata_type, metadata = encode_payload(event.metadata)
    return messages_pb2.NewEvent(
        event_id=event.id.bytes_le,
        event_type=event.type,
        data_content_type=data_type,
        metadata_content_type=metadata_type,
        data=data,
        metadata=metadata,
    )


def add_new_event(events: Any, event: NewEventData) -> None:
    """Append ``event`` to a repeated ``NewEvent`` field in place (no message copied)."""
    data_type, data = encode_payload(event.data)
    metadata_type, metadata = encode_payload(event.metadata)
    events.add(
        event_id=event.id.bytes_le,
        event_type=event.type,
        data_content_type=data_type,
        metadata_content_type=metadata_type,
        data=data,
        metadata=metadata,
    )


def _created(record: messages_pb2.EventRecord) -> datetime | None:
    """Naive local time of ``created_epoch`` (milliseconds), as the original gave it.

    Exact to the millisecond (no float rounding). None when the server did not send it, rather
    than the original's 1970 stand-in.
    """
    if not record.HasField("created_epoch"):
        return None
    seconds, millis = divmod(record.created_epoch, 1000)
    return datetime.fromtimestamp(seconds).replace(microsecond=millis * 1000)


class EventRecord(NamedTuple):
    """One record as stored: an event, or a link to one (the original's field order)."""

    stream: str
    id: UUID
    event_number: int
    type: str
    data: bytes
    metadata: bytes
    created: datetime | None

    @classmethod
    def from_message(cls, record: messages_pb2.EventRecord) -> EventRecord:
        return cls(
            record.event_stream_id,
            UUID(bytes_le=record.event_id),
            record.event_number,
            record.event_type,
            record.data,
            record.metadata,
            _created(record),
        )

    def json(self) -> Any:
        """The data parsed as JSON; ``PayloadUnreadable`` (a ``ValueError``) if it is not JSON."""
        return _parse_json(self.data)


def _parse_json(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise PayloadUnreadable(None, data, exc, f"event data is not JSON: {exc}") from exc


@dataclass(frozen=True, slots=True, repr=False)
class Event:
    """An event as read or received, with the link that led to it when links were resolved.

    ``stream``, ``id``, ``type``, ``data``, ``metadata`` and ``created`` describe the event;
    ``event_number`` is that of :attr:`received_event` (the link when there is one), the number
    to resume from and to checkpoint. ``position`` is set only for ``$all`` reads and volatile or
    catch-up subscription events, which the server sends with one; stream reads and persistent
    subscription events have none (the original gave the latter a fake ``(0, 0)``).
    """

    event: EventRecord
    link: EventRecord | None = None
    position: Position | None = None

    @property
    def received_event(self) -> EventRecord:
        return self.link or self.event

    @property
    def event_number(self) -> int:
        return self.received_event.event_number

    @property
    def stream(self) -> str:
        return self.event.stream

    @property
    def id(self) -> UUID:
        return self.event.id

    @property
    def type(self) -> str:
        return self.event.type

    @property
    def data(self) -> bytes:
        return self.event.data

    @property
    def metadata(self) -> bytes:
        return self.event.metadata

    @property
    def created(self) -> datetime | None:
        return self.event.created

    def json(self) -> Any:
        """The event's data parsed as JSON; ``PayloadUnreadable`` if it is not JSON."""
        return self.event.json()

    def __repr__(self) -> str:
        return f"<Event {self.created}: {self.event_number}@{self.stream}:{self.type}>"

    @classmethod
    def _build(
        cls,
        message: messages_pb2.ResolvedIndexedEvent | messages_pb2.ResolvedEvent,
        position: Position | None,
    ) -> Event:
        link = EventRecord.from_message(message.link) if message.HasField("link") else None
        if not message.HasField("event"):
            # A link whose target is gone: the server sends only the link record.
            if link is None:
                raise ValueError("resolved event carries neither an event nor a link")
            return cls(link, None, position)
        return cls(EventRecord.from_message(message.event), link, position)

    @classmethod
    def from_indexed(cls, message: messages_pb2.ResolvedIndexedEvent) -> Event:
        """From a stream read or ``get_event``: no position."""
        return cls._build(message, None)

    @classmethod
    def from_resolved(cls, message: messages_pb2.ResolvedEvent) -> Event:
        """From an ``$all`` read or a volatile subscription: with the record's position."""
        return cls._build(message, Position(message.commit_position, message.prepare_position))

    @classmethod
    def from_persistent(
        cls, message: messages_pb2.PersistentSubscriptionStreamEventAppeared
    ) -> Event:
        """From a persistent subscription: no position, since the server sends none."""
        return cls._build(message.event, None)


class StreamSlice(list[Event]):
    """One page of a stream read: the events, and where the stream stands.

    ``prepare_position`` is always None (the reply has none, as in the original);
    ``commit_position`` is the reply's ``last_commit_position``.
    """

    def __init__(
        self,
        events: Iterable[Event],
        next_event_number: int,
        last_event_number: int,
        prepare_position: int | None = None,
        commit_position: int | None = None,
        is_end_of_stream: bool = False,
    ) -> None:
        super().__init__(events)
        self.next_event_number = next_event_number
        self.last_event_number = last_event_number
        self.prepare_position = prepare_position
        self.commit_position = commit_position
        self.is_end_of_stream = is_end_of_stream

    @property
    def events(self) -> list[Event]:
        """The slice itself, for code that read ``.events`` in the original."""
        return self

    @classmethod
    def from_message(cls, message: messages_pb2.ReadStreamEventsCompleted) -> StreamSlice:
        """Build from a reply; the caller has already checked ``message.result``."""
        return cls(
            (Event.from_indexed(e) for e in message.events),
            message.next_event_number,
            message.last_event_number,
            None,
            message.last_commit_position,
            message.is_end_of_stream,
        )


class AllStreamSlice(list[Event]):
    """One page of an ``$all`` read.

    ``start_position`` is where this page was read from and ``next_position`` where the next
    page starts (the original swapped the two).
    """

    def __init__(
        self, events: Iterable[Event], position: Position, next_position: Position
    ) -> None:
        super().__init__(events)
        self.start_position = position
        self.next_position = next_position

    @property
    def events(self) -> list[Event]:
        return self

    @classmethod
    def from_message(cls, message: messages_pb2.ReadAllEventsCompleted) -> AllStreamSlice:
        """Build from a reply; the caller has already checked ``message.result``."""
        return cls(
            (Event.from_resolved(e) for e in message.events),
            Position(message.commit_position, message.prepare_position),
            Position(message.next_commit_position, message.next_prepare_position),
        )


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The outcome of a write, with the protobuf reply's attribute names.

    The original returned the raw ``WriteEventsCompleted``; failures other than AccessDenied
    (``WrongExpectedVersion``, ``StreamDeleted``, timeouts) are returned here, not raised.
    Positions are None when the server did not send them (EventStore 3).
    """

    result: OperationResult
    first_event_number: int
    last_event_number: int
    prepare_position: int | None = None
    commit_position: int | None = None
    message: str = ""

    @property
    def succeeded(self) -> bool:
        return self.result == OperationResult.Success

    @classmethod
    def from_message(cls, message: messages_pb2.WriteEventsCompleted) -> WriteResult:
        return cls(
            OperationResult(message.result),
            message.first_event_number,
            message.last_event_number,
            message.prepare_position if message.HasField("prepare_position") else None,
            message.commit_position if message.HasField("commit_position") else None,
            message.message,
        )


@dataclass(frozen=True, slots=True)
class MasterInfo:
    """Where the master is, as a node answering ``NotHandled(NotMaster)`` reports it.

    Endpoints are ``(host, port)``; ``secure_tcp`` is None when the node gave no secure port.
    """

    tcp: tuple[str, int]
    http: tuple[str, int]
    secure_tcp: tuple[str, int] | None = None

    @classmethod
    def from_message(cls, info: messages_pb2.NotHandled.MasterInfo) -> MasterInfo:
        secure = None
        if info.HasField("external_secure_tcp_port") and info.external_secure_tcp_port > 0:
            host = info.external_secure_tcp_address or info.external_tcp_address
            secure = (host, info.external_secure_tcp_port)
        return cls(
            (info.external_tcp_address, info.external_tcp_port),
            (info.external_http_address, info.external_http_port),
            secure,
        )

    @classmethod
    def from_bytes(cls, data: builtins.bytes) -> MasterInfo:
        """Parse ``NotHandled.additional_info``; protobuf's ``DecodeError`` if malformed."""
        info = messages_pb2.NotHandled.MasterInfo()
        info.ParseFromString(data)
        return cls.from_message(info)

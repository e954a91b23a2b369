"""EventStore's TCP framing, sans-I/O: bytes in, frames out, and frames back into bytes.

A frame is ``[u32 LE length][u8 command][u8 flags][16-byte correlation id][auth][payload]``,
where the length counts every byte after itself (at least 18), the correlation id is in .NET
GUID byte order (``UUID.bytes_le``) and the auth block (flag ``0x01``) is a length-prefixed
login and password, each at most 255 UTF-8 bytes. Shared by the simulator and the client so
both read and write the same bytes.

:class:`FrameDecoder` reassembles frames split across reads and splits several frames that
arrive in one; a declared length over ``max_frame_size`` (64 MiB by default, as the server's
framer) or under 18 fails at once, before the body is buffered.
"""

from __future__ import annotations

import enum
import struct
import uuid
from dataclasses import dataclass

from ..errors import ConfigurationError, RemoteProtocolError

__all__ = [
    "AUTHENTICATED",
    "HEADER_SIZE",
    "MAX_FRAME_SIZE",
    "Credentials",
    "Frame",
    "FrameDecoder",
    "FrameTooLarge",
    "InvalidCredentials",
    "MalformedFrame",
    "TcpCommand",
    "encode_frame",
]

AUTHENTICATED = 0x01
TRUSTED_WRITE = 0x02
HEADER_SIZE = 18  # command, flags, correlation id: the smallest legal length
MAX_FRAME_SIZE = 64 * 1024 * 1024
_LENGTH = struct.Struct("<I")


class TcpCommand(enum.IntEnum):
    """Command bytes of the client protocol; frames may carry others (see :attr:`Frame.command`)."""

    HeartbeatRequest = 0x01
    HeartbeatResponse = 0x02
    Ping = 0x03
    Pong = 0x04
    WriteEvents = 0x82
    WriteEventsCompleted = 0x83
    DeleteStream = 0x8A
    DeleteStreamCompleted = 0x8B
    ReadEvent = 0xB0
    ReadEventCompleted = 0xB1
    ReadStreamEventsForward = 0xB2
    ReadStreamEventsForwardCompleted = 0xB3
    ReadStreamEventsBackward = 0xB4
    ReadStreamEventsBackwardCompleted = 0xB5
    ReadAllEventsForward = 0xB6
    ReadAllEventsForwardCompleted = 0xB7
    ReadAllEventsBackward = 0xB8
    ReadAllEventsBackwardCompleted = 0xB9
    SubscribeToStream = 0xC0
    SubscriptionConfirmation = 0xC1
    StreamEventAppeared = 0xC2
    UnsubscribeFromStream = 0xC3
    SubscriptionDropped = 0xC4
    ConnectToPersistentSubscription = 0xC5
    PersistentSubscriptionConfirmation = 0xC6
    PersistentSubscriptionStreamEventAppeared = 0xC7
    CreatePersistentSubscription = 0xC8
    CreatePersistentSubscriptionCompleted = 0xC9
    DeletePersistentSubscription = 0xCA
    DeletePersistentSubscriptionCompleted = 0xCB
    PersistentSubscriptionAckEvents = 0xCC
    PersistentSubscriptionNakEvents = 0xCD
    UpdatePersistentSubscription = 0xCE
    UpdatePersistentSubscriptionCompleted = 0xCF
    BadRequest = 0xF0
    NotHandled = 0xF1
    Authenticate = 0xF2
    Authenticated = 0xF3
    NotAuthenticated = 0xF4
    IdentifyClient = 0xF5
    ClientIdentified = 0xF6


class MalformedFrame(RemoteProtocolError):
    """The bytes are not a frame: a length under 18, or an auth block that overruns the frame."""


class FrameTooLarge(MalformedFrame):
    """A frame declares more bytes than the receiver accepts."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"frame of {length} bytes exceeds the {limit}-byte limit")
        self.length = length
        self.limit = limit


class InvalidCredentials(ConfigurationError):
    """A login or password that cannot be framed (over 255 UTF-8 bytes)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """Per-request credentials, sent in the frame header."""

    username: str
    password: str

    def __post_init__(self) -> None:
        for field, value in (("username", self.username), ("password", self.password)):
            if not isinstance(value, str):
                raise InvalidCredentials(f"{field} must be a string")
            if len(value.encode("utf-8")) > 255:
                raise InvalidCredentials(f"{field} is over 255 bytes as UTF-8")

    def __repr__(self) -> str:  # never print a password
        return f"Credentials(username={self.username!r}, password='***')"

    def encode(self) -> bytes:
        login, password = self.username.encode("utf-8"), self.password.encode("utf-8")
        return bytes([len(login)]) + login + bytes([len(password)]) + password


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame. ``command`` is an ``int``: unknown codes must be representable and skippable."""

    command: int
    correlation_id: uuid.UUID
    payload: bytes = b""
    credentials: Credentials | None = None
    flags: int = 0

    def __repr__(self) -> str:
        try:
            name = TcpCommand(self.command).name
        except ValueError:
            name = f"0x{self.command:02X}"
        user = f", user={self.credentials.username!r}" if self.credentials else ""
        return f"Frame({name}, {self.correlation_id}, {len(self.payload)} bytes{user})"


def encode_frame(frame: Frame) -> bytes:
    """The wire bytes of ``frame``; the auth flag follows ``frame.credentials``."""
    if not 0 <= frame.command <= 0xFF:
        raise ConfigurationError(f"command must be one byte, got {frame.command}")
    flags = frame.flags & ~AUTHENTICATED
    auth = b""
    if frame.credentials is not None:
        flags |= AUTHENTICATED
        auth = frame.credentials.encode()
    body_length = HEADER_SIZE + len(auth) + len(frame.payload)
    return b"".join(
        (
            _LENGTH.pack(body_length),
            bytes((frame.command, flags & 0xFF)),
            frame.correlation_id.bytes_le,
            auth,
            frame.payload,
        )
    )


class FrameDecoder:
    """Incremental decoder: :meth:`feed` bytes as they arrive, get the complete frames back.

    After an error the decoder is unusable (the stream has lost its framing): close the
    connection.
    """

    def __init__(self, max_frame_size: int = MAX_FRAME_SIZE) -> None:
        if max_frame_size < HEADER_SIZE:
            raise ConfigurationError(f"max_frame_size must be at least {HEADER_SIZE}")
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()
        self._failed: MalformedFrame | None = None

    @property
    def buffered(self) -> int:
        """Bytes received and not yet part of a returned frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        if self._failed is not None:
            raise self._failed
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= 4:
            (length,) = _LENGTH.unpack_from(self._buffer)
            if length > self.max_frame_size:
                self._failed = FrameTooLarge(length, self.max_frame_size)
                raise self._failed
            if length < HEADER_SIZE:
                self._failed = MalformedFrame(f"frame length {length} is under {HEADER_SIZE}")
                raise self._failed
            if len(self._buffer) < 4 + length:
                break
            body = bytes(self._buffer[4 : 4 + length])
            del self._buffer[: 4 + length]
            try:
                frames.append(_decode_body(body))
            except MalformedFrame as exc:
                self._failed = exc
                raise
        return frames


def _decode_body(body: bytes) -> Frame:
    command, flags = body[0], body[1]
    correlation_id = uuid.UUID(bytes_le=body[2:18])
    offset = HEADER_SIZE
    credentials = None
    if flags & AUTHENTICATED:
        login, offset = _auth_field(body, offset, "login")
        password, offset = _auth_field(body, offset, "password")
        try:
            credentials = Credentials(login.decode("utf-8"), password.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise MalformedFrame("credentials are not UTF-8") from exc
    return Frame(command, correlation_id, body[offset:], credentials, flags)


def _auth_field(body: bytes, offset: int, name: str) -> tuple[bytes, int]:
    if offset >= len(body):
        raise MalformedFrame(f"auth block ends before the {name} length")
    size = body[offset]
    end = offset + 1 + size
    if end > len(body):
        raise MalformedFrame(f"auth {name} overruns the frame")
    return body[offset + 1 : end], end

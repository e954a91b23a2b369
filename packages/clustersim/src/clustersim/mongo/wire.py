"""The MongoDB wire protocol, server side, as a pure codec: bytes in, requests out, bytes back.

Sans-I/O like h11, so every framing rule is testable byte by byte and fuzzable without a network:
the member's listener feeds what it reads to a :class:`MessageReader`, takes :class:`Request`
values out and writes what :func:`encode_reply` returns. Accepted: OP_MSG, and OP_QUERY on
``<db>.$cmd`` (legacy handshake); never OP_COMPRESSED, since compression is never offered.
Malformed input raises :class:`~clustersim.errors.WireProtocolError`, after which the stream
position is lost: the reader stays failed and the caller closes the connection.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import bson
from bson.codec_options import CodecOptions, DatetimeConversion

from ..errors import WireProtocolError

__all__ = [
    "CHECKSUM_PRESENT", "CODEC_OPTIONS", "EXHAUST_ALLOWED", "HEADER_SIZE", "MAX_MESSAGE_SIZE",
    "MORE_TO_COME", "OP_COMPRESSED", "OP_MSG", "OP_QUERY", "OP_REPLY", "MessageReader", "Request",
    "crc32c", "decode_reply", "encode_legacy_query", "encode_reply", "encode_request",
]  # fmt: skip

OP_REPLY = 1
OP_QUERY = 2004
OP_COMPRESSED = 2012
OP_MSG = 2013

CHECKSUM_PRESENT = 1 << 0
MORE_TO_COME = 1 << 1
EXHAUST_ALLOWED = 1 << 16
#: Bits 0-15 are "required": a receiver must reject any it does not know.
_REQUIRED_FLAG_BITS = 0xFFFF
_KNOWN_REQUIRED_FLAGS = CHECKSUM_PRESENT | MORE_TO_COME
#: OP_REPLY responseFlags: mongod always sets AwaitCapable (bit 3).
_AWAIT_CAPABLE = 1 << 3

MAX_MESSAGE_SIZE = 48_000_000
HEADER_SIZE = 16

#: tz-aware datetimes to match the simulator's clocks; out-of-range dates decode as DatetimeMS
#: instead of failing; UUIDs stay ``Binary`` so they go back to the driver byte for byte.
CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(
    document_class=dict, tz_aware=True, datetime_conversion=DatetimeConversion.DATETIME_AUTO
)

_HEADER = struct.Struct("<iiii")
_INT32 = struct.Struct("<i")
_UINT32 = struct.Struct("<I")
_QUERY_TAIL = struct.Struct("<ii")  # numberToSkip, numberToReturn
_REPLY_PREFIX = struct.Struct("<iqii")  # responseFlags, cursorID, startingFrom, numberReturned
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Request:
    """One command a client sent, already unwrapped from whichever opcode carried it."""

    request_id: int
    op_code: int
    #: OP_MSG flag bits, or the OP_QUERY flags for a legacy request.
    flags: int
    #: The kind-0 body (with ``$db``), or the OP_QUERY document with ``$query`` unwrapped.
    command: dict[str, Any]
    #: Kind-1 document sequences by identifier (``documents``, ``updates``, ...).
    sequences: Mapping[str, list[dict[str, Any]]]
    database: str
    #: True for OP_QUERY: the reply must then be an OP_REPLY.
    legacy: bool = False

    @property
    def command_name(self) -> str:
        """The first key, lower-cased: drivers mix ``isMaster``/``ismaster`` and so on."""
        return next(iter(self.command), "").lower()

    @property
    def more_to_come(self) -> bool:
        """The client expects no reply (a w:0 write)."""
        return not self.legacy and bool(self.flags & MORE_TO_COME)

    @property
    def exhaust_allowed(self) -> bool:
        """The client accepts a stream of ``moreToCome`` replies (streaming hello)."""
        return not self.legacy and bool(self.flags & EXHAUST_ALLOWED)

    def merged_command(self) -> dict[str, Any]:
        """The body with each sequence put back under its identifier, as command code expects."""
        merged = dict(self.command)
        for identifier, documents in self.sequences.items():
            merged[identifier] = list(documents)
        return merged


class MessageReader:
    """Incremental parser: :meth:`feed` bytes as they arrive, drain :meth:`next_request`."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._error: WireProtocolError | None = None

    def feed(self, data: bytes) -> None:
        """Buffer ``data``; a bad header is reported at once so a liar cannot make us hoard."""
        if self._error is not None:
            raise self._error
        self._buffer += data
        self._guard(self._check_header)

    def next_request(self) -> Request | None:
        """The next complete request, or None while more bytes are needed."""
        if self._error is not None:
            raise self._error
        return self._guard(self._next)

    def _next(self) -> Request | None:
        length = self._check_header()
        if length is None or len(self._buffer) < length:
            return None
        message = bytes(self._buffer[:length])
        del self._buffer[:length]
        return _parse_request(message)

    def _check_header(self) -> int | None:
        if len(self._buffer) < 4:
            return None
        (length,) = _INT32.unpack_from(self._buffer)
        if not HEADER_SIZE <= length <= MAX_MESSAGE_SIZE:
            raise WireProtocolError(
                f"message length {length} is outside [{HEADER_SIZE}, {MAX_MESSAGE_SIZE}]"
            )
        op_code = _HEADER.unpack_from(self._buffer)[3] if len(self._buffer) >= HEADER_SIZE else None
        if op_code == OP_COMPRESSED:
            raise WireProtocolError("OP_COMPRESSED received but compression was not negotiated")
        if op_code not in (None, OP_MSG, OP_QUERY):
            raise WireProtocolError(f"unsupported opcode {op_code}")
        return int(length)

    def _guard(self, step: Callable[[], _T]) -> _T:
        try:
            return step()
        except WireProtocolError as exc:
            self._error = exc
            self._buffer.clear()
            raise


def _parse_request(message: bytes) -> Request:
    _, request_id, _, op_code = _HEADER.unpack_from(message)
    if op_code == OP_QUERY:
        return _parse_query(message, request_id)
    flags, body, sequences = _parse_msg(message)
    database = body.get("$db")
    if not isinstance(database, str) or not database:
        raise WireProtocolError("OP_MSG body has no $db string")
    return Request(request_id, op_code, flags, body, sequences, database)


def _parse_msg(message: bytes) -> tuple[int, dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """Split an OP_MSG into flags, the one kind-0 body and the kind-1 sequences."""
    if len(message) < HEADER_SIZE + 4:
        raise WireProtocolError("OP_MSG too short for its flag bits")
    (flags,) = _UINT32.unpack_from(message, HEADER_SIZE)
    unknown = flags & _REQUIRED_FLAG_BITS & ~_KNOWN_REQUIRED_FLAGS
    if unknown:
        raise WireProtocolError(f"OP_MSG has unknown required flag bits {unknown:#x}")
    end = len(message)
    if flags & CHECKSUM_PRESENT:
        end -= 4
        if end < HEADER_SIZE + 4:
            raise WireProtocolError("OP_MSG has checksumPresent but no room for the checksum")
        (expected,) = _UINT32.unpack_from(message, end)
        if crc32c(message[:end]) != expected:
            raise WireProtocolError("OP_MSG checksum does not match its contents")
    body: dict[str, Any] | None = None
    sequences: dict[str, list[dict[str, Any]]] = {}
    pos = HEADER_SIZE + 4
    while pos < end:
        kind = message[pos]
        pos += 1
        if kind == 0:
            if body is not None:
                raise WireProtocolError("OP_MSG has more than one kind-0 section")
            body, pos = _read_document(message, pos, end)
        elif kind == 1:
            identifier, documents, pos = _read_sequence(message, pos, end)
            if identifier in sequences:
                raise WireProtocolError(f"OP_MSG repeats document sequence {identifier!r}")
            sequences[identifier] = documents
        else:
            raise WireProtocolError(f"OP_MSG section kind {kind} is not 0 or 1")
    if body is None:
        raise WireProtocolError("OP_MSG has no kind-0 section")
    if not body:
        raise WireProtocolError("OP_MSG command document is empty")
    for identifier in sequences:
        if identifier in body:
            raise WireProtocolError(f"{identifier!r} is both in the body and a document sequence")
    return flags, body, sequences


def _read_sequence(message: bytes, pos: int, end: int) -> tuple[str, list[dict[str, Any]], int]:
    size = _read_int32(message, pos, end, "document sequence size")
    stop = pos + size
    if size < 5 or stop > end:
        raise WireProtocolError(f"document sequence size {size} overruns the message")
    name_end = message.find(b"\x00", pos + 4, stop)
    if name_end < 0:
        raise WireProtocolError("document sequence identifier is not terminated")
    identifier = _decode_cstring(message[pos + 4 : name_end], "document sequence identifier")
    if not identifier:
        raise WireProtocolError("document sequence identifier is empty")
    documents: list[dict[str, Any]] = []
    pos = name_end + 1
    while pos < stop:
        document, pos = _read_document(message, pos, stop)
        documents.append(document)
    return identifier, documents, stop


def _parse_query(message: bytes, request_id: int) -> Request:
    """The legacy OP_QUERY command form; only ``<db>.$cmd`` namespaces carry commands."""
    end = len(message)
    flags = _read_int32(message, HEADER_SIZE, end, "OP_QUERY flags")
    name_end = message.find(b"\x00", HEADER_SIZE + 4)
    if name_end < 0:
        raise WireProtocolError("OP_QUERY collection name is not terminated")
    namespace = _decode_cstring(message[HEADER_SIZE + 4 : name_end], "OP_QUERY collection name")
    database, dot, collection = namespace.partition(".")
    if not database or not dot or collection != "$cmd":
        raise WireProtocolError(f"OP_QUERY on {namespace!r}: only <db>.$cmd is supported")
    pos = name_end + 1 + _QUERY_TAIL.size
    if pos > end:
        raise WireProtocolError("OP_QUERY too short for numberToSkip/numberToReturn")
    query, pos = _read_document(message, pos, end)
    if pos < end:  # an optional returnFieldsSelector, meaningless for commands
        _, pos = _read_document(message, pos, end)
    if pos != end:
        raise WireProtocolError("OP_QUERY has trailing bytes")
    command = query
    if "$query" in query:
        inner = query["$query"]
        if not isinstance(inner, dict):
            raise WireProtocolError("OP_QUERY $query is not a document")
        command = dict(inner)
        if "$readPreference" in query:
            command.setdefault("$readPreference", query["$readPreference"])
    if not command:
        raise WireProtocolError("OP_QUERY command document is empty")
    return Request(request_id, OP_QUERY, flags, command, {}, database, legacy=True)


def _read_int32(message: bytes, pos: int, end: int, what: str) -> int:
    if pos + 4 > end:
        raise WireProtocolError(f"message ends inside the {what}")
    return int(_INT32.unpack_from(message, pos)[0])


def _decode_cstring(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireProtocolError(f"{what} is not UTF-8") from exc


def _read_document(message: bytes, pos: int, end: int) -> tuple[dict[str, Any], int]:
    """Decode the BSON document at ``pos``; any decoder complaint is the client's fault."""
    size = _read_int32(message, pos, end, "BSON document size")
    if size < 5 or pos + size > end:  # 5: the empty document
        raise WireProtocolError(f"BSON document size {size} overruns the message")
    try:
        document = bson.decode(message[pos : pos + size], codec_options=CODEC_OPTIONS)
    except Exception as exc:  # the C decoder raises InvalidBSON, but also other types
        raise WireProtocolError(f"invalid BSON: {exc}") from exc
    return document, pos + size


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), pure Python: slow, but drivers rarely set checksumPresent."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _crc_entry(crc: int) -> int:
    for _ in range(8):
        crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc


_CRC_TABLE = tuple(_crc_entry(index) for index in range(256))


# --- encoding --------------------------------------------------------------------------------


def _frame(op_code: int, request_id: int, response_to: int, payload: bytes) -> bytes:
    return _HEADER.pack(HEADER_SIZE + len(payload), request_id, response_to, op_code) + payload


def _encode(document: Mapping[str, Any]) -> bytes:
    return bson.encode(document, codec_options=CODEC_OPTIONS)


def _op_msg(
    flags: int,
    body: Mapping[str, Any],
    sequences: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    request_id: int,
    response_to: int,
) -> bytes:
    parts = [_UINT32.pack(flags), b"\x00", _encode(body)]
    for identifier, documents in sequences.items():
        chunk = identifier.encode() + b"\x00" + b"".join(_encode(d) for d in documents)
        parts += [b"\x01", _INT32.pack(4 + len(chunk)), chunk]
    if not flags & CHECKSUM_PRESENT:
        return _frame(OP_MSG, request_id, response_to, b"".join(parts))
    # Frame with room for the CRC-32C, which covers every byte before it.
    message = _frame(OP_MSG, request_id, response_to, b"".join([*parts, bytes(4)]))[:-4]
    return message + _UINT32.pack(crc32c(message))


def encode_reply(
    request: Request, document: Mapping[str, Any], *, request_id: int, more_to_come: bool = False
) -> bytes:
    """The reply to ``request`` in the opcode it expects: OP_MSG, or OP_REPLY for OP_QUERY."""
    if not request.legacy:
        flags = MORE_TO_COME if more_to_come else 0
        return _op_msg(flags, document, {}, request_id=request_id, response_to=request.request_id)
    if more_to_come:
        raise ValueError("OP_REPLY cannot carry moreToCome")
    prefix = _REPLY_PREFIX.pack(_AWAIT_CAPABLE, 0, 0, 1)
    return _frame(OP_REPLY, request_id, request.request_id, prefix + _encode(document))


def encode_request(
    command: Mapping[str, Any],
    *,
    request_id: int,
    database: str,
    sequences: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    flags: int = 0,
) -> bytes:
    """An OP_MSG as a driver sends it (``$db`` appended); the checksum is added if flagged."""
    body = dict(command)
    body.setdefault("$db", database)
    return _op_msg(flags, body, sequences or {}, request_id=request_id, response_to=0)


def encode_legacy_query(
    command: Mapping[str, Any],
    *,
    request_id: int,
    database: str = "admin",
    flags: int = 0,
    modifiers: Mapping[str, Any] | None = None,
) -> bytes:
    """An OP_QUERY command on ``<database>.$cmd``; ``modifiers`` wraps it in ``$query``."""
    query = dict(command) if modifiers is None else {"$query": dict(command), **modifiers}
    namespace = f"{database}.$cmd".encode() + b"\x00"
    payload = _INT32.pack(flags) + namespace + _QUERY_TAIL.pack(0, -1) + _encode(query)
    return _frame(OP_QUERY, request_id, 0, payload)


def decode_reply(data: bytes) -> tuple[int, int, dict[str, Any]]:
    """``(response_to, flags, document)`` of one OP_MSG or OP_REPLY, for tests and clients."""
    if len(data) < HEADER_SIZE:
        raise WireProtocolError("reply shorter than a message header")
    length, _, response_to, op_code = _HEADER.unpack_from(data)
    if length != len(data):
        raise WireProtocolError(f"reply length {length} but {len(data)} bytes given")
    if op_code == OP_MSG:
        flags, body, sequences = _parse_msg(data)
        body.update(sequences)
        return response_to, flags, body
    if op_code != OP_REPLY:
        raise WireProtocolError(f"opcode {op_code} is not a reply")
    if length < HEADER_SIZE + _REPLY_PREFIX.size:
        raise WireProtocolError("OP_REPLY too short")
    flags, _, _, returned = _REPLY_PREFIX.unpack_from(data, HEADER_SIZE)
    document, pos = _read_document(data, HEADER_SIZE + _REPLY_PREFIX.size, length)
    if returned != 1 or pos != length:
        raise WireProtocolError("OP_REPLY does not hold exactly one document")
    return response_to, flags, document

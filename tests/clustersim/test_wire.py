"""The wire codec alone: framing, validation, fuzzing; no sockets but one pymongo capture."""

from __future__ import annotations

import socketserver
import struct
import threading
from datetime import UTC, datetime
from typing import Any

import bson
import pymongo
import pytest
from bson import Binary, Decimal128, Int64, ObjectId, Timestamp
from bson.codec_options import DEFAULT_CODEC_OPTIONS
from clustersim.errors import WireProtocolError
from clustersim.mongo.wire import (
    CHECKSUM_PRESENT,
    EXHAUST_ALLOWED,
    MAX_MESSAGE_SIZE,
    MORE_TO_COME,
    OP_COMPRESSED,
    OP_MSG,
    OP_QUERY,
    OP_REPLY,
    MessageReader,
    Request,
    crc32c,
    decode_reply,
    encode_legacy_query,
    encode_reply,
    encode_request,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import ReadPreference
from pymongo.message import _op_msg

# --- helpers -----------------------------------------------------------------------------------


def parse(data: bytes, chunk: int | None = None) -> list[Request]:
    """Feed ``data`` (in ``chunk``-sized pieces) and drain every complete request."""
    reader = MessageReader()
    requests: list[Request] = []
    size = chunk or max(len(data), 1)
    for start in range(0, len(data), size):
        reader.feed(data[start : start + size])
        while (request := reader.next_request()) is not None:
            requests.append(request)
    return requests


def parse_one(data: bytes) -> Request:
    (request,) = parse(data)
    return request


def frame(op_code: int, payload: bytes, request_id: int = 7) -> bytes:
    return struct.pack("<iiii", 16 + len(payload), request_id, 0, op_code) + payload


def doc(document: dict[str, Any]) -> bytes:
    return bson.encode(document)


def msg(*sections: bytes, flags: int = 0) -> bytes:
    return frame(OP_MSG, struct.pack("<I", flags) + b"".join(sections))


def body(document: dict[str, Any]) -> bytes:
    return b"\x00" + doc(document)


def sequence(identifier: str, *documents: dict[str, Any], size: int | None = None) -> bytes:
    chunk = identifier.encode() + b"\x00" + b"".join(doc(d) for d in documents)
    return b"\x01" + struct.pack("<i", 4 + len(chunk) if size is None else size) + chunk


def query(namespace: str | bytes, document: bytes, extra: bytes = b"") -> bytes:
    name = namespace.encode() if isinstance(namespace, str) else namespace
    payload = struct.pack("<i", 0) + name + b"\x00" + struct.pack("<ii", 0, -1)
    return frame(OP_QUERY, payload + document + extra)


PING = {"ping": 1, "$db": "admin"}

# --- round trips -------------------------------------------------------------------------------


def test_op_msg_with_document_sequence_round_trips() -> None:
    documents = [{"_id": 1, "x": "a"}, {"_id": 2, "nested": {"y": [1, 2]}}]
    data = encode_request(
        {"insert": "coll", "ordered": True},
        request_id=42,
        database="app",
        sequences={"documents": documents},
    )
    request = parse_one(data)
    assert request.request_id == 42
    assert request.op_code == OP_MSG
    assert request.flags == 0
    assert request.command == {"insert": "coll", "ordered": True, "$db": "app"}
    assert list(request.command) == ["insert", "ordered", "$db"]
    assert request.sequences == {"documents": documents}
    assert request.database == "app"
    assert request.command_name == "insert"
    assert not request.legacy
    assert not request.more_to_come
    assert not request.exhaust_allowed
    merged = request.merged_command()
    assert merged == {"insert": "coll", "ordered": True, "$db": "app", "documents": documents}
    assert "documents" not in request.command  # merging copies


def test_op_msg_reply_round_trips_bson_types_in_order() -> None:
    request = parse_one(encode_request({"find": "c"}, request_id=5, database="db"))
    reply = {
        "cursor": {"id": Int64(2**40), "ns": "db.c", "firstBatch": [{"_id": ObjectId()}]},
        "operationTime": Timestamp(1_700_000_000, 3),
        "at": datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC),
        "uuid": Binary(b"\x01" * 16, 4),
        "price": Decimal128("1.10"),
        "ok": 1.0,
    }
    data = encode_reply(request, reply, request_id=99)
    response_to, flags, document = decode_reply(data)
    assert (response_to, flags) == (5, 0)
    assert document == reply
    assert list(document) == list(reply)
    assert struct.unpack_from("<iiii", data) == (len(data), 99, 5, OP_MSG)


def test_more_to_come_reply_sets_the_flag() -> None:
    request = parse_one(encode_request({"hello": 1}, request_id=3, database="admin"))
    _, flags, _ = decode_reply(encode_reply(request, {"ok": 1}, request_id=4, more_to_come=True))
    assert flags == MORE_TO_COME


def test_legacy_ismaster_with_query_wrapping() -> None:
    command = {"isMaster": 1, "helloOk": True, "client": {"driver": {"name": "old"}}}
    data = encode_legacy_query(
        command,
        request_id=11,
        modifiers={"$readPreference": {"mode": "primaryPreferred"}},
    )
    request = parse_one(data)
    assert request.legacy
    assert request.op_code == OP_QUERY
    assert request.database == "admin"
    assert request.command_name == "ismaster"
    assert request.command == {**command, "$readPreference": {"mode": "primaryPreferred"}}
    assert request.sequences == {}
    reply = encode_reply(request, {"ismaster": True, "ok": 1.0}, request_id=12)
    assert struct.unpack_from("<iiii", reply) == (len(reply), 12, 11, OP_REPLY)
    assert struct.unpack_from("<iqii", reply, 16) == (8, 0, 0, 1)
    assert decode_reply(reply) == (11, 8, {"ismaster": True, "ok": 1.0})
    with pytest.raises(ValueError, match="moreToCome"):
        encode_reply(request, {"ok": 1}, request_id=13, more_to_come=True)


def test_legacy_query_unwrapped_and_with_field_selector() -> None:
    request = parse_one(encode_legacy_query({"ismaster": 1}, request_id=1, database="db"))
    assert (request.database, request.command) == ("db", {"ismaster": 1})
    request = parse_one(query("admin.$cmd", doc({"ping": 1}), extra=doc({"x": 1})))
    assert request.command == {"ping": 1}


def test_legacy_flags_never_mean_exhaust_or_more_to_come() -> None:
    request = parse_one(
        encode_legacy_query({"ismaster": 1}, request_id=1, flags=EXHAUST_ALLOWED | MORE_TO_COME)
    )
    assert request.flags == EXHAUST_ALLOWED | MORE_TO_COME
    assert not request.more_to_come
    assert not request.exhaust_allowed


def test_split_feeds_byte_by_byte() -> None:
    data = encode_request(
        {"insert": "c"}, request_id=1, database="d", sequences={"documents": [{"a": 1}] * 3}
    )
    (request,) = parse(data, chunk=1)
    assert request.sequences["documents"] == [{"a": 1}] * 3


def test_partial_message_waits_for_more_data() -> None:
    data = encode_request(PING, request_id=1, database="admin")
    reader = MessageReader()
    reader.feed(data[:-1])
    assert reader.next_request() is None
    assert reader.next_request() is None
    reader.feed(data[-1:])
    assert reader.next_request() is not None
    assert reader.next_request() is None


def test_several_messages_in_one_feed() -> None:
    data = (
        encode_request({"ping": 1}, request_id=1, database="admin")
        + encode_legacy_query({"isMaster": 1}, request_id=2)
        + encode_request({"find": "c"}, request_id=3, database="db", flags=MORE_TO_COME)
    )
    requests = parse(data)
    assert [r.request_id for r in requests] == [1, 2, 3]
    assert [r.command_name for r in requests] == ["ping", "ismaster", "find"]
    assert [r.legacy for r in requests] == [False, True, False]
    # A feed may also end inside the next message.
    assert [r.request_id for r in parse(data, chunk=len(data) // 2 + 3)] == [1, 2, 3]


def test_checksum_present_is_accepted_and_verified() -> None:
    data = encode_request(PING, request_id=1, database="admin", flags=CHECKSUM_PRESENT)
    request = parse_one(data)
    assert request.flags == CHECKSUM_PRESENT
    assert request.command == PING
    corrupt = data[:-1] + bytes([data[-1] ^ 0xFF])
    with pytest.raises(WireProtocolError, match="checksum"):
        parse(corrupt)


def test_crc32c_known_vectors() -> None:
    assert crc32c(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283


def test_more_to_come_and_exhaust_allowed_are_parsed() -> None:
    request = parse_one(
        encode_request(
            {"hello": 1, "topologyVersion": {}, "maxAwaitTimeMS": 10},
            request_id=1,
            database="admin",
            flags=EXHAUST_ALLOWED,
        )
    )
    assert request.exhaust_allowed
    assert not request.more_to_come
    request = parse_one(
        encode_request({"insert": "c"}, request_id=2, database="d", flags=MORE_TO_COME)
    )
    assert request.more_to_come
    assert not request.exhaust_allowed


def test_unknown_optional_flag_bits_are_ignored() -> None:
    assert parse_one(msg(body(PING), flags=1 << 20)).command == PING


# --- malformed input ---------------------------------------------------------------------------

_MALFORMED = {
    "length below header": (struct.pack("<i", 15), "outside"),
    "negative length": (struct.pack("<i", -1), "outside"),
    "length above max": (struct.pack("<i", MAX_MESSAGE_SIZE + 1), "outside"),
    "compressed": (frame(OP_COMPRESSED, b"\x00" * 9), "compression was not negotiated"),
    "op_reply from client": (frame(OP_REPLY, b"\x00" * 20), "unsupported opcode 1"),
    "legacy insert": (frame(2002, b"\x00" * 20), "unsupported opcode 2002"),
    "no flag bits": (frame(OP_MSG, b"\x00\x00"), "too short"),
    "unknown required flag": (msg(body(PING), flags=1 << 2), "unknown required flag"),
    "section kind 2": (msg(body(PING), b"\x02" + doc({"a": 1})), "kind 2"),
    "two bodies": (msg(body(PING), body(PING)), "more than one kind-0"),
    "no body": (msg(sequence("documents", {"a": 1})), "no kind-0"),
    "no sections": (msg(), "no kind-0"),
    "empty body": (msg(body({})), "empty"),
    "no $db": (msg(body({"ping": 1})), r"\$db"),
    "body overruns": (msg(b"\x00" + struct.pack("<i", 100) + doc(PING)[4:]), "overruns"),
    "tiny bson size": (msg(b"\x00" + struct.pack("<i", 2) + b"\x00" * 8), "overruns"),
    "sequence overruns": (msg(body(PING), sequence("documents", {"a": 1}, size=999)), "overruns"),
    "sequence size too small": (msg(body(PING), sequence("d", size=2)), "overruns"),
    "sequence name unterminated": (
        msg(body(PING), b"\x01" + struct.pack("<i", 8) + b"abcd"),
        "not terminated",
    ),
    "sequence empty name": (msg(body(PING), sequence("")), "empty"),
    "sequence doc overruns sequence": (
        msg(body(PING), sequence("d", {"a": 1}, size=4 + 2 + 6), doc({"b": 2})[6:]),
        "overruns",
    ),
    "duplicate sequence": (
        msg(body(PING), sequence("documents", {"a": 1}), sequence("documents", {"b": 1})),
        "repeats",
    ),
    "sequence also in body": (
        msg(body({**PING, "documents": []}), sequence("documents", {"a": 1})),
        "both",
    ),
    "invalid bson element type": (msg(body(PING)[:5] + b"\x7f" + body(PING)[6:]), "invalid BSON"),
    "bson bad terminator": (msg(body(PING)[:-1] + b"\x01"), "invalid BSON"),
    "bson bad utf8": (
        msg(b"\x00" + doc({"$db": "admin", "s": "x"}).replace(b"x", b"\xff")),
        "BSON",
    ),
    "trailing garbage in op_msg": (msg(body(PING), b"\x01\x02"), "ends inside"),
    "checksum without room": (frame(OP_MSG, struct.pack("<I", CHECKSUM_PRESENT)), "checksum"),
    "query not on $cmd": (query("db.coll", doc({"find": 1})), r"only <db>\.\$cmd"),
    "query no database": (query(".$cmd", doc({"ping": 1})), r"\$cmd"),
    "query unterminated namespace": (
        frame(OP_QUERY, b"\x00" * 4 + b"admin.$cmd"),
        "not terminated",
    ),
    "query bad namespace utf8": (query(b"\xff.$cmd", doc({"a": 1})), "UTF-8"),
    "query too short": (frame(OP_QUERY, b"\x00" * 4 + b"admin.$cmd\x00" + b"\x00" * 4), "short"),
    "query trailing garbage": (query("admin.$cmd", doc({"ping": 1}), extra=b"\x05\x00"), "ends"),
    "query trailing after selector": (
        query("admin.$cmd", doc({"ping": 1}), extra=doc({}) + b"\x00"),
        "trailing",
    ),
    "query empty": (query("admin.$cmd", doc({})), "empty"),
    "query $query not doc": (query("admin.$cmd", doc({"$query": 1})), "not a document"),
    "query $query empty": (query("admin.$cmd", doc({"$query": {}})), "empty"),
}


@pytest.mark.parametrize(("data", "match"), list(_MALFORMED.values()), ids=list(_MALFORMED))
def test_malformed_input_raises_wire_protocol_error(data: bytes, match: str) -> None:
    with pytest.raises(WireProtocolError, match=match) as info:
        parse(data)
    assert isinstance(info.value, ValueError)
    with pytest.raises(WireProtocolError, match=match):
        parse(data, chunk=1)


def test_bad_length_is_reported_from_the_first_four_bytes() -> None:
    reader = MessageReader()
    with pytest.raises(WireProtocolError, match="outside"):
        reader.feed(struct.pack("<i", MAX_MESSAGE_SIZE + 1))


def test_bad_opcode_is_reported_before_the_body_arrives() -> None:
    reader = MessageReader()
    with pytest.raises(WireProtocolError, match="compression"):
        reader.feed(struct.pack("<iiii", 1_000_000, 1, 0, OP_COMPRESSED))


def test_reader_is_poisoned_after_an_error() -> None:
    reader = MessageReader()
    reader.feed(encode_request(PING, request_id=1, database="admin"))
    reader.feed(msg(body(PING), flags=1 << 3))
    assert reader.next_request() is not None
    with pytest.raises(WireProtocolError) as first:
        reader.next_request()
    with pytest.raises(WireProtocolError) as again:
        reader.next_request()
    assert again.value is first.value
    with pytest.raises(WireProtocolError) as on_feed:
        reader.feed(encode_request(PING, request_id=2, database="admin"))
    assert on_feed.value is first.value


def test_decode_reply_rejects_bad_replies() -> None:
    with pytest.raises(WireProtocolError, match="shorter"):
        decode_reply(b"\x00" * 4)
    good = encode_request(PING, request_id=1, database="admin")
    with pytest.raises(WireProtocolError, match="bytes given"):
        decode_reply(good + b"\x00")
    with pytest.raises(WireProtocolError, match="not a reply"):
        decode_reply(frame(OP_QUERY, b""))
    with pytest.raises(WireProtocolError, match="too short"):
        decode_reply(frame(OP_REPLY, b"\x00" * 4))
    two = frame(OP_REPLY, struct.pack("<iqii", 0, 0, 0, 2) + doc({"a": 1}) + doc({"b": 1}))
    with pytest.raises(WireProtocolError, match="exactly one"):
        decode_reply(two)


# --- against the real driver -------------------------------------------------------------------


def test_parses_pymongo_op_msg_with_document_sequence() -> None:
    documents = [{"_id": ObjectId(), "n": i} for i in range(3)]
    command = {"insert": "coll", "ordered": False, "documents": documents}
    request_id, data, *_ = _op_msg(0, command, "app", None, DEFAULT_CODEC_OPTIONS)
    request = parse_one(data)
    assert request.request_id == request_id
    assert request.database == "app"
    assert request.command == {"insert": "coll", "ordered": False, "$db": "app"}
    assert request.sequences == {"documents": documents}
    assert request.merged_command()["documents"] == documents


def test_parses_pymongo_op_msg_with_flags_and_read_preference() -> None:
    command = {"find": "coll", "filter": {"a": 1}}
    _, data, *_ = _op_msg(
        MORE_TO_COME, command, "db", ReadPreference.SECONDARY, DEFAULT_CODEC_OPTIONS
    )
    request = parse_one(data)
    assert request.more_to_come
    assert request.command["$readPreference"] == {"mode": "secondary"}
    assert request.sequences == {}


class _Capture(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FirstMessage)
        self.requests: list[Request] = []


class _FirstMessage(socketserver.BaseRequestHandler):
    """Record the first message of a connection and hang up without answering."""

    def handle(self) -> None:
        self.request.settimeout(2)
        reader = MessageReader()
        for _ in range(1000):
            try:
                data = self.request.recv(65536)
            except OSError:
                return
            if not data:
                return
            reader.feed(data)
            if (request := reader.next_request()) is not None:
                assert isinstance(self.server, _Capture)
                self.server.requests.append(request)
                return


def test_parses_the_real_pymongo_handshake() -> None:
    server = _Capture()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        f"mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=300&connectTimeoutMS=300",
        directConnection=True,
    )
    try:
        with pytest.raises(pymongo.errors.ServerSelectionTimeoutError):
            client.admin.command("ping")
    finally:
        client.close()
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert server.requests, "pymongo sent nothing"
    first = server.requests[0]
    # The legacy name with helloOk, over OP_MSG from the pymongo versions we test at the top of
    # our range, over OP_QUERY (admin.$cmd) from older ones such as 4.12-4.15: both must parse.
    assert first.op_code in (OP_MSG, OP_QUERY)
    assert first.legacy == (first.op_code == OP_QUERY)
    assert first.command_name == "ismaster"
    assert first.command["helloOk"] is True
    assert first.database == "admin"
    assert "client" in first.command
    if first.op_code == OP_MSG:
        assert first.flags == 0
        assert first.command["$db"] == "admin"


# --- property tests ----------------------------------------------------------------------------

_keys = st.text(st.characters(exclude_characters="\x00", codec="utf-8"), max_size=8).filter(
    lambda key: key not in ("$db", "$query")
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(st.characters(codec="utf-8"), max_size=20)
    | st.binary(max_size=20)
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=12,
)
_documents = st.dictionaries(_keys, _values, max_size=5)
_identifiers = st.sampled_from(["documents", "updates", "deletes", "ops"])


@st.composite
def _requests(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]], int]:
    command = draw(st.dictionaries(_keys, _values, min_size=1, max_size=5))
    names = draw(st.lists(_identifiers, unique=True, max_size=2))
    sequences = {
        name: draw(st.lists(_documents, max_size=3)) for name in names if name not in command
    }
    flags = draw(st.sampled_from([0, CHECKSUM_PRESENT, MORE_TO_COME, EXHAUST_ALLOWED]))
    return command, sequences, flags


@st.composite
def _chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    chunks = []
    pos = 0
    while pos < len(data):
        size = draw(st.integers(min_value=1, max_value=max(1, len(data) - pos)))
        chunks.append(data[pos : pos + size])
        pos += size
    return chunks


def _drain_safely(chunks: list[bytes]) -> list[Request]:
    """Feed and drain; only Requests or WireProtocolError may come out, in bounded steps."""
    reader = MessageReader()
    requests: list[Request] = []
    total = sum(len(c) for c in chunks)
    try:
        for chunk in chunks:
            reader.feed(chunk)
            for _ in range(total // 16 + 2):  # every request consumes at least 16 bytes
                request = reader.next_request()
                if request is None:
                    break
                assert isinstance(request, Request)
                requests.append(request)
            else:
                pytest.fail("reader yielded more requests than the bytes allow")
    except WireProtocolError:
        pass
    return requests


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.data())
def test_fuzz_random_bytes(data: bytes, draw: st.DataObject) -> None:
    _drain_safely(draw.draw(_chunked(data)))


@settings(max_examples=200)
@given(st.binary(max_size=200), st.data())
def test_fuzz_random_payload_behind_a_valid_header(payload: bytes, draw: st.DataObject) -> None:
    op_code = draw.draw(st.sampled_from([OP_MSG, OP_QUERY]))
    _drain_safely(draw.draw(_chunked(frame(op_code, payload))))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(_requests(), st.integers(min_value=-(2**31), max_value=2**31 - 1), st.data())
def test_valid_requests_round_trip(
    spec: tuple[dict[str, Any], dict[str, list[dict[str, Any]]], int],
    request_id: int,
    draw: st.DataObject,
) -> None:
    command, sequences, flags = spec
    data = encode_request(
        command, request_id=request_id, database="db", sequences=sequences, flags=flags
    )
    (request,) = _drain_safely(draw.draw(_chunked(data)))
    assert request.request_id == request_id
    assert request.flags == flags
    assert request.command == {**command, "$db": "db"}
    assert list(request.command) == [*command, "$db"]
    assert request.sequences == sequences
    assert request.merged_command() == {**command, "$db": "db", **sequences}
    reply = encode_reply(request, command, request_id=1)
    assert decode_reply(reply) == (request_id, 0, command)


@settings(max_examples=100)
@given(st.dictionaries(_keys, _values, min_size=1, max_size=5), st.booleans())
def test_valid_legacy_queries_round_trip(command: dict[str, Any], wrap: bool) -> None:
    preference = {"mode": "secondaryPreferred"}
    modifiers = {"$readPreference": preference} if wrap else None
    data = encode_legacy_query(command, request_id=9, database="db", modifiers=modifiers)
    request = parse_one(data)
    expected = dict(command)
    if wrap:
        expected.setdefault("$readPreference", preference)
    assert request.legacy
    assert request.database == "db"
    assert request.command == expected
    assert decode_reply(encode_reply(request, command, request_id=1)) == (9, 8, command)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    command, sequences, flags = draw(_requests())
    if draw(st.booleans()):
        data = bytearray(
            encode_request(command, request_id=1, database="d", sequences=sequences, flags=flags)
        )
    else:
        data = bytearray(encode_legacy_query(command, request_id=1, database="d"))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        index = draw(st.integers(min_value=0, max_value=len(data) - 1))
        data[index] ^= draw(st.integers(min_value=1, max_value=255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(min_value=0, max_value=len(data)))]
    if draw(st.booleans()):
        lie = draw(st.integers(min_value=-(2**31), max_value=2**31 - 1) | st.integers(0, 400))
        data[:4] = struct.pack("<i", lie)[: len(data[:4])]
    return bytes(data)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated(), st.data())
def test_mutated_messages_only_raise_wire_protocol_error(data: bytes, draw: st.DataObject) -> None:
    _drain_safely(draw.draw(_chunked(data)))

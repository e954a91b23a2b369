"""Garbage on one connection closes that connection only; the member keeps serving the rest."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from clustersim.mongo import Standalone
from clustersim.mongo.wire import decode_reply, encode_request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import MongoClient


@pytest.fixture(scope="module")
def server() -> Iterator[Standalone]:
    with Standalone() as standalone:
        yield standalone


def _port(server: Standalone) -> int:
    return int(server.addresses[0].rsplit(":", 1)[1])


def _send_and_read(port: int, payload: bytes) -> bytes:
    """Send ``payload``, then read until the member closes or stays silent for a moment."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(0.5)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return received


def _ping(server: Standalone) -> Any:
    """A ping over a fresh connection, as raw wire bytes (cheap enough to repeat per example)."""
    reply = _send_and_read(
        _port(server), encode_request({"ping": 1}, request_id=9, database="admin")
    )
    return decode_reply(reply)[2]["ok"]


def test_a_real_client_still_works_after_garbage(server: Standalone) -> None:
    _send_and_read(_port(server), b"\x01" * 100)
    with MongoClient[dict[str, Any]](server.uri, serverSelectionTimeoutMS=3000) as client:
        assert client.admin.command("ping")["ok"] == 1


@pytest.mark.parametrize(
    "payload",
    [
        b"\x00\x00\x00",  # truncated header
        struct.pack("<iiii", 10, 1, 0, 2013),  # length below the header size
        struct.pack("<iiii", 2_000_000_000, 1, 0, 2013),  # a lying, enormous length
        struct.pack("<iiii", 21, 1, 0, 9999) + b"\x00" * 5,  # unknown opcode
        struct.pack("<iiii", 26, 1, 0, 2013) + b"\x00\x00\x00\x00\x00" + b"\x05\x00\x00\x00",
        encode_request({"ping": 1}, request_id=1, database="admin")[:-3],  # cut short
    ],
)
def test_malformed_messages_close_only_their_connection(server: Standalone, payload: bytes) -> None:
    assert _send_and_read(_port(server), payload) == b""
    assert _ping(server) == 1


def test_a_good_request_after_garbage_on_another_connection_is_answered(server: Standalone) -> None:
    port = _port(server)
    _send_and_read(port, b"\xff" * 64)
    reply = _send_and_read(port, encode_request({"ping": 1}, request_id=3, database="admin"))
    response_to, _, document = decode_reply(reply)
    assert response_to == 3
    assert document["ok"] == 1


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(min_size=1, max_size=200))
def test_random_bytes_never_take_the_member_down(server: Standalone, payload: bytes) -> None:
    _send_and_read(_port(server), payload)
    assert _ping(server) == 1

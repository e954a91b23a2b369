"""A loopback server that answers only the MongoDB handshake and hello, for adapter tests.

It speaks just enough of the wire protocol (OP_QUERY/OP_REPLY for the legacy handshake, OP_MSG
for the rest) for pymongo's monitor to receive the reply the test chooses. Any other command is
answered with ``ok: 1`` so that pings succeed. It is not a simulator; clustersim is.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from collections.abc import Callable
from typing import Any

import bson

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
HEADER = struct.Struct("<iiii")


class HelloServer:
    """Serves ``reply()`` to every hello; ``reply`` may change while running."""

    def __init__(self, reply: Callable[[HelloServer], dict[str, Any]]) -> None:
        self.reply = reply
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._server.hello_server = self  # type: ignore[attr-defined]
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> HelloServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        owner: HelloServer = self.server.hello_server  # type: ignore[attr-defined]
        try:
            while True:
                header = _read_exactly(sock, HEADER.size)
                length, request_id, _, op_code = HEADER.unpack(header)
                body = _read_exactly(sock, length - HEADER.size)
                command = _command(op_code, body)
                answer = _answer(owner, command)
                sock.sendall(_encode(op_code, request_id, answer))
        except (ConnectionError, OSError, EOFError):
            return


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = b""
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise EOFError
        chunks += chunk
    return chunks


def _command(op_code: int, body: bytes) -> dict[str, Any]:
    if op_code == OP_QUERY:
        name_end = body.index(b"\x00", 4)
        document_start = name_end + 1 + 8
        return dict(
            bson.decode(body[document_start : document_start + _bson_length(body, document_start)])
        )
    if op_code == OP_MSG:
        # flagBits, then a kind-0 section holding the command document.
        return dict(bson.decode(body[5 : 5 + _bson_length(body, 5)]))
    raise EOFError


def _bson_length(data: bytes, offset: int) -> int:
    return int(struct.unpack_from("<i", data, offset)[0])


def _answer(owner: HelloServer, command: dict[str, Any]) -> dict[str, Any]:
    name = next(iter(command), "").lower()
    if name in ("hello", "ismaster"):
        return owner.reply(owner)
    return {"ok": 1}


def _encode(op_code: int, request_id: int, document: dict[str, Any]) -> bytes:
    payload = bson.encode(document)
    if op_code == OP_QUERY:
        body = struct.pack("<iqii", 0, 0, 0, 1) + payload
        reply_code = OP_REPLY
    else:
        body = struct.pack("<I", 0) + b"\x00" + payload
        reply_code = OP_MSG
    return HEADER.pack(HEADER.size + len(body), 0, request_id, reply_code) + body

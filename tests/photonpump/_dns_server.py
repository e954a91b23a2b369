"""A tiny DNS server on 127.0.0.1 for discovery tests: A records for configured names.

It answers on the test's own event loop (UDP only). Names it knows get their addresses with a
TTL of 0, so no resolver caches them and a changed answer is seen on the next lookup; other
names get NXDOMAIN; other query types for a known name get an empty answer. ``queries`` records
every question, so tests can count lookups.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Self, cast

__all__ = ["DnsServer"]

HEADER = struct.Struct("!HHHHHH")
A, IN = 1, 1
NOERROR, FORMERR, NXDOMAIN = 0, 1, 3


class DnsServer:
    """``records`` maps a lower-case name (no trailing dot) to IPv4 addresses; change it freely."""

    def __init__(self, records: dict[str, list[str]]) -> None:
        self.records = records
        self.queries: list[tuple[str, int]] = []
        self._transport: asyncio.DatagramTransport | None = None
        self.port = 0

    @property
    def nameserver(self) -> str:
        """The form c-ares accepts for a server on another port than 53."""
        return f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=("127.0.0.1", 0)
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def answer(self, packet: bytes) -> bytes | None:
        """The response to one query packet, or ``None`` for something not worth answering."""
        if len(packet) < HEADER.size:
            return None
        ident, flags, qdcount, _, _, _ = HEADER.unpack_from(packet)
        if flags & 0x8000:  # a response, not a query
            return None
        reply_flags = 0x8000 | (flags & 0x7800) | 0x0400 | (flags & 0x0100) | 0x0080
        parsed = _question(packet) if qdcount == 1 else None
        if parsed is None:
            return HEADER.pack(ident, reply_flags | FORMERR, 0, 0, 0, 0)
        name, qtype, question = parsed
        self.queries.append((name, qtype))
        addresses = self.records.get(name)
        if addresses is None:
            return HEADER.pack(ident, reply_flags | NXDOMAIN, 1, 0, 0, 0) + question
        answers = [_a_record(address) for address in addresses] if qtype == A else []
        header = HEADER.pack(ident, reply_flags | NOERROR, 1, len(answers), 0, 0)
        return header + question + b"".join(answers)


def _question(packet: bytes) -> tuple[str, int, bytes] | None:
    """The name (lower case), type and raw bytes of the first question."""
    labels: list[str] = []
    offset = HEADER.size
    while True:
        if offset >= len(packet):
            return None
        length = packet[offset]
        offset += 1
        if length == 0:
            break
        if length & 0xC0 or offset + length > len(packet):  # no compression in a question
            return None
        labels.append(packet[offset : offset + length].decode("ascii", "replace"))
        offset += length
    if offset + 4 > len(packet):
        return None
    qtype, qclass = struct.unpack_from("!HH", packet, offset)
    if qclass != IN:
        return None
    # The question is echoed byte for byte, so a resolver randomising case still matches.
    return ".".join(labels).lower(), qtype, packet[HEADER.size : offset + 4]


def _a_record(address: str) -> bytes:
    # The name is a pointer to the question's (offset 12); TTL 0 keeps resolvers from caching.
    return b"\xc0\x0c" + struct.pack("!HHIH", A, IN, 0, 4) + socket.inet_aton(address)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self._server = server
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        reply = self._server.answer(data)
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)

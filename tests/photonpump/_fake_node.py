"""A tiny fake EventStore node for frame-level misbehaviour the simulator does not offer.

It speaks the core framing over loopback, answers the client's heartbeats, records every other
frame it receives, and hands each one to a ``handler`` the test writes: the handler decides what
(if anything) to send back, and when. A handler that returns an awaitable runs as a task of its
own, so a late reply never holds up the frames behind it. ``push`` sends unsolicited frames
(an unknown command byte, say) to every open connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Self

from google.protobuf.message import Message

from resilient_topology.eventstore.framing import Frame, FrameDecoder, TcpCommand, encode_frame

__all__ = ["FakeConnection", "FakeNode", "Handler"]

C = TcpCommand
Handler = Callable[["FakeConnection", Frame], Awaitable[None] | None]


def _no_reply(connection: FakeConnection, frame: Frame) -> None:
    return None


class FakeConnection:
    """One client connection to the fake node."""

    def __init__(
        self, node: FakeNode, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.node = node
        self.reader = reader
        self.writer = writer
        self.received: list[Frame] = []

    def send(self, frame: Frame) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode_frame(frame))

    def send_raw(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def reply(self, request: Frame, command: int, message: Message | bytes = b"") -> None:
        payload = message if isinstance(message, bytes) else message.SerializeToString()
        self.send(Frame(command, request.correlation_id, payload))

    @property
    def is_open(self) -> bool:
        return not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()

    async def serve(self) -> None:
        decoder = FrameDecoder()
        try:
            while data := await self.reader.read(65536):
                for frame in decoder.feed(data):
                    if frame.command == C.HeartbeatRequest:
                        if self.node.answer_heartbeats:
                            self.send(Frame(C.HeartbeatResponse, frame.correlation_id))
                        continue
                    if frame.command == C.HeartbeatResponse:
                        continue
                    self.received.append(frame)
                    self.node.received.append(frame)
                    self.node.arrived.set()
                    result = self.node.handler(self, frame)
                    if result is not None:
                        self.node.spawn(result)
        except (ConnectionError, OSError):
            pass
        finally:
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()


class FakeNode:
    """``async with FakeNode(handler) as node``: listening on ``node.port`` (127.0.0.1)."""

    host = "127.0.0.1"

    def __init__(self, handler: Handler = _no_reply, *, answer_heartbeats: bool = True) -> None:
        self.handler = handler
        self.answer_heartbeats = answer_heartbeats
        self.received: list[Frame] = []
        self.connections: list[FakeConnection] = []
        self.arrived = asyncio.Event()  # set whenever a frame arrives (tests clear it)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # replies a handler left for later
        self._serving: set[asyncio.Task[None]] = set()  # one per connection

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for connection in self.connections:
            connection.close()  # its reader sees the end: the serving task returns by itself
        if self._serving:
            await asyncio.wait(self._serving, timeout=5.0)
        if server is not None:
            await server.wait_closed()

    def spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            await work

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = FakeConnection(self, reader, writer)
        self.connections.append(connection)
        task = asyncio.current_task()
        assert task is not None
        self._serving.add(task)
        try:
            await connection.serve()
        finally:
            self._serving.discard(task)

    # --- what tests look at and do -----------------------------------------------------------

    @property
    def open_connections(self) -> list[FakeConnection]:
        return [c for c in self.connections if c.is_open]

    def frames(self, command: int) -> list[Frame]:
        return [frame for frame in self.received if frame.command == command]

    def push(self, frame: Frame) -> None:
        for connection in self.open_connections:
            connection.send(frame)

    def push_raw(self, data: bytes) -> None:
        for connection in self.open_connections:
            connection.send_raw(data)

    def drop_connections(self) -> None:
        for connection in self.open_connections:
            connection.close()


def pong(connection: FakeConnection, frame: Frame) -> None:
    """A handler that answers pings and ignores everything else."""
    if frame.command == C.Ping:
        connection.reply(frame, C.Pong)


def unknown_frame(command: int, correlation_id: uuid.UUID | None = None) -> Frame:
    """A frame with ``command`` (any byte) and a correlation id nobody waits for."""
    return Frame(command, correlation_id or uuid.uuid4(), b"\x08\x01")

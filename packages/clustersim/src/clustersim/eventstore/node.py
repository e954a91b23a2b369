"""One simulated node: a TCP listener, its client connections, heartbeats and faults.

A connection reads frames with the core's :class:`FrameDecoder` and answers each request in
arrival order. Before dispatch: credentials are checked (``NotAuthenticated``), a starting node
answers ``NotHandled(NotReady)``, and a follower answers ``NotHandled(NotMaster)`` with the
leader's addresses to what must run on the leader. A malformed payload or an unknown command gets
``BadRequest`` and the connection goes on; a frame that breaks the framing (a lying or oversize
length) closes that connection only.

Heartbeats: after ``heartbeat_interval`` without a frame from the client the node sends a
``HeartbeatRequest`` and closes the connection if nothing arrives within ``heartbeat_timeout``;
it answers the client's own requests unless ``answer_heartbeats`` is off (a fault).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
import time
import uuid
from typing import Any

from google.protobuf.message import Message

from resilient_topology.eventstore.framing import (
    Frame,
    FrameDecoder,
    MalformedFrame,
    TcpCommand,
    encode_frame,
)
from resilient_topology.eventstore.proto import messages_pb2 as pb

from . import commands
from .persistent import Delivery
from .state import ClusterState

__all__ = ["Node"]

logger = logging.getLogger("clustersim.eventstore")
C = TcpCommand
_serials = itertools.count(1)


class Node:
    """A node of the cluster; ``start``/``stop`` follow ``kill``/``restart`` of the cluster."""

    def __init__(
        self,
        state: ClusterState,
        index: int,
        *,
        port: int = 0,
        heartbeat_interval: float = 2.0,
        heartbeat_timeout: float = 1.0,
        max_frame_size: int = 64 * 1024 * 1024,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.state = state
        self.ssl_context = ssl_context
        self.index = index
        self.port = port
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.max_frame_size = max_frame_size
        self.answer_heartbeats = True
        self.send_heartbeats = True
        self.delay = 0.0  # seconds added before every reply (a slow node)
        self.not_ready = False  # answer NotHandled(NotReady) to every request
        self.too_busy = False
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None

    @property
    def role(self) -> Any:
        return self.state.roles[self.index]

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, ssl=self.ssl_context
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self.role.tcp = ("127.0.0.1", self.port)

    async def stop(self) -> None:
        """Stop listening and close every connection (a killed process)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await self.drop_connections()
        if server is not None:
            await server.wait_closed()

    async def drop_connections(self) -> None:
        connections = list(self.connections)
        for connection in connections:
            connection.close()
        for connection in connections:
            await connection.finished()

    @property
    def serving(self) -> bool:
        return self._server is not None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None or self.role.partitioned:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        connection = _Connection(self, reader, writer)
        self.connections.add(connection)
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)


class _Connection:
    """One client connection; implements :class:`commands.Session`."""

    def __init__(self, node: Node, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.node_server = node
        self.state: ClusterState = node.state
        self.node = node.index
        self.serial = next(_serials)
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder(node.max_frame_size)
        self.subscriptions: dict[uuid.UUID, str] = {}
        self.consumers: dict[uuid.UUID, tuple[Any, tuple[str, str]]] = {}
        self._unlisten = self.state.listen(self._appended)
        self._heard = asyncio.Event()
        self._awaiting_heartbeat = False
        self._last_heard = asyncio.get_running_loop().time()
        self._batching = False
        self._done = asyncio.Event()
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._main: asyncio.Task[None] | None = None
        self._outgoing: list[bytes] = []

    # --- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        self._main = asyncio.current_task()
        self._heartbeat_task = asyncio.create_task(self._heartbeats())
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                self._last_heard = asyncio.get_running_loop().time()
                if self._awaiting_heartbeat:
                    self._heard.set()
                try:
                    frames = self.decoder.feed(data)
                except MalformedFrame as exc:
                    logger.info("node %d: closing a connection: %s", self.node, exc)
                    break
                for frame in frames:
                    await self._handle(frame)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            await self._cleanup()

    def close(self) -> None:
        if self._main is not None and not self._main.done():
            self._main.cancel()

    async def finished(self) -> None:
        await self._done.wait()

    async def _cleanup(self) -> None:
        self._unlisten()
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
        for consumer, key in self.consumers.values():
            self.state.unregister_consumer(consumer)
            group = self.state.registry.get(*key)
            if group is not None:
                group.disconnect(consumer, _now())
        if self.consumers:
            self.state.pump()
        self.consumers.clear()
        self.writer.close()
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await self.writer.wait_closed()
        self._done.set()

    async def _heartbeats(self) -> None:
        # Wakes once per interval, not per frame: the reader only stamps when it heard last.
        # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that arrives just as
        # the event is set (a frame and a close in one loop turn).
        node = self.node_server
        loop = asyncio.get_running_loop()
        while True:
            silent_for = loop.time() - self._last_heard
            if silent_for < node.heartbeat_interval or not node.send_heartbeats:
                await asyncio.sleep(max(node.heartbeat_interval - silent_for, 0.05))
                continue
            self._heard.clear()
            self._awaiting_heartbeat = True
            self.push(Frame(C.HeartbeatRequest, uuid.uuid4()))
            try:
                async with asyncio.timeout(node.heartbeat_timeout):
                    await self._heard.wait()
            except TimeoutError:
                logger.info("node %d: client missed a heartbeat; closing", self.node)
                self.close()
                return
            finally:
                self._awaiting_heartbeat = False

    # --- dispatch ------------------------------------------------------------------------------

    async def _handle(self, frame: Frame) -> None:
        node = self.node_server
        if frame.command == C.HeartbeatResponse:
            return
        if frame.command == C.HeartbeatRequest:
            if node.answer_heartbeats:
                self.push(Frame(C.HeartbeatResponse, frame.correlation_id))
            return
        if node.delay:
            await asyncio.sleep(node.delay)
        try:
            replies = self._dispatch(frame)
        except commands.BadRequestError as exc:
            replies = [self.reply(frame, C.BadRequest, str(exc).encode())]
        except Exception:  # a bug of ours: answer as a server would, keep serving
            logger.exception("node %d: request %r failed", self.node, frame)
            replies = [self.reply(frame, C.BadRequest, b"internal error")]
        for reply in replies:
            self.push(reply)

    def _dispatch(self, frame: Frame) -> list[Frame]:
        handler = commands.HANDLERS.get(frame.command)
        if handler is None:
            return [self.reply(frame, C.BadRequest, f"unknown command {frame.command}".encode())]
        if frame.credentials is not None and not self.state.authenticate(
            frame.credentials.username, frame.credentials.password
        ):
            return [self.reply(frame, C.NotAuthenticated, b"Not Authenticated")]
        if frame.command in (C.Ping, C.IdentifyClient, C.Authenticate):
            return handler(self, frame)
        node = self.node_server
        if node.not_ready or not self.state.roles[self.node].ready:
            return [self._not_handled(frame, pb.NotHandled.NotReady)]
        if node.too_busy:
            return [self._not_handled(frame, pb.NotHandled.TooBusy)]
        if self.state.roles[self.node].read_only and frame.command in (
            C.WriteEvents,
            C.DeleteStream,
        ):  # a read-only replica never writes, whatever the request asks
            return [self._not_handled(frame, pb.NotHandled.IsReadOnly)]
        if self.state.leader != self.node and self._needs_leader(frame):
            if self.state.leader is None:
                return [self._not_handled(frame, pb.NotHandled.NotReady)]
            return [self._not_master(frame)]
        return handler(self, frame)

    def _needs_leader(self, frame: Frame) -> bool:
        if frame.command in commands.LEADER_ALWAYS:
            return True
        message_type = commands.REQUIRE_MASTER_MESSAGES.get(frame.command)
        if message_type is None:
            return False
        request = commands.parse(message_type, frame)
        return bool(getattr(request, "require_master", False))

    def _not_handled(self, frame: Frame, reason: int) -> Frame:
        return self.reply(frame, C.NotHandled, pb.NotHandled(reason=commands.enum_value(reason)))

    def _not_master(self, frame: Frame) -> Frame:
        assert self.state.leader is not None
        leader = self.state.roles[self.state.leader]
        info = pb.NotHandled.MasterInfo(
            external_tcp_address=leader.tcp[0],
            external_tcp_port=leader.tcp[1],
            external_http_address=leader.http[0],
            external_http_port=leader.http[1],
        )
        message = pb.NotHandled(
            reason=pb.NotHandled.NotMaster, additional_info=info.SerializeToString()
        )
        return self.reply(frame, C.NotHandled, message)

    # --- Session -------------------------------------------------------------------------------

    def reply(self, request: Frame, command: int, message: Message | bytes) -> Frame:
        payload = message if isinstance(message, bytes) else message.SerializeToString()
        return Frame(command, request.correlation_id, payload)

    def push(self, frame: Frame) -> None:
        """Send ``frame``: the first of a loop step at once, later ones of that step together."""
        data = encode_frame(frame)
        if self._batching:
            self._outgoing.append(data)
            return
        self._batching = True
        asyncio.get_running_loop().call_soon(self._flush)
        if not self.writer.is_closing():
            self.writer.write(data)

    def _flush(self) -> None:
        self._batching = False
        data, self._outgoing = b"".join(self._outgoing), []
        if data and not self.writer.is_closing():
            self.writer.write(data)

    def user(self, request: Frame) -> str | None:
        return request.credentials.username if request.credentials is not None else None

    def add_subscription(self, request: Frame, stream: str) -> None:
        self.subscriptions[request.correlation_id] = stream

    def remove_subscription(self, request: Frame) -> bool:
        return self.subscriptions.pop(request.correlation_id, None) is not None

    def consumer_id(self, request: Frame) -> Any:
        return (self.serial, request.correlation_id)

    def remove_consumer(self, request: Frame) -> None:
        found = self.consumers.pop(request.correlation_id, None)
        if found is not None:
            self.state.unregister_consumer(found[0])

    def add_consumer(self, request: Frame, key: tuple[str, str]) -> Any:
        consumer = self.consumer_id(request)
        self.consumers[request.correlation_id] = (consumer, key)

        def send(delivery: Delivery) -> None:
            self.push(commands.delivery_frame(self, request, delivery))

        def drop(reason: int) -> None:
            self.consumers.pop(request.correlation_id, None)
            self.push(
                self.reply(
                    request,
                    C.SubscriptionDropped,
                    pb.SubscriptionDropped(reason=commands.enum_value(reason)),
                )
            )

        self.state.register_consumer(consumer, send, drop)
        return consumer

    def _appended(self, events: list[Any]) -> None:
        for correlation_id, stream in self.subscriptions.items():
            for event in events:
                if not stream or event.stream == stream:
                    appeared = pb.StreamEventAppeared(event=commands.resolved(event))
                    self.push(
                        Frame(C.StreamEventAppeared, correlation_id, appeared.SerializeToString())
                    )


def _now() -> float:
    return time.monotonic()

"""A minimal raw-socket EventStore client for the simulator's tests: frames in, frames out.

Deliberately not photonpump: it sends exactly the bytes a test builds, including broken ones, and
exposes every frame the node sends (replies, pushes, heartbeats). Also the message builders the
wire tests share, and :class:`Connector`, which closes every client a test opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from clustersim.eventstore.cluster import Cluster
from google.protobuf.message import Message

from resilient_topology.eventstore.framing import (
    Credentials,
    Frame,
    FrameDecoder,
    TcpCommand,
    encode_frame,
)
from resilient_topology.eventstore.proto import messages_pb2 as pb

C = TcpCommand
M = TypeVar("M", bound=Message)
ADMIN = Credentials("admin", "changeit")
WAIT = 5.0  # bound of every wait for a frame: a hang fails fast, a pass never waits this long

ANY, NO_STREAM, STREAM_EXISTS = -2, -1, -4


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.frames: dict[uuid.UUID, asyncio.Queue[Frame]] = defaultdict(asyncio.Queue)
        self.heartbeats: list[Frame] = []
        self.heartbeat_seen = asyncio.Event()
        self.answer_heartbeats = True
        self.closed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, address: str) -> RawClient:
        reader, writer = await asyncio.open_connection(*parse_address(address))
        return cls(reader, writer)

    async def _read(self) -> None:
        decoder = FrameDecoder()
        try:
            while data := await self.reader.read(65536):
                for frame in decoder.feed(data):
                    if frame.command == C.HeartbeatRequest:
                        self.heartbeats.append(frame)
                        self.heartbeat_seen.set()
                        if self.answer_heartbeats:
                            self.send_frame(Frame(C.HeartbeatResponse, frame.correlation_id))
                        continue
                    self.frames[frame.correlation_id].put_nowait(frame)
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed.set()

    def send_frame(self, frame: Frame) -> None:
        self.writer.write(encode_frame(frame))

    def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)

    def send(
        self,
        command: int,
        message: Message | bytes = b"",
        *,
        credentials: Credentials | None = None,
        correlation_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        correlation_id = correlation_id or uuid.uuid4()
        payload = message if isinstance(message, bytes) else message.SerializeToString()
        self.send_frame(Frame(command, correlation_id, payload, credentials))
        return correlation_id

    async def next(self, correlation_id: uuid.UUID, timeout: float = WAIT) -> Frame:
        async with asyncio.timeout(timeout):
            return await self.frames[correlation_id].get()

    async def expect(self, correlation_id: uuid.UUID, command: int, timeout: float = WAIT) -> Frame:
        """The next frame of this conversation, which must be ``command``."""
        frame = await self.next(correlation_id, timeout)
        assert frame.command == command, f"expected {C(command).name}, got {frame!r}"
        return frame

    async def request(
        self,
        command: int,
        message: Message | bytes = b"",
        *,
        credentials: Credentials | None = None,
        timeout: float = WAIT,
    ) -> Frame:
        return await self.next(self.send(command, message, credentials=credentials), timeout)

    async def call(
        self,
        command: int,
        message: Message | bytes,
        reply: int,
        reply_type: type[M],
        *,
        credentials: Credentials | None = None,
    ) -> M:
        """Send a request, check the reply's command and parse its payload."""
        frame = await self.request(command, message, credentials=credentials)
        assert frame.command == reply, f"expected {C(reply).name}, got {frame!r}"
        return decode(reply_type, frame)

    async def barrier(self) -> None:
        """Ping and wait for the pong: every frame the node sent before it has been received.

        The node serves one connection's frames in order and writes pushes synchronously, so
        once the pong is here, any push caused by an earlier request is queued too.
        """
        frame = await self.request(C.Ping)
        assert frame.command == C.Pong, frame

    def pending(self, correlation_id: uuid.UUID) -> list[Frame]:
        """Frames of this conversation received and not yet taken (call after a barrier)."""
        queue = self.frames[correlation_id]
        taken = []
        while not queue.empty():
            taken.append(queue.get_nowait())
        return taken

    async def wait_closed_by_server(self, timeout: float = WAIT) -> None:
        async with asyncio.timeout(timeout):
            await self.closed.wait()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self.writer.wait_closed()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    # --- conveniences for the common requests ------------------------------------------------

    async def write(
        self,
        stream: str,
        *events: Any,
        expected: int = ANY,
        require_master: bool = False,
        credentials: Credentials | None = None,
    ) -> pb.WriteEventsCompleted:
        message = write(stream, *events, expected=expected, require_master=require_master)
        return await self.call(
            C.WriteEvents,
            message,
            C.WriteEventsCompleted,
            pb.WriteEventsCompleted,
            credentials=credentials,
        )

    async def read_event(
        self, stream: str, number: int, *, credentials: Credentials | None = None
    ) -> pb.ReadEventCompleted:
        return await self.call(
            C.ReadEvent,
            read_event(stream, number),
            C.ReadEventCompleted,
            pb.ReadEventCompleted,
            credentials=credentials,
        )

    async def read_stream(
        self,
        stream: str,
        start: int,
        count: int,
        *,
        backward: bool = False,
        credentials: Credentials | None = None,
    ) -> pb.ReadStreamEventsCompleted:
        command = C.ReadStreamEventsBackward if backward else C.ReadStreamEventsForward
        reply = (
            C.ReadStreamEventsBackwardCompleted if backward else C.ReadStreamEventsForwardCompleted
        )
        return await self.call(
            command,
            read_stream(stream, start, count),
            reply,
            pb.ReadStreamEventsCompleted,
            credentials=credentials,
        )

    async def read_all(
        self,
        position: int,
        count: int,
        *,
        backward: bool = False,
        credentials: Credentials | None = None,
    ) -> pb.ReadAllEventsCompleted:
        command = C.ReadAllEventsBackward if backward else C.ReadAllEventsForward
        reply = C.ReadAllEventsBackwardCompleted if backward else C.ReadAllEventsForwardCompleted
        return await self.call(
            command,
            read_all(position, count),
            reply,
            pb.ReadAllEventsCompleted,
            credentials=credentials,
        )

    async def delete(
        self, stream: str, *, expected: int = ANY, hard: bool = False
    ) -> pb.DeleteStreamCompleted:
        message = pb.DeleteStream(
            event_stream_id=stream,
            expected_version=expected,
            require_master=False,
            hard_delete=hard,
        )
        return await self.call(
            C.DeleteStream, message, C.DeleteStreamCompleted, pb.DeleteStreamCompleted
        )


class Connector:
    """Opens raw clients to a cluster's nodes and closes them all in :meth:`aclose`."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.clients: list[RawClient] = []

    async def __call__(self, index: int = 0, *, answer_heartbeats: bool = True) -> RawClient:
        client = await RawClient.connect(self.cluster.tcp_addresses[index])
        client.answer_heartbeats = answer_heartbeats
        self.clients.append(client)
        return client

    async def aclose(self) -> None:
        for client in self.clients:
            await client.close()
        self.clients.clear()


@contextlib.asynccontextmanager
async def running(nodes: int = 3, **options: Any) -> AsyncIterator[tuple[Cluster, Connector]]:
    """A cluster on the running loop and a connector whose clients are closed first."""
    async with Cluster(nodes, **options) as cluster:
        connector = Connector(cluster)
        try:
            yield cluster, connector
        finally:
            await connector.aclose()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = WAIT) -> None:
    """Poll ``check`` until it holds; fails with TimeoutError after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - what changes is not ours to signal
            await asyncio.sleep(0.02)


# --- message builders --------------------------------------------------------------------------


def new_event(event_type: str = "thing", data: bytes = b"{}", event_id: bytes | None = None) -> Any:
    return pb.NewEvent(
        event_id=event_id or uuid.uuid4().bytes_le,
        event_type=event_type,
        data_content_type=1,
        metadata_content_type=0,
        data=data,
    )


def write(stream: str, *events: Any, expected: int = ANY, require_master: bool = False) -> Any:
    message = pb.WriteEvents(
        event_stream_id=stream, expected_version=expected, require_master=require_master
    )
    message.events.extend(events)
    return message


def read_event(stream: str, number: int, *, require_master: bool = False) -> pb.ReadEvent:
    return pb.ReadEvent(
        event_stream_id=stream,
        event_number=number,
        resolve_link_tos=False,
        require_master=require_master,
    )


def read_stream(stream: str, start: int, count: int) -> pb.ReadStreamEvents:
    return pb.ReadStreamEvents(
        event_stream_id=stream,
        from_event_number=start,
        max_count=count,
        resolve_link_tos=False,
        require_master=False,
    )


def read_all(position: int, count: int) -> pb.ReadAllEvents:
    return pb.ReadAllEvents(
        commit_position=position,
        prepare_position=position,
        max_count=count,
        resolve_link_tos=False,
        require_master=False,
    )


def subscribe(stream: str) -> pb.SubscribeToStream:
    return pb.SubscribeToStream(event_stream_id=stream, resolve_link_tos=False)


def group_settings(
    stream: str,
    group: str,
    *,
    start_from: int = 0,
    message_timeout_ms: int = 0,
    max_retry_count: int = 10,
    strategy: str = "RoundRobin",
    update: bool = False,
) -> Any:
    """A Create- (or Update-) PersistentSubscription with every required field filled."""
    message_type = pb.UpdatePersistentSubscription if update else pb.CreatePersistentSubscription
    return message_type(
        subscription_group_name=group,
        event_stream_id=stream,
        resolve_link_tos=False,
        start_from=start_from,
        message_timeout_milliseconds=message_timeout_ms,
        record_statistics=False,
        live_buffer_size=500,
        read_batch_size=20,
        buffer_size=500,
        max_retry_count=max_retry_count,
        prefer_round_robin=strategy == "RoundRobin",
        checkpoint_after_time=1000,
        checkpoint_max_count=500,
        checkpoint_min_count=10,
        subscriber_max_count=0,
        named_consumer_strategy=strategy,
    )


def connect_group(stream: str, group: str, allowed: int) -> pb.ConnectToPersistentSubscription:
    return pb.ConnectToPersistentSubscription(
        subscription_id=group, event_stream_id=stream, allowed_in_flight_messages=allowed
    )


def decode(message_type: type[M], frame: Frame) -> M:
    message = message_type()
    message.ParseFromString(frame.payload)
    return message

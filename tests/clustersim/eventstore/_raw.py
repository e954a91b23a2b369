"""A minimal raw-socket EventStore client for the simulator's tests: frames in, frames out.

Deliberately not photonpump: it sends exactly the bytes a test builds, including broken ones, and
exposes every frame the node sends (replies, pushes, heartbeats).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from typing import Any

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
ADMIN = Credentials("admin", "changeit")


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.frames: dict[uuid.UUID, asyncio.Queue[Frame]] = defaultdict(asyncio.Queue)
        self.heartbeats: list[Frame] = []
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

    async def next(self, correlation_id: uuid.UUID, timeout: float = 5.0) -> Frame:
        async with asyncio.timeout(timeout):
            return await self.frames[correlation_id].get()

    async def request(
        self,
        command: int,
        message: Message | bytes = b"",
        *,
        credentials: Credentials | None = None,
        timeout: float = 5.0,
    ) -> Frame:
        return await self.next(self.send(command, message, credentials=credentials), timeout)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self.writer.wait_closed()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def new_event(event_type: str = "thing", data: bytes = b"{}", event_id: bytes | None = None) -> Any:
    return pb.NewEvent(
        event_id=event_id or uuid.uuid4().bytes_le,
        event_type=event_type,
        data_content_type=1,
        metadata_content_type=0,
        data=data,
    )


def write(stream: str, *events: Any, expected: int = -2, require_master: bool = False) -> Any:
    message = pb.WriteEvents(
        event_stream_id=stream, expected_version=expected, require_master=require_master
    )
    message.events.extend(events)
    return message


def decode(message_type: type[Message], frame: Frame) -> Any:
    message = message_type()
    message.ParseFromString(frame.payload)
    return message

"""One TCP connection to a node: frames in and out, heartbeats, and nothing else.

The reader task decodes frames and hands each to ``on_frame`` at once; it never waits for a
consumer, so no conversation can hold up another (buffers are bounded per conversation, in the
layer above). The node's ``HeartbeatRequest`` is answered immediately from the reader. Any
inbound frame counts as liveness: after ``heartbeat_interval`` of silence one request is sent,
and the connection is declared dead when ``heartbeat_timeout`` passes with nothing received.
Heartbeats are recorded in the core's :class:`HeartbeatTracker`.

Outgoing frames queued within one event-loop step leave in one write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
import uuid
from collections.abc import Callable
from typing import Any

from resilient_topology.address import Address
from resilient_topology.errors import HeartbeatFailed
from resilient_topology.eventstore.framing import (
    MAX_FRAME_SIZE,
    Frame,
    FrameDecoder,
    MalformedFrame,
    TcpCommand,
    encode_frame,
)
from resilient_topology.heartbeat import HeartbeatTracker

__all__ = ["Connection", "cancel_and_wait"]

logger = logging.getLogger("photonpump.connection")
C = TcpCommand


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it ends, without swallowing a cancellation of the caller
    (``suppress(CancelledError)`` around ``await task`` would; ``asyncio.wait`` never raises
    the task's outcome). An error other than the cancellation is raised here."""
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled() and (error := task.exception()) is not None:
        raise error


class Connection:
    """An open connection; create with :meth:`open`. ``closed`` is set once it is gone."""

    def __init__(
        self,
        address: Address,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_frame: Callable[[Frame], None],
        *,
        heartbeat_interval: float,
        heartbeat_timeout: float,
        max_frame_size: int,
    ) -> None:
        self.address = address
        self._reader = reader
        self._writer = writer
        self._on_frame = on_frame
        self._interval = heartbeat_interval
        self._timeout = heartbeat_timeout
        self._decoder = FrameDecoder(max_frame_size)
        self._outgoing: list[bytes] = []
        self._batching = False
        self._loop = asyncio.get_running_loop()
        self._last_heard = self._loop.time()
        self._heard = asyncio.Event()
        self._awaiting_heartbeat = False
        self.closed = asyncio.Event()
        #: why the connection ended (None while open, or after a clean close)
        self.error: BaseException | None = None
        self.tracker = HeartbeatTracker.for_seeds([address])
        self._heartbeat_id = uuid.uuid4()
        self._tasks = [
            asyncio.create_task(self._read(), name=f"photonpump-read-{address}"),
            asyncio.create_task(self._heartbeats(), name=f"photonpump-heartbeat-{address}"),
        ]

    @classmethod
    async def open(
        cls,
        address: Address,
        on_frame: Callable[[Frame], None],
        *,
        connect_timeout: float = 5.0,
        heartbeat_interval: float = 0.75,
        heartbeat_timeout: float = 1.5,
        max_frame_size: int = MAX_FRAME_SIZE,
        ssl_context: ssl.SSLContext | None = None,
    ) -> Connection:
        async with asyncio.timeout(connect_timeout):
            reader, writer = await asyncio.open_connection(
                address.host, address.port, ssl=ssl_context, limit=max_frame_size
            )
        return cls(
            address,
            reader,
            writer,
            on_frame,
            heartbeat_interval=heartbeat_interval,
            heartbeat_timeout=heartbeat_timeout,
            max_frame_size=max_frame_size,
        )

    @property
    def is_open(self) -> bool:
        return not self.closed.is_set()

    def send(self, frame: Frame) -> None:
        """Write ``frame``: the first of a loop step at once, later ones of that step together."""
        if self.closed.is_set():
            return
        data = encode_frame(frame)
        if self._batching:
            self._outgoing.append(data)
            return
        self._batching = True
        asyncio.get_running_loop().call_soon(self._flush)
        if not self._writer.is_closing():
            self._writer.write(data)

    def _flush(self) -> None:
        self._batching = False
        data, self._outgoing = b"".join(self._outgoing), []
        if data and not self._writer.is_closing():
            self._writer.write(data)

    async def close(self) -> None:
        """Close the socket and stop the tasks; idempotent."""
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                await cancel_and_wait(task)
        self._writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self._writer.wait_closed()
        self.closed.set()

    def abort(self, reason: BaseException) -> None:
        """Drop the connection now (a redirect, a protocol error); ``closed`` is set."""
        self._lost(reason)

    def _lost(self, error: BaseException | None) -> None:
        if not self.closed.is_set():
            self.error = error
            self.closed.set()
            self._writer.close()

    async def _read(self) -> None:
        try:
            while data := await self._reader.read(65536):
                self._last_heard = self._loop.time()
                if self._awaiting_heartbeat:
                    self._heard.set()
                for frame in self._decoder.feed(data):
                    if frame.command == C.HeartbeatRequest:
                        self.send(Frame(C.HeartbeatResponse, frame.correlation_id))
                    elif frame.command == C.HeartbeatResponse:
                        continue  # liveness already noted
                    else:
                        self._on_frame(frame)
            self._lost(ConnectionResetError(f"{self.address} closed the connection"))
        except (OSError, ConnectionError, MalformedFrame) as exc:
            self._lost(exc)

    async def _heartbeats(self) -> None:
        """Wakes once per interval (not per frame): the reader only stamps the time it heard."""
        while not self.closed.is_set():
            silent_for = self._loop.time() - self._last_heard
            if silent_for < self._interval:
                await asyncio.sleep(self._interval - silent_for)
                continue
            started = time.monotonic()
            self.tracker = self.tracker.started(self.address, started)
            self._heard.clear()
            self._awaiting_heartbeat = True
            self.send(Frame(C.HeartbeatRequest, self._heartbeat_id))
            try:
                async with asyncio.timeout(self._timeout):
                    await self._heard.wait()
            except TimeoutError:
                error = HeartbeatFailed(
                    f"{self.address} sent nothing for {self._interval + self._timeout:.1f} s",
                    address=self.address,
                )
                self.tracker = self.tracker.failed(self.address, time.monotonic(), error)
                logger.warning("%s", error)
                self._lost(error)
                return
            finally:
                self._awaiting_heartbeat = False
            now = time.monotonic()
            self.tracker = self.tracker.succeeded(
                self.address, now, now - started, reply_kind="node"
            )

"""Requests: ping, writes, deletes, reads and the paging iterators over them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

from resilient_topology.eventstore.framing import TcpCommand
from resilient_topology.eventstore.proto import messages_pb2 as pb

from . import _conversations as conv
from ._core import ClientCore
from .messages import (
    AllStreamSlice,
    Event,
    ExpectedVersion,
    NewEvent,
    NewEventData,
    Position,
    StreamDirection,
    StreamSlice,
    WriteResult,
    add_new_event,
)

__all__ = ["Requests"]

C = TcpCommand


class Requests(ClientCore):
    """One request per call (iterators: one per page, so a reconnect resumes after the last
    event delivered)."""

    # --- requests --------------------------------------------------------------------------

    async def ping(
        self, conversation_id: uuid.UUID | None = None, *, timeout: float | None = None
    ) -> float:
        """Round trip to the node in seconds (sent without credentials)."""
        request: conv.Request[float] = conv.Request(
            C.Ping, b"", C.Pong, conv.pong, correlation_id=conversation_id
        )
        return await self._converse(request, timeout)

    async def publish_event(
        self,
        stream: str,
        type: str,
        body: Any = None,
        id: uuid.UUID | None = None,
        metadata: Any = None,
        expected_version: int = ExpectedVersion.Any,
        require_master: bool = False,
        *,
        timeout: float | None = None,
    ) -> WriteResult:
        event = NewEvent(type, id=id, data=body, metadata=metadata)
        return await self.publish(
            stream, [event], expected_version, require_master, timeout=timeout
        )

    async def publish(
        self,
        stream: str,
        events: Iterable[NewEventData],
        expected_version: int = ExpectedVersion.Any,
        require_master: bool = False,
        *,
        timeout: float | None = None,
    ) -> WriteResult:
        message = pb.WriteEvents(
            event_stream_id=stream,
            expected_version=int(expected_version),
            require_master=require_master,
        )
        for event in events:
            add_new_event(message.events, event)
        request: conv.Request[WriteResult] = conv.Request(
            C.WriteEvents,
            message,
            C.WriteEventsCompleted,
            conv.write_completed,
            self._credentials(),
            needs_leader=require_master,
            stream=stream,
            event_number=int(expected_version),
        )
        request.raise_write_errors = self.raise_write_errors
        return await self._converse(request, timeout)

    async def delete_stream(
        self,
        stream: str,
        expected_version: int = ExpectedVersion.Any,
        hard_delete: bool = False,
        require_master: bool = False,
        *,
        timeout: float | None = None,
    ) -> Any:
        message = pb.DeleteStream(
            event_stream_id=stream,
            expected_version=int(expected_version),
            require_master=require_master,
            hard_delete=hard_delete,
        )
        request: conv.Request[Any] = conv.Request(
            C.DeleteStream,
            message,
            C.DeleteStreamCompleted,
            conv.delete_completed,
            self._credentials(),
        )
        return await self._converse(request, timeout)

    async def get_event(
        self,
        stream: str,
        event_number: int,
        resolve_links: bool = True,
        require_master: bool = False,
        correlation_id: uuid.UUID | None = None,
        *,
        timeout: float | None = None,
    ) -> Event:
        message = pb.ReadEvent(
            event_stream_id=stream,
            event_number=event_number,
            resolve_link_tos=resolve_links,
            require_master=require_master,
        )
        request: conv.Request[Event] = conv.Request(
            C.ReadEvent,
            message,
            C.ReadEventCompleted,
            conv.event_read,
            self._credentials(),
            correlation_id=correlation_id,
            stream=stream,
            event_number=event_number,
        )
        return await self._converse(request, timeout)

    async def get(
        self,
        stream: str,
        direction: StreamDirection = StreamDirection.Forward,
        from_event: int | None = None,
        max_count: int = 100,
        resolve_links: bool = True,
        require_master: bool = False,
        correlation_id: uuid.UUID | None = None,
        *,
        timeout: float | None = None,
    ) -> StreamSlice:
        """A page of ``stream``; backward without ``from_event`` starts at the end (R15)."""
        backward = StreamDirection(direction) == StreamDirection.Backward
        start = from_event if from_event is not None else (-1 if backward else 0)
        message = pb.ReadStreamEvents(
            event_stream_id=stream,
            from_event_number=start,
            max_count=max_count,
            resolve_link_tos=resolve_links,
            require_master=require_master,
        )
        command = C.ReadStreamEventsBackward if backward else C.ReadStreamEventsForward
        request: conv.Request[StreamSlice] = conv.Request(
            command,
            message,
            command + 1,
            conv.stream_read,
            self._credentials(),
            correlation_id=correlation_id,
            stream=stream,
        )
        return await self._converse(request, timeout)

    async def get_all(
        self,
        direction: StreamDirection = StreamDirection.Forward,
        from_position: Position | None = None,
        max_count: int = 100,
        resolve_links: bool = True,
        require_master: bool = False,
        correlation_id: uuid.UUID | None = None,
        *,
        timeout: float | None = None,
    ) -> AllStreamSlice:
        backward = StreamDirection(direction) == StreamDirection.Backward
        position = from_position or (Position(-1, -1) if backward else Position(0, 0))
        message = pb.ReadAllEvents(
            commit_position=position.commit,
            prepare_position=position.prepare,
            max_count=max_count,
            resolve_link_tos=resolve_links,
            require_master=require_master,
        )
        command = C.ReadAllEventsBackward if backward else C.ReadAllEventsForward
        request: conv.Request[AllStreamSlice] = conv.Request(
            command,
            message,
            command + 1,
            conv.all_read,
            self._credentials(),
            correlation_id=correlation_id,
        )
        return await self._converse(request, timeout)

    async def iter(
        self,
        stream: str,
        direction: StreamDirection = StreamDirection.Forward,
        from_event: int | None = None,
        batch_size: int = 100,
        resolve_links: bool = True,
        require_master: bool = False,
        correlation_id: uuid.UUID | None = None,
    ) -> AsyncIterator[Event]:
        """Every event of ``stream`` from ``from_event``, page by page (each page a request, so
        a reconnect resumes after the last event delivered, R8)."""
        backward = StreamDirection(direction) == StreamDirection.Backward
        following = from_event if from_event is not None else (-1 if backward else 0)
        while True:
            page = await self.get(
                stream, direction, following, batch_size, resolve_links, require_master
            )
            for event in page.events:
                yield event
            if page.is_end_of_stream or not page.events:
                return
            following = page.next_event_number

    async def iter_all(
        self,
        direction: StreamDirection = StreamDirection.Forward,
        from_position: Position | None = None,
        batch_size: int = 100,
        resolve_links: bool = True,
        require_master: bool = False,
        correlation_id: uuid.UUID | None = None,
    ) -> AsyncIterator[Event]:
        """Every event of ``$all`` from ``from_position``; resumes from its next position (R7)."""
        position = from_position
        while True:
            page = await self.get_all(
                direction, position, batch_size, resolve_links, require_master
            )
            for event in page.events:
                yield event
            if not page.events:
                return
            position = page.next_position

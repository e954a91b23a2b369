"""Subscriptions: volatile (live only), catch-up (history then live), and persistent groups.

Buffers are bounded per subscription. A node pushes events whether or not the consumer reads
them, so the reader task never waits on a consumer: a volatile subscription whose buffer fills
is dropped with :class:`~photonpump.exceptions.SubscriptionFailed` (reading it can only lose
events, better to say so); a catch-up subscription whose live buffer fills drops the live part
and goes back to reading pages from its last event, which loses nothing. A persistent
subscription is bounded by the node itself (``allowed_in_flight``).

After a reconnect: a volatile subscription subscribes again (events written meanwhile are not
seen: ``resubscriptions`` counts the gaps); a catch-up subscription resumes from the last event
it delivered, with no gap and no duplicate; a persistent one connects again and the node
redelivers what was not acknowledged (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

from resilient_topology.eventstore.framing import Credentials, Frame, TcpCommand
from resilient_topology.eventstore.proto import messages_pb2 as pb

from . import exceptions
from ._connection import cancel_and_wait
from ._conversations import Conversation, parse_payload
from .messages import Event, NakAction, Position

__all__ = [
    "CatchUpSubscription",
    "PersistentConversation",
    "PersistentSubscription",
    "StreamingIterator",
    "VolatileConversation",
    "VolatileSubscription",
]

C = TcpCommand
T = TypeVar("T")
_END = object()


class StreamingIterator(Generic[T]):
    """An async iterator over a bounded buffer; an exception put in is raised by the next read."""

    def __init__(self, size: int) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(size)
        self.last_event_number: int | None = None

    def __aiter__(self) -> StreamingIterator[T]:
        return self

    async def __anext__(self) -> T:
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)  # stays ended
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._queue.put_nowait(item)  # stays failed
            raise item
        event: T = item
        number = getattr(event, "event_number", None)
        if isinstance(number, int):
            self.last_event_number = number
        return event

    def offer(self, item: T) -> bool:
        """Add without waiting; False when the buffer is full."""
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            return False
        return True

    async def put(self, item: T) -> None:
        await self._queue.put(item)

    def end(self, error: BaseException | None = None) -> None:
        """Finish the iterator (with ``error`` raised to the reader, if given); idempotent."""
        while True:  # make room: an ending must never be lost behind a full buffer
            try:
                self._queue.put_nowait(error if error is not None else _END)
                return
            except asyncio.QueueFull:
                self._queue.get_nowait()

    @property
    def buffered(self) -> int:
        return self._queue.qsize()


# --- volatile -----------------------------------------------------------------------------


class VolatileConversation(Conversation):
    """SubscribeToStream: a confirmation, then pushed events until dropped or unsubscribed."""

    def __init__(
        self,
        stream: str,
        resolve_links: bool,
        credentials: Credentials | None,
        buffer_size: int,
        on_break: Callable[[VolatileConversation], None] | None = None,
    ) -> None:
        message = pb.SubscribeToStream(event_stream_id=stream, resolve_link_tos=resolve_links)
        super().__init__(C.SubscribeToStream, message.SerializeToString(), credentials)
        self.stream = stream
        self.events: StreamingIterator[Event] = StreamingIterator(buffer_size)
        self.confirmed: asyncio.Future[pb.SubscriptionConfirmation] = (
            asyncio.get_running_loop().create_future()
        )
        self.first_commit_position: int | None = None
        self.last_commit_position: int | None = None
        self.first_event_number: int | None = None
        self.last_event_number: int | None = None
        self.resubscriptions = 0
        self.finished = False
        self.ended = asyncio.Event()  # set when finished or failed
        #: set by a catch-up subscription: called on overflow or a lost connection, instead of
        #: failing or resubscribing (the catch-up starts over from its last event)
        self.on_break = on_break

    @property
    def done(self) -> bool:
        return self.finished

    def start_frame(self) -> Frame:
        if self.confirmed.done():
            self.resubscriptions += 1
        return super().start_frame()

    def handle(self, frame: Frame) -> None:
        if frame.command == C.SubscriptionConfirmation:
            reply = parse_payload(pb.SubscriptionConfirmation, frame)
            self.last_commit_position = reply.last_commit_position
            if reply.HasField("last_event_number"):
                self.last_event_number = reply.last_event_number
            if not self.confirmed.done():
                self.first_commit_position = reply.last_commit_position
                self.first_event_number = self.last_event_number
                self.confirmed.set_result(reply)
        elif frame.command == C.StreamEventAppeared:
            appeared = parse_payload(pb.StreamEventAppeared, frame)
            event = Event.from_resolved(appeared.event)
            if not self.events.offer(event):
                if self.on_break is not None:
                    self.on_break(self)
                else:
                    self.fail(
                        exceptions.SubscriptionFailed(
                            self.id, "the consumer fell behind: buffer full, subscription dropped"
                        )
                    )
        elif frame.command == C.SubscriptionDropped:
            dropped = parse_payload(pb.SubscriptionDropped, frame)
            reason = pb.SubscriptionDropped.SubscriptionDropReason.Name(dropped.reason)
            if dropped.reason == pb.SubscriptionDropped.Unsubscribed:
                self.finish()
            elif dropped.reason == pb.SubscriptionDropped.AccessDenied:
                self.fail(exceptions.AccessDenied(self.id, "Subscribe", reason))
            else:
                self.fail(exceptions.SubscriptionFailed(self.id, int(dropped.reason)))
        else:
            self.fail(
                exceptions.UnexpectedCommand("a subscription message", frame.command, self.id)
            )

    def connection_lost(self) -> None:
        if self.on_break is not None:
            self.on_break(self)

    def reply_after_reconnect(self) -> bool:
        # A catch-up's live part is started over by the catch-up rather than sent again, once
        # confirmed; one that never reached a node (opened while disconnected) must be sent.
        return not self.finished and (self.on_break is None or not self.confirmed.done())

    def finish(self) -> None:
        self.finished = True
        self.ended.set()
        self.events.end()
        if not self.confirmed.done():
            self.confirmed.cancel()

    def fail(self, error: BaseException) -> None:
        self.finished = True
        self.ended.set()
        if not self.confirmed.done():
            self.confirmed.set_exception(error)
        self.events.end(error)


class VolatileSubscription:
    """What ``subscribe_to(stream)`` returns: ``events`` is an async iterator of live events."""

    def __init__(
        self, conversation: VolatileConversation, unsubscribe: Callable[[], Awaitable[None]]
    ) -> None:
        self._conversation = conversation
        self._unsubscribe = unsubscribe
        self.stream = conversation.stream
        self.id = conversation.id
        self.events = conversation.events

    first_event_number = property(lambda self: self._conversation.first_event_number)
    last_event_number = property(lambda self: self._conversation.last_event_number)
    first_commit_position = property(lambda self: self._conversation.first_commit_position)
    last_commit_position = property(lambda self: self._conversation.last_commit_position)
    resubscriptions = property(lambda self: self._conversation.resubscriptions)

    @property
    def is_complete(self) -> bool:
        return self._conversation.finished

    async def unsubscribe(self) -> None:
        await self._unsubscribe()

    async def raise_error(self, error: BaseException) -> None:
        """End ``events`` with ``error`` raised to its reader (awaitable, as in the original)."""
        self._conversation.fail(error)

    async def __aenter__(self) -> VolatileSubscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.unsubscribe()


# --- catch-up -----------------------------------------------------------------------------

PageReader = Callable[[int], Awaitable[tuple[list[Event], bool]]]
LiveOpener = Callable[[Callable[[VolatileConversation], None]], Awaitable[VolatileConversation]]
LiveCloser = Callable[[VolatileConversation], Awaitable[None]]


class CatchUpSubscription:
    """History from ``start_from``, then live events, resumed from the last one after any break.

    Works by event number on a stream (``position`` mode works by ``$all`` position through
    ``key``). A task owned by the subscription subscribes live first (buffering), reads pages up
    to the end, then hands on the buffered and later live events it has not delivered yet. When
    the live part breaks (reconnect, overflow) it starts again from the last delivered event.
    """

    def __init__(
        self,
        stream: str,
        start_from: Any,
        read_page: Callable[[Any], Awaitable[tuple[list[Event], Any, bool]]],
        open_live: LiveOpener,
        close_live: LiveCloser,
        key: Callable[[Event], Any],
        buffer_size: int,
    ) -> None:
        self.stream = stream
        self.id = uuid.uuid4()
        self.events: StreamingIterator[Event] = StreamingIterator(buffer_size)
        self._read_page = read_page
        self._open_live = open_live
        self._close_live = close_live
        self._key = key
        self._next = start_from
        self._last: Any = None
        self._broken = asyncio.Event()
        self._live: VolatileConversation | None = None
        self._task: asyncio.Task[None] | None = None
        self.restarts = 0
        self.is_complete = False

    @property
    def last_event_number(self) -> int | None:
        return self.events.last_event_number

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"photonpump-catch-up-{self.stream}")

    def _overflow(self, live: VolatileConversation) -> None:
        self._broken.set()  # consumer too slow for live events: back to reading pages

    async def _run(self) -> None:
        try:
            while True:
                self._broken.clear()
                live = self._live = await self._open_live(self._overflow)
                await self._catch_up()
                await self._follow(live)
                self.restarts += 1
                await self._close_live(live)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.events.end(exc)
        finally:
            if self._live is not None and not self._live.finished:
                with contextlib.suppress(Exception):
                    await self._close_live(self._live)

    async def _catch_up(self) -> None:
        while True:
            events, following, end = await self._read_page(self._next)
            for event in events:
                await self._deliver(event)
            self._next = following
            if end or not events:
                return

    async def _deliver(self, event: Event) -> None:
        key = self._key(event)
        if self._last is not None and key <= self._last:
            return  # already delivered (history and live overlap)
        await self.events.put(event)
        self._last = key

    async def _follow(self, live: VolatileConversation) -> None:
        """Live events until the live conversation breaks; then the caller starts over."""
        broken = asyncio.ensure_future(self._broken.wait())
        getter: asyncio.Future[Event] | None = None
        try:
            while not live.finished or live.events.buffered:
                getter = asyncio.ensure_future(live.events.__anext__())
                done, _ = await asyncio.wait({getter, broken}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    return
                try:
                    event = getter.result()
                except StopAsyncIteration:
                    return
                except exceptions.SubscriptionFailed:
                    return  # dropped by the node or overflowed: read pages again
                finally:
                    getter = None
                await self._deliver(event)
                self._next = self._after(event)
        finally:
            for future in (broken, getter):
                if future is not None and not future.done():
                    future.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await future

    def _after(self, event: Event) -> Any:
        key = self._key(event)
        if isinstance(key, Position):
            return Position(key.commit + 1, key.prepare + 1)
        return key + 1

    async def unsubscribe(self) -> None:
        await self.end()

    async def raise_error(self, error: BaseException) -> None:
        """End ``events`` with ``error`` raised to its reader."""
        await self.end(error)

    async def end(self, error: BaseException | None = None) -> None:
        """Stop; ``events`` ends (raising ``error`` to its reader, when given)."""
        self.is_complete = True
        if self._task is not None:
            await cancel_and_wait(self._task)
        self.events.end(error)

    async def __aenter__(self) -> CatchUpSubscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.unsubscribe()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self.events


# --- persistent ---------------------------------------------------------------------------


class PersistentConversation(Conversation):
    def __init__(
        self,
        group: str,
        stream: str,
        allowed_in_flight: int,
        credentials: Credentials | None,
    ) -> None:
        message = pb.ConnectToPersistentSubscription(
            subscription_id=group,
            event_stream_id=stream,
            allowed_in_flight_messages=allowed_in_flight,
        )
        super().__init__(
            C.ConnectToPersistentSubscription, message.SerializeToString(), credentials
        )
        self.needs_leader = True  # groups live on the leader
        self.group = group
        self.stream = stream
        # In flight is bounded by the node; room for a redelivery burst after a reconnect.
        self.events: StreamingIterator[Event] = StreamingIterator(allowed_in_flight * 4 + 16)
        self.confirmed: asyncio.Future[pb.PersistentSubscriptionConfirmation] = (
            asyncio.get_running_loop().create_future()
        )
        self.subscription_id = ""
        self.finished = False

    @property
    def done(self) -> bool:
        return self.finished

    def handle(self, frame: Frame) -> None:
        if frame.command == C.PersistentSubscriptionConfirmation:
            reply = parse_payload(pb.PersistentSubscriptionConfirmation, frame)
            self.subscription_id = reply.subscription_id
            if not self.confirmed.done():
                self.confirmed.set_result(reply)
        elif frame.command == C.PersistentSubscriptionStreamEventAppeared:
            appeared = parse_payload(pb.PersistentSubscriptionStreamEventAppeared, frame)
            if not self.events.offer(Event.from_persistent(appeared)):
                self.fail(exceptions.SubscriptionFailed(self.id, "persistent buffer overflow"))
        elif frame.command == C.SubscriptionDropped:
            dropped = parse_payload(pb.SubscriptionDropped, frame)
            reason = pb.SubscriptionDropped.SubscriptionDropReason.Name(dropped.reason)
            if dropped.reason == pb.SubscriptionDropped.Unsubscribed and self.confirmed.done():
                self.finished = True
                self.events.end()
            elif dropped.reason == pb.SubscriptionDropped.AccessDenied:
                self.fail(exceptions.AccessDenied(self.id, "Subscribe", reason))
            else:
                self.fail(exceptions.SubscriptionFailed(self.id, int(dropped.reason)))
        else:
            self.fail(
                exceptions.UnexpectedCommand("a subscription message", frame.command, self.id)
            )

    def fail(self, error: BaseException) -> None:
        self.finished = True
        if not self.confirmed.done():
            self.confirmed.set_exception(error)
        self.events.end(error)


class PersistentSubscription:
    """What ``connect_subscription`` returns: ``events``, ``ack``, ``nack``."""

    def __init__(
        self,
        conversation: PersistentConversation,
        send: Callable[[Frame], None],
        stop: Callable[[], Awaitable[None]],
    ) -> None:
        self._conversation = conversation
        self._send = send
        self._stop = stop
        self.stream = conversation.stream
        self.events = conversation.events
        confirmation = conversation.confirmed.result()
        self.initial_commit_position = confirmation.last_commit_position
        self.last_event_number = (
            confirmation.last_event_number if confirmation.HasField("last_event_number") else None
        )

    @property
    def name(self) -> str:
        """The node's ``stream::group`` id."""
        return self._conversation.subscription_id

    @property
    def id(self) -> uuid.UUID:
        return self._conversation.id

    def _ids(self, events: Event | list[Event]) -> list[bytes]:
        items = events if isinstance(events, list) else [events]
        return [event.received_event.id.bytes_le for event in items]

    async def ack(self, event: Event | list[Event]) -> None:
        """Acknowledge one event or several in one message (the link's id when links resolve)."""
        message = pb.PersistentSubscriptionAckEvents(subscription_id=self.name)
        message.processed_event_ids.extend(self._ids(event))
        self._send(Frame(C.PersistentSubscriptionAckEvents, self.id, message.SerializeToString()))

    async def nack(
        self,
        event: Event | list[Event],
        action: NakAction = NakAction.Retry,
        message: str = "",
    ) -> None:
        """Give events back: ``Park``, ``Retry``, ``Skip`` or ``Stop``."""
        action_value: Any = int(action)  # our IntEnum has the .proto's numbers
        nak = pb.PersistentSubscriptionNakEvents(
            subscription_id=self.name, action=action_value, message=message
        )
        nak.processed_event_ids.extend(self._ids(event))
        self._send(Frame(C.PersistentSubscriptionNakEvents, self.id, nak.SerializeToString()))

    async def stop(self) -> None:
        await self._stop()

    async def __aenter__(self) -> PersistentSubscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

"""Subscriptions: volatile, catch-up (stream and ``$all``), and persistent groups."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from resilient_topology.eventstore.framing import Frame, TcpCommand
from resilient_topology.eventstore.proto import messages_pb2 as pb

from . import _conversations as conv
from . import exceptions
from ._requests import Requests
from ._subscriptions import (
    CatchUpSubscription,
    PersistentConversation,
    PersistentSubscription,
    VolatileConversation,
    VolatileSubscription,
)
from .messages import (
    Credential,
    Event,
    Position,
    StreamDirection,
)

__all__ = ["Subscribing"]

C = TcpCommand


class Subscribing(Requests):
    """Subscription methods of :class:`~photonpump.Client`."""

    # --- subscriptions ---------------------------------------------------------------------

    async def _volatile(
        self,
        stream: str,
        resolve_links: bool,
        on_break: Any = None,
        timeout: float | None = None,
    ) -> VolatileConversation:
        self._ensure_connector()
        subscription = VolatileConversation(
            stream, resolve_links, self._credentials(), self.subscription_buffer, on_break
        )
        self._conversations[subscription.id] = subscription
        if self.is_connected:
            self._send(subscription.start_frame())
        try:
            async with asyncio.timeout(self.request_timeout if timeout is None else timeout):
                await asyncio.shield(subscription.confirmed)
        except TimeoutError:
            self._conversations.pop(subscription.id, None)
            raise exceptions.RequestTimeout(
                subscription.id, "no subscription confirmation"
            ) from None
        except BaseException:
            self._conversations.pop(subscription.id, None)
            raise
        return subscription

    async def _unsubscribe(self, subscription: VolatileConversation) -> None:
        if subscription.finished:
            self._conversations.pop(subscription.id, None)
            return
        try:
            if self.is_connected:
                self._send(Frame(C.UnsubscribeFromStream, subscription.id))
                if not self._closed:  # closing waits for no node (R5)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.request_timeout):
                            await subscription.ended.wait()
        finally:  # even when the caller gives up waiting: never subscribed again
            subscription.finish()
            self._conversations.pop(subscription.id, None)

    async def subscribe_to(
        self,
        stream: str,
        start_from: int = -1,
        resolve_link_tos: bool = True,
        batch_size: int = 100,
    ) -> VolatileSubscription | CatchUpSubscription:
        """Live events (``start_from=-1``), or every event from ``start_from`` then live ones."""
        if start_from == -1:
            live = await self._volatile(stream, resolve_link_tos)
            return VolatileSubscription(live, lambda: self._unsubscribe(live))

        async def read_page(start: int) -> tuple[list[Event], int, bool]:
            try:
                page = await self.get(stream, StreamDirection.Forward, start, batch_size, True)
            except exceptions.StreamNotFound:  # not written yet: nothing to catch up on
                return [], start, True
            return list(page.events), page.next_event_number, page.is_end_of_stream

        return await self._catch_up(stream, start_from, read_page, lambda event: event.event_number)

    async def subscribe_to_all(
        self, start_from: Position | None = None, batch_size: int = 100
    ) -> VolatileSubscription | CatchUpSubscription:
        """Live ``$all`` events, or every one from ``start_from`` (a Position) then live ones."""
        if start_from is None:
            live = await self._volatile("", True)
            return VolatileSubscription(live, lambda: self._unsubscribe(live))

        async def read_page(position: Position) -> tuple[list[Event], Position, bool]:
            page = await self.get_all(StreamDirection.Forward, position, batch_size)
            return list(page.events), page.next_position, not page.events

        def key(event: Event) -> Position:
            assert event.position is not None
            return event.position

        return await self._catch_up("", start_from, read_page, key)

    async def _catch_up(
        self, stream: str, start: Any, read_page: Any, key: Any
    ) -> CatchUpSubscription:
        subscription: CatchUpSubscription

        async def open_live(on_break: Any) -> VolatileConversation:
            return await self._volatile(stream, True, on_break)

        subscription = CatchUpSubscription(
            stream, start, read_page, open_live, self._unsubscribe, key, self.subscription_buffer
        )
        self._catch_ups.add(subscription)
        subscription.start()
        return subscription

    # --- persistent subscriptions ----------------------------------------------------------

    def _group_message(self, message_type: Any, name: str, stream: str, **settings: Any) -> Any:
        return message_type(
            subscription_group_name=name,
            event_stream_id=stream,
            resolve_link_tos=settings["resolve_links"],
            start_from=settings["start_from"],
            message_timeout_milliseconds=settings["timeout_ms"],
            record_statistics=settings["record_statistics"],
            live_buffer_size=settings["live_buffer_size"],
            read_batch_size=settings["read_batch_size"],
            buffer_size=settings["buffer_size"],
            max_retry_count=settings["max_retry_count"],
            prefer_round_robin=settings["prefer_round_robin"],
            checkpoint_after_time=settings["checkpoint_after_ms"],
            checkpoint_max_count=settings["checkpoint_max_count"],
            checkpoint_min_count=settings["checkpoint_min_count"],
            subscriber_max_count=settings["subscriber_max_count"],
            named_consumer_strategy=settings["consumer_strategy"],
        )

    async def _send_group_settings(self, kind: str, arguments: dict[str, Any]) -> None:
        """Create or update a group from the public method's own arguments (``locals()``)."""
        message_type, command, answer, parse = _GROUP_REQUESTS[kind]
        name, stream = arguments.pop("name"), arguments.pop("stream")
        credential, conversation_id = arguments.pop("credential"), arguments.pop("conversation_id")
        arguments.pop("self")
        request: conv.Request[None] = conv.Request(
            command,
            self._group_message(message_type, name, stream, **arguments),
            answer,
            parse,
            self._credentials(credential),
            needs_leader=True,
            correlation_id=conversation_id,
        )
        await self._converse(request, None)

    async def create_subscription(
        self,
        name: str,
        stream: str,
        resolve_links: bool = True,
        start_from: int = -1,
        timeout_ms: int = 30000,
        record_statistics: bool = False,
        live_buffer_size: int = 500,
        read_batch_size: int = 500,
        buffer_size: int = 1000,
        max_retry_count: int = 10,
        prefer_round_robin: bool = False,
        checkpoint_after_ms: int = 2000,
        checkpoint_max_count: int = 1000,
        checkpoint_min_count: int = 10,
        subscriber_max_count: int = 10,
        credential: Credential | None = None,
        conversation_id: uuid.UUID | None = None,
        consumer_strategy: str = "RoundRobin",
    ) -> None:
        await self._send_group_settings("create", dict(locals()))

    async def update_subscription(
        self,
        name: str,
        stream: str,
        resolve_links: bool = True,
        start_from: int = -1,
        timeout_ms: int = 30000,
        record_statistics: bool = False,
        live_buffer_size: int = 500,
        read_batch_size: int = 500,
        buffer_size: int = 1000,
        max_retry_count: int = 10,
        prefer_round_robin: bool = False,
        checkpoint_after_ms: int = 2000,
        checkpoint_max_count: int = 1000,
        checkpoint_min_count: int = 10,
        subscriber_max_count: int = 10,
        credential: Credential | None = None,
        conversation_id: uuid.UUID | None = None,
        consumer_strategy: str = "RoundRobin",
    ) -> None:
        await self._send_group_settings("update", dict(locals()))

    async def delete_subscription(
        self, name: str, stream: str, credential: Credential | None = None
    ) -> None:
        message = pb.DeletePersistentSubscription(
            subscription_group_name=name, event_stream_id=stream
        )
        request: conv.Request[None] = conv.Request(
            C.DeletePersistentSubscription,
            message,
            C.DeletePersistentSubscriptionCompleted,
            conv.group_deleted,
            self._credentials(credential),
            needs_leader=True,
        )
        await self._converse(request, None)

    async def connect_subscription(
        self,
        subscription: str,
        stream: str,
        conversation_id: uuid.UUID | None = None,
        allowed_in_flight: int = 10,
        *,
        timeout: float | None = None,
    ) -> PersistentSubscription:
        self._ensure_connector()
        conversation = PersistentConversation(
            subscription, stream, allowed_in_flight, self._credentials()
        )
        if conversation_id is not None:
            conversation.id = conversation_id
        self._conversations[conversation.id] = conversation
        if self.is_connected:
            self._send(conversation.start_frame())
        try:
            async with asyncio.timeout(self.request_timeout if timeout is None else timeout):
                await asyncio.shield(conversation.confirmed)
        except TimeoutError:
            self._conversations.pop(conversation.id, None)
            raise exceptions.RequestTimeout(
                conversation.id, "no subscription confirmation"
            ) from None
        except BaseException:
            self._conversations.pop(conversation.id, None)
            raise

        async def stop() -> None:
            if self.is_connected and not conversation.finished:
                self._send(Frame(C.UnsubscribeFromStream, conversation.id))
            conversation.finished = True
            conversation.events.end()
            self._conversations.pop(conversation.id, None)

        return PersistentSubscription(conversation, self._send, stop)


_GROUP_REQUESTS: dict[str, tuple[Any, int, int, Any]] = {
    "create": (
        pb.CreatePersistentSubscription,
        C.CreatePersistentSubscription,
        C.CreatePersistentSubscriptionCompleted,
        conv.group_created,
    ),
    "update": (
        pb.UpdatePersistentSubscription,
        C.UpdatePersistentSubscription,
        C.UpdatePersistentSubscriptionCompleted,
        conv.group_updated,
    ),
}

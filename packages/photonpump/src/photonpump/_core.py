"""The client's core: lifecycle, the connector task, routing frames, and one request's round trip.

See :mod:`photonpump.connection` for the behaviour; the request methods and subscriptions build
on :meth:`ClientCore._converse` in :mod:`._requests` and :mod:`._subscribing`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import uuid
from typing import Any, Self, TypeVar

from resilient_topology.address import Address
from resilient_topology.eventstore.framing import MAX_FRAME_SIZE, Credentials, Frame, TcpCommand
from resilient_topology.eventstore.proto import messages_pb2 as pb
from resilient_topology.hooks import HookRegistry, Reconnected, ReconnectGivenUp

from . import _conversations as conv
from . import discovery, exceptions
from ._connection import Connection, cancel_and_wait
from ._subscriptions import (
    CatchUpSubscription,
)
from .messages import (
    Credential,
)

__all__ = ["ClientCore"]

logger = logging.getLogger("photonpump")
C = TcpCommand
T = TypeVar("T")

_NOT_READY_PAUSE = 0.1  # seconds before sending again what a busy or starting node refused
_MAX_REDIRECTS = 5  # NotMaster answers followed for one request before giving up
_KNOWN_COMMANDS = frozenset(int(command) for command in TcpCommand)


class ClientCore:
    """Connection management shared by every request method of :class:`~photonpump.Client`."""

    def __init__(
        self,
        discoverer: Any,
        *,
        credential: Credential | None = None,
        name: str | None = None,
        request_timeout: float = 30.0,
        connect_timeout: float = 5.0,
        heartbeat_interval: float = 0.75,
        heartbeat_timeout: float = 1.5,
        ssl_context: ssl.SSLContext | None = None,
        max_frame_size: int = MAX_FRAME_SIZE,
        subscription_buffer: int = 1000,
        raise_write_errors: bool = False,
    ) -> None:
        self.discoverer = discoverer
        self.credential = credential
        self.name = name or f"photonpump-{uuid.uuid4().hex[:8]}"
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.ssl_context = ssl_context
        self.max_frame_size = max_frame_size
        self.subscription_buffer = subscription_buffer
        #: raise WrongExpectedVersion / StreamDeleted / WriteFailed instead of returning them
        self.raise_write_errors = raise_write_errors
        #: the core's hooks: Reconnected, ReconnectGivenUp (leader changes: discoverer.hooks)
        self.hooks = HookRegistry()
        self._conversations: dict[uuid.UUID, conv.Conversation] = {}
        self._connection: Connection | None = None
        self._connected: asyncio.Event | None = None
        self._connector: asyncio.Task[None] | None = None
        self._redirect: discovery.NodeService | None = None
        self._redirects: dict[uuid.UUID, int] = {}
        self._catch_ups: set[CatchUpSubscription] = set()
        self._closed = False

    # --- lifecycle -------------------------------------------------------------------------

    async def connect(self) -> None:
        """Start connecting (returns at once; requests wait for the connection)."""
        if self._closed:
            raise exceptions.ClientClosed(None, "this client is closed")
        self._ensure_connector()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop, fail every pending request and subscription with ``ClientClosed``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        closed = exceptions.ClientClosed(None, "the client was closed")
        self._fail_all(closed)  # first: a catch-up stopping below then waits for no reply
        for catch_up in list(self._catch_ups):
            await catch_up.end(closed)  # its reader gets ClientClosed, as every other one
        if self._connector is not None:
            await cancel_and_wait(self._connector)
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
        await self.discoverer.close()

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and self._connection.is_open

    @property
    def connection_address(self) -> Address | None:
        return self._connection.address if self._connection is not None else None

    def _ensure_connector(self) -> None:
        if self._closed:
            raise exceptions.ClientClosed(None, "this client is closed")
        if self._connected is None:
            self._connected = asyncio.Event()
        if self._connector is None or self._connector.done():
            self._connector = asyncio.create_task(self._run(), name=f"{self.name}-connector")

    async def _run(self) -> None:
        """Connect, serve, repeat. Pacing and the retry budget are the discoverer's."""
        assert self._connected is not None
        attempts = 0
        while not self._closed:
            attempts += 1
            target: discovery.NodeService | None = None
            try:
                target, self._redirect = self._redirect or await self.discoverer.discover(), None
                secure = self.ssl_context is not None and bool(target.secure_port)
                address = Address(target.address, target.secure_port if secure else target.port)
                connection = await Connection.open(
                    address,
                    self._on_frame,
                    connect_timeout=self.connect_timeout,
                    heartbeat_interval=self.heartbeat_interval,
                    heartbeat_timeout=self.heartbeat_timeout,
                    max_frame_size=self.max_frame_size,
                    ssl_context=self.ssl_context,
                )
            except exceptions.DiscoveryFailed as exc:
                await self._give_up(exc, attempts)
                return
            except (OSError, TimeoutError) as exc:
                logger.info("cannot connect to %s: %s", target, exc)
                if target is not None:
                    self.discoverer.mark_failed(target, exc)
                continue
            self.discoverer.record_success(target)
            self._connection = connection
            self._connected.set()
            # Pending work goes out before any hook runs: a request made while an async hook
            # awaits is sent by the request itself, and must not be sent a second time here.
            for conversation in list(self._conversations.values()):
                if conversation.reply_after_reconnect():
                    connection.send(conversation.start_frame())
            await self.hooks.dispatch(Reconnected(attempts, address, time.monotonic()))
            attempts = 0
            await connection.closed.wait()
            self._connected.clear()
            self._connection = None
            await connection.close()
            for conversation in list(self._conversations.values()):
                conversation.connection_lost()
            if connection.error is not None and self._redirect is None:
                logger.warning("connection to %s lost: %s", address, connection.error)
                self.discoverer.mark_failed(target, connection.error)

    async def _give_up(self, error: BaseException, attempts: int) -> None:
        logger.error("giving up connecting: %s", error)
        await self.hooks.dispatch(ReconnectGivenUp(max(attempts, 1), error, time.monotonic()))
        self._fail_all(error)

    def _fail_all(self, error: BaseException) -> None:
        for conversation in list(self._conversations.values()):
            conversation.fail(error)
        self._conversations.clear()

    # --- frames ----------------------------------------------------------------------------

    def _send(self, frame: Frame) -> None:
        if self._connection is not None:
            self._connection.send(frame)

    def _on_frame(self, frame: Frame) -> None:
        if frame.command not in _KNOWN_COMMANDS:  # a newer or internal code: skip it (R3)
            logger.warning("skipping %r: unknown command", frame)
            return
        conversation = self._conversations.get(frame.correlation_id)
        if conversation is None:
            logger.debug("dropping %r: no conversation waits for it", frame)
            return
        try:
            if frame.command == C.NotHandled:
                self._not_handled(conversation, frame)
            elif frame.command == C.BadRequest:
                text = frame.payload.decode("utf-8", "replace")
                conversation.fail(exceptions.BadRequest(conversation.id, text))
            elif frame.command == C.NotAuthenticated:
                text = frame.payload.decode("utf-8", "replace")
                conversation.fail(exceptions.NotAuthenticated(conversation.id, text))
            else:
                # Answered: the redirect budget guards against NotMaster loops, not against
                # a long-lived subscription being sent to a follower now and then.
                self._redirects.pop(conversation.id, None)
                conversation.handle(frame)
        except Exception as exc:  # never let one reply stop the reader
            conversation.fail(exceptions.PayloadUnreadable(conversation.id, frame.payload, exc))
        if conversation.done:
            self._conversations.pop(conversation.id, None)
            self._redirects.pop(conversation.id, None)
            if frame.command == C.StreamEventAppeared:  # dropped by us (overflow): tell the node
                self._send(Frame(C.UnsubscribeFromStream, conversation.id))

    def _not_handled(self, conversation: conv.Conversation, frame: Frame) -> None:
        reply = conv.parse_payload(pb.NotHandled, frame)
        if reply.reason == pb.NotHandled.NotMaster:
            count = self._redirects.get(conversation.id, 0) + 1
            self._redirects[conversation.id] = count
            if count > _MAX_REDIRECTS:
                conversation.fail(exceptions.NotMaster(conversation.id))
                return
            if reply.HasField("additional_info"):
                info = pb.NotHandled.MasterInfo.FromString(reply.additional_info)
                secure = (
                    info.external_secure_tcp_port
                    if info.HasField("external_secure_tcp_port")
                    else 0
                )
                self._redirect = discovery.NodeService(
                    info.external_tcp_address, info.external_tcp_port, secure
                )
            # The conversation stays registered: it is sent again on the leader's connection.
            if self._connection is not None:
                self._connection.abort(exceptions.NotMaster(conversation.id))
        elif reply.reason in (pb.NotHandled.NotReady, pb.NotHandled.TooBusy):
            asyncio.get_running_loop().call_later(_NOT_READY_PAUSE, self._resend, conversation)
        elif reply.reason == pb.NotHandled.IsReadOnly:
            conversation.fail(exceptions.IsReadOnly(conversation.id))
        else:
            conversation.fail(exceptions.NotHandled(conversation.id, int(reply.reason)))

    def _resend(self, conversation: conv.Conversation) -> None:
        if self._conversations.get(conversation.id) is conversation and not conversation.done:
            self._send(conversation.start_frame())

    async def _converse(self, request: conv.Request[T], timeout: float | None) -> T:
        """Send ``request`` (now, or when connected) and wait for its reply or its deadline.

        The deadline fails the request's own future with ``RequestTimeout`` (one timer, no
        context manager per request); the caller's cancellation cancels only the wait.
        """
        self._ensure_connector()
        self._conversations[request.id] = request
        if self.is_connected:
            self._send(request.start_frame())
        limit = self.request_timeout if timeout is None else timeout
        expiry = asyncio.get_running_loop().call_later(limit, _expire, request, limit)
        try:
            return await request.future
        finally:
            expiry.cancel()
            self._conversations.pop(request.id, None)
            self._redirects.pop(request.id, None)

    def _credentials(self, credential: Credential | None = None) -> Credentials | None:
        chosen = credential or self.credential
        return chosen.to_credentials() if chosen is not None else None


def _expire(request: conv.Request[Any], limit: float) -> None:
    request.fail(exceptions.RequestTimeout(request.id, f"no reply within {limit} s", timeout=limit))

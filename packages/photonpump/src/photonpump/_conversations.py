"""Conversations: a request and every frame the node sends back under its correlation id.

A conversation knows the frame that starts it (sent again, unchanged, after a reconnect: same
correlation id, same event ids) and what to do with each reply. The client routes frames to it;
``NotHandled``, ``BadRequest`` and ``NotAuthenticated`` are interpreted once, in the client,
before reaching it. Reply parsers turn protobuf replies into the public types or typed errors;
anything that fails while parsing one reply fails that request only (``PayloadUnreadable``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from resilient_topology.eventstore.framing import Credentials, Frame, TcpCommand
from resilient_topology.eventstore.proto import messages_pb2 as pb

from . import exceptions
from .messages import AllStreamSlice, Event, StreamSlice, WriteResult

__all__ = ["Conversation", "Request", "parse_payload"]

C = TcpCommand
T = TypeVar("T")
M = TypeVar("M", bound=ProtoMessage)


def parse_payload(message_type: type[M], frame: Frame) -> M:
    message = message_type()
    try:
        message.ParseFromString(frame.payload)
    except DecodeError as exc:
        raise exceptions.PayloadUnreadable(
            frame.correlation_id, frame.payload, exc, f"cannot parse {message_type.__name__}: {exc}"
        ) from exc
    return message


class Conversation:
    """Base class: one correlation id, the frame that starts it, and reply handling."""

    #: whether the conversation must be sent to the leader (a ``require_master`` request)
    needs_leader = False

    def __init__(
        self,
        command: int,
        payload: bytes,
        credentials: Credentials | None,
        correlation_id: uuid.UUID | None = None,
    ) -> None:
        self.id = correlation_id or uuid.uuid4()
        self.command = command
        self.payload = payload
        self.credentials = credentials
        self.started_at = 0.0

    def start_frame(self) -> Frame:
        self.started_at = time.perf_counter()
        return Frame(self.command, self.id, self.payload, self.credentials)

    @property
    def done(self) -> bool:
        raise NotImplementedError

    def handle(self, frame: Frame) -> None:
        raise NotImplementedError

    def fail(self, error: BaseException) -> None:
        raise NotImplementedError

    def reply_after_reconnect(self) -> bool:
        """Whether to send the start frame again on a new connection (default: yes)."""
        return not self.done

    def connection_lost(self) -> None:
        """The connection carrying this conversation broke (it may be sent again)."""


class Request(Conversation, Generic[T]):
    """A request answered by one reply frame of the ``expects`` command."""

    def __init__(
        self,
        command: int,
        message: ProtoMessage | bytes,
        expects: int,
        parse: Callable[[Request[T], Frame], T],
        credentials: Credentials | None = None,
        *,
        needs_leader: bool = False,
        correlation_id: uuid.UUID | None = None,
        stream: str = "",
        event_number: int = -1,
    ) -> None:
        payload = message if isinstance(message, bytes) else message.SerializeToString()
        super().__init__(command, payload, credentials, correlation_id)
        self.expects = expects
        self.parse = parse
        self.needs_leader = needs_leader
        self.stream = stream  # for error messages
        self.event_number = event_number  # reads: the event asked for; writes: expected version
        self.raise_write_errors = False
        self.future: asyncio.Future[T] = asyncio.get_running_loop().create_future()

    @property
    def done(self) -> bool:
        return self.future.done()

    def handle(self, frame: Frame) -> None:
        if self.future.done():
            return
        if frame.command != self.expects:
            self.fail(exceptions.UnexpectedCommand(self.expects, frame.command, self.id))
            return
        try:
            result = self.parse(self, frame)
        except exceptions.PhotonPumpException as exc:
            self.fail(exc)
        except Exception as exc:  # a reply we cannot read fails this request only
            self.fail(exceptions.PayloadUnreadable(self.id, frame.payload, exc))
        else:
            self.future.set_result(result)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


# --- reply parsers ----------------------------------------------------------------------------


def pong(request: Request[float], frame: Frame) -> float:
    return time.perf_counter() - request.started_at


def write_completed(request: Request[WriteResult], frame: Frame) -> WriteResult:
    reply = parse_payload(pb.WriteEventsCompleted, frame)
    if reply.result == pb.AccessDenied:
        raise exceptions.AccessDenied(request.id, "WriteEvents", reply.message or None)
    if request.raise_write_errors and reply.result != pb.Success:
        if reply.result == pb.WrongExpectedVersion:
            raise exceptions.WrongExpectedVersion(
                request.id,
                reply.message,
                stream=request.stream,
                expected_version=request.event_number,
            )
        if reply.result == pb.StreamDeleted:
            raise exceptions.StreamDeleted(request.id, request.stream)
        name = pb.OperationResult.Name(reply.result)
        raise exceptions.WriteFailed(
            request.id, f"{name}: {reply.message}" if reply.message else name
        )
    return WriteResult.from_message(reply)


def delete_completed(request: Request[WriteResult], frame: Frame) -> Any:
    reply = parse_payload(pb.DeleteStreamCompleted, frame)
    if reply.result == pb.AccessDenied:
        raise exceptions.AccessDenied(request.id, "DeleteStream", reply.message or None)
    return reply


def _read_failure(request: Request[Any], name: str, error: str) -> Exception:
    """The typed error for a failed read (``name``: the result's enum name)."""
    stream, cid = request.stream, request.id
    if name == "NotFound":
        return exceptions.EventNotFound(cid, stream, request.event_number)
    if name == "NoStream":
        return exceptions.StreamNotFound(cid, stream)
    if name == "StreamDeleted":
        return exceptions.StreamDeleted(cid, stream)
    if name == "AccessDenied":
        return exceptions.AccessDenied(cid, "Read", error or None)
    return exceptions.ReadError(cid, stream, error or name)


def event_read(request: Request[Event], frame: Frame) -> Event:
    reply = parse_payload(pb.ReadEventCompleted, frame)
    if reply.result != pb.ReadEventCompleted.Success:
        name = pb.ReadEventCompleted.ReadEventResult.Name(reply.result)
        raise _read_failure(request, name, reply.error)
    return Event.from_indexed(reply.event)


def stream_read(request: Request[StreamSlice], frame: Frame) -> StreamSlice:
    reply = parse_payload(pb.ReadStreamEventsCompleted, frame)
    result = reply.result
    if result not in (
        pb.ReadStreamEventsCompleted.Success,
        pb.ReadStreamEventsCompleted.NotModified,
    ):
        name = pb.ReadStreamEventsCompleted.ReadStreamResult.Name(result)
        raise _read_failure(request, name, reply.error)
    return StreamSlice.from_message(reply)  # NotModified: an empty, unchanged page (R11)


def all_read(request: Request[AllStreamSlice], frame: Frame) -> AllStreamSlice:
    reply = parse_payload(pb.ReadAllEventsCompleted, frame)
    if reply.result == pb.ReadAllEventsCompleted.AccessDenied:
        raise exceptions.AccessDenied(request.id, "ReadAllEvents", reply.error or None)
    if reply.result == pb.ReadAllEventsCompleted.Error:
        raise exceptions.ReadError(request.id, "$all", reply.error or None)
    return AllStreamSlice.from_message(reply)


def _group_completed(message_type: Any, failed: Any) -> Any:
    def parse(request: Request[None], frame: Frame) -> None:
        reply = parse_payload(message_type, frame)
        if reply.result == 0:
            return
        name = type(reply).DESCRIPTOR.enum_types[0].values_by_number[reply.result].name
        if name == "AccessDenied":
            raise exceptions.AccessDenied(request.id, message_type.__name__, reply.reason or None)
        if name == "AlreadyExists":
            raise exceptions.SubscriptionAlreadyExists(request.id, reply.reason)
        text = f"{name}: {reply.reason}" if reply.reason else name
        raise failed(request.id, text, result=reply.result)

    return parse


group_created = _group_completed(
    pb.CreatePersistentSubscriptionCompleted, exceptions.SubscriptionCreationFailed
)
group_updated = _group_completed(
    pb.UpdatePersistentSubscriptionCompleted, exceptions.SubscriptionUpdateFailed
)
group_deleted = _group_completed(
    pb.DeletePersistentSubscriptionCompleted, exceptions.SubscriptionDeletionFailed
)

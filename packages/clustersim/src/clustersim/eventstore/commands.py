"""Requests to replies: one function per client command, over the shared :class:`ClusterState`.

Each handler gets the request frame and the :class:`Session` of its connection and returns the
reply frames; subscriptions also register pushes through the session. Payloads are parsed with
the generated messages; a payload that does not parse, lacks a required field or carries text
that is not UTF-8, is a ``BadRequest`` for that request only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from google.protobuf.message import DecodeError, Message

from resilient_topology.eventstore.framing import Frame, TcpCommand
from resilient_topology.eventstore.proto import messages_pb2 as pb

from .log import NewEventData, ReadResult, StoredEvent, WriteResult
from .persistent import (
    CreateResult,
    DeleteResult,
    Delivery,
    GroupSettings,
    NakAction,
    Refused,
    UpdateResult,
)
from .state import ClusterState

__all__ = ["HANDLERS", "BadRequestError", "Session", "enum_value"]

C = TcpCommand


class BadRequestError(Exception):
    """The request cannot be served as sent: answered with ``BadRequest`` and this text."""


class Session(Protocol):
    """What a handler may use of its connection."""

    state: ClusterState
    node: int

    def reply(self, request: Frame, command: int, message: Message | bytes) -> Frame: ...

    def push(self, frame: Frame) -> None: ...

    def user(self, request: Frame) -> str | None: ...

    def add_subscription(self, request: Frame, stream: str) -> None: ...

    def remove_subscription(self, request: Frame) -> bool: ...

    def add_consumer(self, request: Frame, key: tuple[str, str]) -> Any: ...

    def consumer_id(self, request: Frame) -> Any: ...

    def remove_consumer(self, request: Frame) -> None: ...


def parse(message_type: type[Message], frame: Frame) -> Any:
    message = message_type()
    try:
        message.ParseFromString(frame.payload)
    except DecodeError as exc:
        raise BadRequestError(f"invalid {message_type.__name__}: {exc}") from exc
    if not message.IsInitialized():
        missing = ", ".join(message.FindInitializationErrors())  # type: ignore[attr-defined]
        raise BadRequestError(f"{message_type.__name__} lacks required fields: {missing}")
    _check_text(message)
    return message


def _check_text(message: Message) -> None:
    """Refuse string fields that are not UTF-8: proto2 parsing keeps them as ``bytes``."""
    for field, value in message.ListFields():
        values = value if _repeated(field) else [value]
        if field.type == field.TYPE_STRING and any(isinstance(v, bytes) for v in values):
            raise BadRequestError(f"{field.full_name} is not valid UTF-8")
        if field.type == field.TYPE_MESSAGE:
            for item in values:
                _check_text(item)


def _repeated(field: Any) -> bool:
    """``is_repeated`` where protobuf has it (newer runtimes deprecate ``label``), else label."""
    flag = getattr(field, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return bool(field.label == field.LABEL_REPEATED)


def enum_value(value: int) -> Any:
    """An enum field's value from our own IntEnums (same numbers as the .proto's)."""
    return int(value)


def record(event: StoredEvent) -> pb.EventRecord:
    return pb.EventRecord(
        event_stream_id=event.stream,
        event_number=event.event_number,
        event_id=event.event_id,
        event_type=event.event_type,
        data_content_type=event.data_content_type,
        metadata_content_type=event.metadata_content_type,
        data=event.data,
        metadata=event.metadata,
        created=event.created_epoch_ms * 10_000 + 621_355_968_000_000_000,  # .NET ticks
        created_epoch=event.created_epoch_ms,
    )


def resolved(event: StoredEvent) -> pb.ResolvedEvent:
    return pb.ResolvedEvent(
        event=record(event), commit_position=event.position, prepare_position=event.position
    )


def _dummy_record() -> pb.EventRecord:
    """ReadEventCompleted requires an event even on failure: an empty record, as a server sends."""
    return pb.EventRecord(
        event_stream_id="",
        event_number=-1,
        event_id=b"\x00" * 16,
        event_type="",
        data_content_type=0,
        metadata_content_type=0,
        data=b"",
    )


def now_ms() -> int:
    return int(time.time() * 1000)


# --- simple commands ------------------------------------------------------------------------


def ping(session: Session, frame: Frame) -> list[Frame]:
    return [session.reply(frame, C.Pong, b"")]


def identify(session: Session, frame: Frame) -> list[Frame]:
    parse(pb.IdentifyClient, frame)
    return [session.reply(frame, C.ClientIdentified, b"")]


def authenticate(session: Session, frame: Frame) -> list[Frame]:
    # Credentials were checked before dispatch: reaching here means they are good (or absent).
    if frame.credentials is None:
        return [session.reply(frame, C.NotAuthenticated, b"no credentials")]
    return [session.reply(frame, C.Authenticated, b"")]


# --- writes ---------------------------------------------------------------------------------


def write_events(session: Session, frame: Frame) -> list[Frame]:
    request = parse(pb.WriteEvents, frame)
    state = session.state
    if not state.may_write(request.event_stream_id, session.user(frame)):
        reply = pb.WriteEventsCompleted(
            result=pb.AccessDenied, message="access denied", first_event_number=-1,
            last_event_number=-1,
        )  # fmt: skip
        return [session.reply(frame, C.WriteEventsCompleted, reply)]
    events = []
    for new in request.events:
        if len(new.event_id) != 16:
            raise BadRequestError("event_id must be 16 bytes")
        events.append(
            NewEventData(
                new.event_id,
                new.event_type,
                new.data,
                new.metadata,
                new.data_content_type,
                new.metadata_content_type,
            )
        )
    outcome = state.log.append(request.event_stream_id, request.expected_version, events, now_ms())
    reply = pb.WriteEventsCompleted(
        result=enum_value(outcome.result),
        first_event_number=outcome.first_event_number,
        last_event_number=outcome.last_event_number,
    )
    if outcome.message:
        reply.message = outcome.message
    if outcome.result == WriteResult.Success:
        reply.prepare_position = reply.commit_position = outcome.position
    state.appended(list(outcome.written))
    return [session.reply(frame, C.WriteEventsCompleted, reply)]


def delete_stream(session: Session, frame: Frame) -> list[Frame]:
    request = parse(pb.DeleteStream, frame)
    state = session.state
    if not state.may_write(request.event_stream_id, session.user(frame)):
        reply = pb.DeleteStreamCompleted(result=pb.AccessDenied, message="access denied")
        return [session.reply(frame, C.DeleteStreamCompleted, reply)]
    outcome = state.log.delete(
        request.event_stream_id, request.expected_version, hard=request.hard_delete
    )
    reply = pb.DeleteStreamCompleted(result=enum_value(outcome.result))
    if outcome.message:
        reply.message = outcome.message
    if outcome.result == WriteResult.Success:
        reply.prepare_position = reply.commit_position = outcome.position
    return [session.reply(frame, C.DeleteStreamCompleted, reply)]


# --- reads ----------------------------------------------------------------------------------

_READ_EVENT_RESULTS = {
    ReadResult.Success: pb.ReadEventCompleted.Success,
    ReadResult.NotFound: pb.ReadEventCompleted.NotFound,
    ReadResult.NoStream: pb.ReadEventCompleted.NoStream,
    ReadResult.StreamDeleted: pb.ReadEventCompleted.StreamDeleted,
}
_READ_STREAM_RESULTS = {
    ReadResult.Success: pb.ReadStreamEventsCompleted.Success,
    ReadResult.NoStream: pb.ReadStreamEventsCompleted.NoStream,
    ReadResult.StreamDeleted: pb.ReadStreamEventsCompleted.StreamDeleted,
}


def read_event(session: Session, frame: Frame) -> list[Frame]:
    request = parse(pb.ReadEvent, frame)
    reply = pb.ReadEventCompleted()
    if not session.state.may_read(request.event_stream_id, session.user(frame)):
        reply.result = pb.ReadEventCompleted.AccessDenied
        reply.error = "access denied"
        reply.event.event.CopyFrom(_dummy_record())
        return [session.reply(frame, C.ReadEventCompleted, reply)]
    result, event = session.state.log.read_event(request.event_stream_id, request.event_number)
    reply.result = _READ_EVENT_RESULTS[result]
    reply.event.event.CopyFrom(record(event) if event is not None else _dummy_record())
    return [session.reply(frame, C.ReadEventCompleted, reply)]


def _read_stream(backward: bool) -> Callable[[Session, Frame], list[Frame]]:
    answer = C.ReadStreamEventsBackwardCompleted if backward else C.ReadStreamEventsForwardCompleted

    def handle(session: Session, frame: Frame) -> list[Frame]:
        request = parse(pb.ReadStreamEvents, frame)
        log = session.state.log
        if not session.state.may_read(request.event_stream_id, session.user(frame)):
            reply = pb.ReadStreamEventsCompleted(
                result=pb.ReadStreamEventsCompleted.AccessDenied, next_event_number=-1,
                last_event_number=-1, is_end_of_stream=True,
                last_commit_position=log.last_position, error="access denied",
            )  # fmt: skip
            return [session.reply(frame, answer, reply)]
        read = log.read_backward if backward else log.read_forward
        page = read(request.event_stream_id, request.from_event_number, request.max_count)
        reply = pb.ReadStreamEventsCompleted(
            result=_READ_STREAM_RESULTS[page.result],
            next_event_number=page.next_event_number,
            last_event_number=page.last_event_number,
            is_end_of_stream=page.is_end_of_stream,
            last_commit_position=page.last_commit_position,
        )
        for event in page.events:
            reply.events.add().event.CopyFrom(record(event))
        return [session.reply(frame, answer, reply)]

    return handle


def _read_all(backward: bool) -> Callable[[Session, Frame], list[Frame]]:
    answer = C.ReadAllEventsBackwardCompleted if backward else C.ReadAllEventsForwardCompleted

    def handle(session: Session, frame: Frame) -> list[Frame]:
        request = parse(pb.ReadAllEvents, frame)
        if not session.state.may_read("", session.user(frame)):
            reply = pb.ReadAllEventsCompleted(
                commit_position=request.commit_position,
                prepare_position=request.prepare_position, next_commit_position=-1,
                next_prepare_position=-1, result=pb.ReadAllEventsCompleted.AccessDenied,
                error="access denied",
            )  # fmt: skip
            return [session.reply(frame, answer, reply)]
        log = session.state.log
        read = log.read_all_backward if backward else log.read_all_forward
        page = read(request.commit_position, request.max_count)
        reply = pb.ReadAllEventsCompleted(
            commit_position=request.commit_position,
            prepare_position=request.prepare_position,
            next_commit_position=page.next_position,
            next_prepare_position=page.next_position,
        )
        for event in page.events:
            reply.events.append(resolved(event))
        return [session.reply(frame, answer, reply)]

    return handle


# --- volatile subscriptions -----------------------------------------------------------------


def subscribe(session: Session, frame: Frame) -> list[Frame]:
    request = parse(pb.SubscribeToStream, frame)
    stream = request.event_stream_id
    if not session.state.may_read(stream, session.user(frame)):
        dropped = pb.SubscriptionDropped(reason=pb.SubscriptionDropped.AccessDenied)
        return [session.reply(frame, C.SubscriptionDropped, dropped)]
    session.add_subscription(frame, stream)
    log = session.state.log
    confirmation = pb.SubscriptionConfirmation(last_commit_position=log.last_position)
    if stream:
        confirmation.last_event_number = log.current_version(stream)
    return [session.reply(frame, C.SubscriptionConfirmation, confirmation)]


def unsubscribe(session: Session, frame: Frame) -> list[Frame]:
    if not session.remove_subscription(frame):
        # It also ends a persistent subscription (clients stop one this way); its in-flight
        # events go back to the group. The server answers only conversations it knows.
        consumer = session.consumer_id(frame)
        for group in session.state.registry.all_groups():
            if consumer in group.consumers:
                group.disconnect(consumer, time.monotonic())
                session.state.drop_consumers([consumer], pb.SubscriptionDropped.Unsubscribed)
                session.state.pump()
        return []
    dropped = pb.SubscriptionDropped(reason=pb.SubscriptionDropped.Unsubscribed)
    return [session.reply(frame, C.SubscriptionDropped, dropped)]


# --- persistent subscriptions ---------------------------------------------------------------


def _settings(request: Any) -> GroupSettings:
    try:
        return GroupSettings(
            resolve_link_tos=request.resolve_link_tos,
            start_from=request.start_from,
            message_timeout=request.message_timeout_milliseconds / 1000,
            max_retry_count=request.max_retry_count,
            strategy=request.named_consumer_strategy
            or ("RoundRobin" if request.prefer_round_robin else "DispatchToSingle"),
            subscriber_max_count=request.subscriber_max_count,
        )
    except ValueError as exc:
        raise BadRequestError(str(exc)) from exc


def create_group(session: Session, frame: Frame) -> list[Frame]:
    request = parse(pb.CreatePersistentSubscription, frame)
    state, stream = session.state, request.event_stream_id
    reply = pb.CreatePersistentSubscriptionCompleted(
        result=pb.CreatePersistentSubscriptionCompleted.Success
    )
    if not state.may_read(stream, session.user(frame)):
        reply.result, reply.reason = pb.CreatePersistentSubscriptionCompleted.AccessDenied, "denied"
    else:
        result = state.registry.create(
            stream,
            request.subscription_group_name,
            _settings(request),
            state.existing_candidates(stream),
        )
        if result is CreateResult.AlreadyExists:
            reply.result = pb.CreatePersistentSubscriptionCompleted.AlreadyExists
            reply.reason = f"group {request.subscription_group_name} already exists"
    return [session.reply(frame, C.CreatePersistentSubscriptionCompleted, reply)]


def update_group(session: Session, frame: Frame) -> list[Frame]:
    request = parse(pb.UpdatePersistentSubscription, frame)
    state = session.state
    reply = pb.UpdatePersistentSubscriptionCompleted(
        result=pb.UpdatePersistentSubscriptionCompleted.Success
    )
    outcome = state.registry.update(
        request.event_stream_id, request.subscription_group_name, _settings(request)
    )
    if outcome.result is UpdateResult.DoesNotExist:
        reply.result = pb.UpdatePersistentSubscriptionCompleted.DoesNotExist
        reply.reason = "no such group"
    state.drop_consumers(list(outcome.dropped), pb.SubscriptionDropped.Unsubscribed)
    return [session.reply(frame, C.UpdatePersistentSubscriptionCompleted, reply)]


def delete_group(session: Session, frame: Frame) -> list[Frame]:
    request = parse(pb.DeletePersistentSubscription, frame)
    state = session.state
    reply = pb.DeletePersistentSubscriptionCompleted(
        result=pb.DeletePersistentSubscriptionCompleted.Success
    )
    outcome = state.registry.delete(request.event_stream_id, request.subscription_group_name)
    if outcome.result is DeleteResult.DoesNotExist:
        reply.result = pb.DeletePersistentSubscriptionCompleted.DoesNotExist
        reply.reason = "no such group"
    state.drop_consumers(list(outcome.dropped), int(outcome.reason))
    return [session.reply(frame, C.DeletePersistentSubscriptionCompleted, reply)]


def connect_group(session: Session, frame: Frame) -> list[Frame]:
    request = parse(pb.ConnectToPersistentSubscription, frame)
    state, stream = session.state, request.event_stream_id
    if not state.may_read(stream, session.user(frame)):
        dropped = pb.SubscriptionDropped(reason=pb.SubscriptionDropped.AccessDenied)
        return [session.reply(frame, C.SubscriptionDropped, dropped)]
    key = (stream, request.subscription_id)
    group = state.registry.get(*key)
    if group is None:
        dropped = pb.SubscriptionDropped(reason=pb.SubscriptionDropped.NotFound)
        return [session.reply(frame, C.SubscriptionDropped, dropped)]
    consumer = session.add_consumer(frame, key)
    allowed = max(request.allowed_in_flight_messages, 1)
    connected = group.connect(consumer, allowed, time.monotonic())
    if isinstance(connected, Refused):
        session.remove_consumer(frame)
        dropped = pb.SubscriptionDropped(reason=enum_value(connected.reason))
        return [session.reply(frame, C.SubscriptionDropped, dropped)]
    confirmation = pb.PersistentSubscriptionConfirmation(
        last_commit_position=state.log.last_position,
        subscription_id=group.subscription_id,
        last_event_number=state.log.current_version(stream),
    )
    reply = session.reply(frame, C.PersistentSubscriptionConfirmation, confirmation)
    session.push(reply)
    state.pump()  # deliveries follow the confirmation
    return []


def delivery_frame(session: Session, request: Frame, delivery: Delivery) -> Frame:
    event: StoredEvent = delivery.candidate.payload  # type: ignore[assignment]
    appeared = pb.PersistentSubscriptionStreamEventAppeared()
    appeared.event.event.CopyFrom(record(event))
    return session.reply(request, C.PersistentSubscriptionStreamEventAppeared, appeared)


def _group_of(session: Session, subscription_id: str) -> Any:
    return session.state.registry.by_subscription_id(subscription_id)


def ack(session: Session, frame: Frame) -> list[Frame]:
    request = parse(pb.PersistentSubscriptionAckEvents, frame)
    group = _group_of(session, request.subscription_id)
    if group is not None:
        ids = list(request.processed_event_ids)
        group.ack(session.consumer_id(frame), ids, time.monotonic())
        session.state.pump()
    return []


def nak(session: Session, frame: Frame) -> list[Frame]:
    request = parse(pb.PersistentSubscriptionNakEvents, frame)
    group = _group_of(session, request.subscription_id)
    if group is not None:
        consumer = session.consumer_id(frame)
        ids = list(request.processed_event_ids)
        outcome = group.nak(consumer, ids, NakAction(request.action), time.monotonic())
        if outcome.drop_consumer:
            session.state.drop_consumers([consumer], pb.SubscriptionDropped.Unsubscribed)
        session.state.pump()
    return []


HANDLERS: dict[int, Callable[[Session, Frame], list[Frame]]] = {
    C.Ping: ping,
    C.IdentifyClient: identify,
    C.Authenticate: authenticate,
    C.WriteEvents: write_events,
    C.DeleteStream: delete_stream,
    C.ReadEvent: read_event,
    C.ReadStreamEventsForward: _read_stream(backward=False),
    C.ReadStreamEventsBackward: _read_stream(backward=True),
    C.ReadAllEventsForward: _read_all(backward=False),
    C.ReadAllEventsBackward: _read_all(backward=True),
    C.SubscribeToStream: subscribe,
    C.UnsubscribeFromStream: unsubscribe,
    C.CreatePersistentSubscription: create_group,
    C.UpdatePersistentSubscription: update_group,
    C.DeletePersistentSubscription: delete_group,
    C.ConnectToPersistentSubscription: connect_group,
    C.PersistentSubscriptionAckEvents: ack,
    C.PersistentSubscriptionNakEvents: nak,
}

# Requests that only the leader serves when they ask for it (``require_master``), and those it
# always serves (persistent subscriptions live on the leader).
LEADER_ALWAYS = frozenset(
    {
        C.CreatePersistentSubscription,
        C.UpdatePersistentSubscription,
        C.DeletePersistentSubscription,
        C.ConnectToPersistentSubscription,
    }
)
REQUIRE_MASTER_MESSAGES: dict[int, type[Message]] = {
    C.WriteEvents: pb.WriteEvents,
    C.DeleteStream: pb.DeleteStream,
    C.ReadEvent: pb.ReadEvent,
    C.ReadStreamEventsForward: pb.ReadStreamEvents,
    C.ReadStreamEventsBackward: pb.ReadStreamEvents,
    C.ReadAllEventsForward: pb.ReadAllEvents,
    C.ReadAllEventsBackward: pb.ReadAllEvents,
}

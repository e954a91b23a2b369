"""photonpump's exceptions: one tree, rooted in the toolkit's :class:`TopologyError`.

::

    PhotonPumpException(TopologyError)
    ├── ConversationException                .conversation_id, .message
    │   ├── StreamNotFound, StreamDeleted, ReadError, EventNotFound, AccessDenied
    │   ├── WrongExpectedVersion             opt-in typed write failure
    │   ├── BadRequest(RemoteProtocolError), NotAuthenticated
    │   ├── NotHandled                       .reason
    │   │   └── NotReady, TooBusy (retryable), NotMaster (.master_info), IsReadOnly
    │   ├── MessageUnhandled
    │   ├── PayloadUnreadable(ValueError)    .payload, .exn
    │   ├── UnexpectedCommand(RemoteProtocolError)
    │   ├── SubscriptionCreationFailed       .reason, .result
    │   │   └── SubscriptionAlreadyExists
    │   ├── SubscriptionUpdateFailed, SubscriptionDeletionFailed
    │   ├── SubscriptionFailed               .reason
    │   ├── RequestTimeout(TimeoutError)
    │   └── ConnectionClosed(ConnectionFailure)
    │       └── ClientClosed
    └── DiscoveryFailed(ReconnectExhausted)

Positional constructor shapes follow photon-pump 0.9.5 so code that builds or catches them keeps
working; ``str(exc)`` is the human message only, and retry decisions read ``retryable``.
The original's ``NotReady``/``TooBusy``/``NotMaster`` were siblings of ``NotHandled``; here they
are its subclasses, so ``except NotHandled`` sees every "not handled" reply.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from uuid import UUID

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from resilient_topology.errors import (
    RETRYABLE_LABEL,
    ConnectionFailure,
    ReconnectExhausted,
    RemoteProtocolError,
    TopologyError,
)
from resilient_topology.eventstore.proto import messages_pb2

if TYPE_CHECKING:
    from .messages import MasterInfo

__all__ = [
    "AccessDenied",
    "BadRequest",
    "ClientClosed",
    "ConnectionClosed",
    "ConversationException",
    "DiscoveryFailed",
    "EventNotFound",
    "IsReadOnly",
    "MessageUnhandled",
    "NotAuthenticated",
    "NotHandled",
    "NotMaster",
    "NotReady",
    "PayloadUnreadable",
    "PhotonPumpException",
    "ReadError",
    "RequestTimeout",
    "StreamDeleted",
    "StreamNotFound",
    "SubscriptionAlreadyExists",
    "SubscriptionCreationFailed",
    "SubscriptionDeletionFailed",
    "SubscriptionFailed",
    "SubscriptionUpdateFailed",
    "TooBusy",
    "UnexpectedCommand",
    "WriteFailed",
    "WrongExpectedVersion",
]

_NOT_HANDLED_REASON = messages_pb2.NotHandled.NotHandledReason
_DROP_REASON = messages_pb2.SubscriptionDropped.SubscriptionDropReason


def _name(enum: EnumTypeWrapper, value: int) -> str:
    """The protocol's name for ``value``, or the number when a newer server sent an unknown one."""
    try:
        return enum.Name(value)
    except ValueError:
        return str(value)


class PhotonPumpException(TopologyError):
    """Root of every error photonpump raises; itself a core ``TopologyError``."""


class ConversationException(PhotonPumpException):
    """Raised when one request (a conversation) fails; the connection stays usable."""

    def __init__(
        self, conversation_id: UUID | None, message: str = "", *, labels: Iterable[str] = ()
    ) -> None:
        super().__init__(message, labels=labels)
        self.conversation_id = conversation_id
        self.message = message


class StreamNotFound(ConversationException):
    """Raised by reads of a stream that does not exist (``NoStream``)."""

    def __init__(self, conversation_id: UUID | None, stream: str) -> None:
        super().__init__(conversation_id, f"stream {stream!r} does not exist")
        self.stream = stream


class StreamDeleted(ConversationException):
    """Raised by reads of a deleted stream, and by opt-in typed writes to one."""

    def __init__(self, conversation_id: UUID | None, stream: str) -> None:
        super().__init__(conversation_id, f"stream {stream!r} has been deleted")
        self.stream = stream


class ReadError(ConversationException):
    """Raised when the server answers a read with ``Error``; ``error`` is its text."""

    def __init__(self, conversation_id: UUID | None, stream: str, error: object = None) -> None:
        reason = f": {error}" if error else ""
        super().__init__(conversation_id, f"reading {stream!r} failed{reason}")
        self.stream = stream
        self.error = error


class AccessDenied(ConversationException):
    """Raised when the credentials lack permission for a read, write or subscription.

    ``type`` names the kind of request (the original passed a conversation class name);
    extra keyword details such as ``stream`` are kept in ``details``.
    """

    def __init__(
        self, conversation_id: UUID | None, type: str, error: object = None, **details: object
    ) -> None:
        reason = f": {error}" if error else ""
        super().__init__(conversation_id, f"access denied for {type}{reason}")
        self.conversation_type = type
        self.error = error
        self.details = details
        stream = details.get("stream")
        self.stream = stream if isinstance(stream, str) else None


class EventNotFound(ConversationException):
    """Raised by ``get_event`` when the stream exists but the event number does not."""

    def __init__(self, conversation_id: UUID | None, stream: str, event_number: int) -> None:
        super().__init__(conversation_id, f"no event {event_number} in stream {stream!r}")
        self.stream = stream
        self.event_number = event_number


class WrongExpectedVersion(ConversationException):
    """Raised only when a caller opts in to typed write errors and the version check fails.

    By default a write returns its result instead (the original's behaviour). The legacy protocol
    does not report the stream's current version, so ``current_version`` is usually None.
    """

    def __init__(
        self,
        conversation_id: UUID | None,
        message: str = "",
        *,
        stream: str | None = None,
        expected_version: int | None = None,
        current_version: int | None = None,
    ) -> None:
        text = message or f"wrong expected version {expected_version} for stream {stream!r}"
        super().__init__(conversation_id, text)
        self.stream = stream
        self.expected_version = expected_version
        self.current_version = current_version


class WriteFailed(ConversationException):
    """Raised, when typed write errors are asked for, for a write that timed out on the node
    (prepare, commit or forward timeout) or failed otherwise; the write may or may not land."""


class BadRequest(ConversationException, RemoteProtocolError):
    """Raised when the server answers a request with a BadRequest frame; the text is its reason."""


class NotAuthenticated(ConversationException):
    """Raised when the server rejects a request's credentials (NotAuthenticated frame)."""


class NotHandled(ConversationException):
    """Raised when the server answers NotHandled; ``reason`` is the ``NotHandledReason`` number.

    The subclasses cover the known reasons; this class itself is raised for an unknown one.
    """

    def __init__(
        self,
        conversation_id: UUID | None,
        reason: int,
        message: str = "",
        *,
        labels: Iterable[str] = (),
    ) -> None:
        text = message or f"request not handled: {_name(_NOT_HANDLED_REASON, reason)}"
        super().__init__(conversation_id, text, labels=labels)
        self.reason = reason


class NotReady(NotHandled):
    """Raised when the node is still starting and a retry budget ran out; retryable."""

    def __init__(self, conversation_id: UUID | None) -> None:
        super().__init__(
            conversation_id,
            _NOT_HANDLED_REASON.NotReady,
            "request not handled: server not ready",
            labels=(RETRYABLE_LABEL,),
        )


class TooBusy(NotHandled):
    """Raised when the node is overloaded and a retry budget ran out; retryable."""

    def __init__(self, conversation_id: UUID | None) -> None:
        super().__init__(
            conversation_id,
            _NOT_HANDLED_REASON.TooBusy,
            "request not handled: server too busy",
            labels=(RETRYABLE_LABEL,),
        )


class NotMaster(NotHandled):
    """Raised when a require-master request reached a non-master and redirection failed.

    ``master_info`` holds the master's endpoints the node pointed to, when it sent them.
    """

    def __init__(self, conversation_id: UUID | None, master_info: MasterInfo | None = None) -> None:
        where = f" (master at {master_info.tcp[0]}:{master_info.tcp[1]})" if master_info else ""
        super().__init__(
            conversation_id,
            _NOT_HANDLED_REASON.NotMaster,
            f"request not handled: must be sent to the master{where}",
            labels=(RETRYABLE_LABEL,),
        )
        self.master_info = master_info


class IsReadOnly(NotHandled):
    """Raised when a write or persistent-subscription request reached a read-only replica."""

    def __init__(self, conversation_id: UUID | None) -> None:
        super().__init__(
            conversation_id,
            _NOT_HANDLED_REASON.IsReadOnly,
            "request not handled: not supported on a read-only replica",
        )


class MessageUnhandled(ConversationException):
    """Raised when a reply reaches a conversation that cannot handle it; ``reason`` says why."""

    def __init__(self, conversation_id: UUID | None, message: str, reason: object) -> None:
        super().__init__(conversation_id, message)
        self.reason = reason


class PayloadUnreadable(ConversationException, ValueError):
    """Raised when a reply cannot be parsed, and by ``json()`` on event data that is not JSON.

    It fails only the request concerned. ``exn`` is the underlying error (also ``__cause__``
    when raised with ``from``). A ``ValueError``, as the original's JSON errors were.
    """

    def __init__(
        self,
        conversation_id: UUID | None,
        payload: bytes | str,
        exn: BaseException | None = None,
        message: str = "",
    ) -> None:
        detail = f": {exn}" if exn is not None else ""
        super().__init__(conversation_id, message or f"the payload could not be read{detail}")
        self.payload = payload
        self.exn = exn


class UnexpectedCommand(ConversationException, RemoteProtocolError):
    """Raised when the server answers a request with a command it cannot send in that place."""

    def __init__(
        self, expected: object, actual: object, conversation_id: UUID | None = None
    ) -> None:
        super().__init__(conversation_id, f"unexpected command {actual}, expected {expected}")
        self.expected = expected
        self.actual = actual


def _reason_text(prefix: str, reason: int | str) -> tuple[str, int | None]:
    """The original passed either the server's reason text or a ``SubscriptionDropReason``."""
    if isinstance(reason, int):
        return f"{prefix}: {_name(_DROP_REASON, reason)}", reason
    return (f"{prefix}: {reason}" if reason else prefix), None


class SubscriptionCreationFailed(ConversationException):
    """Raised when creating a persistent subscription, or subscribing to a stream, fails.

    ``reason`` is the server's text or drop-reason number; ``result`` is the
    ``CreatePersistentSubscriptionResult`` number when the failure came from creation.
    """

    def __init__(
        self, conversation_id: UUID | None, reason: int | str = "", *, result: int | None = None
    ) -> None:
        text, drop_reason = _reason_text("subscription could not be created", reason)
        super().__init__(conversation_id, text)
        self.reason = reason
        self.drop_reason = drop_reason
        self.result = result


class SubscriptionAlreadyExists(SubscriptionCreationFailed):
    """Raised when a persistent subscription group already exists.

    Distinct so a caller whose first attempt was ambiguous (a reconnect re-sent it) may treat it
    as success.
    """

    def __init__(self, conversation_id: UUID | None, reason: int | str = "") -> None:
        super().__init__(
            conversation_id,
            reason,
            result=messages_pb2.CreatePersistentSubscriptionCompleted.AlreadyExists,
        )


class SubscriptionUpdateFailed(ConversationException):
    """Raised when updating a persistent subscription fails (``DoesNotExist`` or ``Fail``).

    ``reason`` is the server's text; ``result`` the ``UpdatePersistentSubscriptionResult`` number.
    """

    def __init__(
        self, conversation_id: UUID | None, reason: str = "", *, result: int | None = None
    ) -> None:
        super().__init__(
            conversation_id, _reason_text("subscription could not be updated", reason)[0]
        )
        self.reason = reason
        self.result = result


class SubscriptionDeletionFailed(ConversationException):
    """Raised when deleting a persistent subscription fails (``DoesNotExist`` or ``Fail``).

    ``reason`` is the server's text; ``result`` the ``DeletePersistentSubscriptionResult`` number.
    """

    def __init__(
        self, conversation_id: UUID | None, reason: str = "", *, result: int | None = None
    ) -> None:
        super().__init__(
            conversation_id, _reason_text("subscription could not be deleted", reason)[0]
        )
        self.reason = reason
        self.result = result


class SubscriptionFailed(ConversationException):
    """Raised through a subscription's events when the server drops a live subscription.

    ``reason`` is the ``SubscriptionDropReason`` number (or a text); ``drop_reason`` is the
    number only.
    """

    def __init__(self, conversation_id: UUID | None, reason: int | str = "") -> None:
        text, drop_reason = _reason_text("subscription dropped", reason)
        super().__init__(conversation_id, text)
        self.reason = reason
        self.drop_reason = drop_reason


class RequestTimeout(ConversationException, TimeoutError):
    """Raised when a request's deadline passes before its reply arrives.

    The request may still have taken effect on the server (a write in particular).
    """

    def __init__(
        self, conversation_id: UUID | None, message: str = "", *, timeout: float | None = None
    ) -> None:
        after = f" after {timeout:g}s" if timeout is not None else ""
        super().__init__(conversation_id, message or f"no reply{after}")
        self.timeout = timeout


class ConnectionClosed(ConversationException, ConnectionFailure):
    """Raised for a pending request or subscription when its connection ends for good."""

    def __init__(self, conversation_id: UUID | None = None, message: str = "") -> None:
        super().__init__(conversation_id, message or "the connection was closed")


class ClientClosed(ConnectionClosed):
    """Raised for every pending request and subscription when ``close()`` is called."""

    def __init__(self, conversation_id: UUID | None = None, message: str = "") -> None:
        super().__init__(conversation_id, message or "the client was closed")


class DiscoveryFailed(PhotonPumpException, ReconnectExhausted):
    """Raised when discovery gives up: no node could be reached within the retry policy.

    Every pending request and subscription fails with it. It takes no arguments, as the
    original's did; ``attempts`` and ``last_error`` say what was tried.
    """

    def __init__(
        self,
        message: str = "discovery failed: no node could be reached",
        *,
        attempts: int = 0,
        last_error: BaseException | None = None,
    ) -> None:
        super().__init__(message, attempts=attempts, last_error=last_error)

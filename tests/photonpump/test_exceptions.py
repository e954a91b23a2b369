"""photonpump.exceptions: one tree under the core's TopologyError, original constructor shapes."""

from __future__ import annotations

import inspect
import uuid

import pytest
from photonpump import exceptions as exc
from photonpump.messages import MasterInfo, SubscriptionDropReason

from resilient_topology.errors import (
    ConnectionFailure,
    ReconnectExhausted,
    RemoteProtocolError,
    TopologyError,
)

CID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def _classes() -> list[type[BaseException]]:
    return [
        value
        for value in vars(exc).values()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == exc.__name__
    ]


def test_every_exception_is_public_and_in_the_tree() -> None:
    classes = _classes()
    assert {c.__name__ for c in classes} == set(exc.__all__)
    for cls in classes:
        assert issubclass(cls, exc.PhotonPumpException)
        assert issubclass(cls, TopologyError)
        assert cls.__doc__, cls.__name__


def test_all_is_sorted_without_duplicates() -> None:
    assert list(exc.__all__) == sorted(set(exc.__all__))


ORIGINAL_CONVERSATION_ERRORS = [
    "StreamNotFound",
    "StreamDeleted",
    "ReadError",
    "AccessDenied",
    "EventNotFound",
    "BadRequest",
    "NotAuthenticated",
    "MessageUnhandled",
    "NotReady",
    "TooBusy",
    "NotMaster",
    "NotHandled",
    "PayloadUnreadable",
    "SubscriptionCreationFailed",
    "SubscriptionFailed",
    "UnexpectedCommand",
]


@pytest.mark.parametrize("name", ORIGINAL_CONVERSATION_ERRORS)
def test_original_names_are_conversation_exceptions(name: str) -> None:
    assert issubclass(getattr(exc, name), exc.ConversationException)


@pytest.mark.parametrize(
    ("error", "bases"),
    [
        (exc.BadRequest(CID, "bad"), (RemoteProtocolError, ValueError)),
        (exc.UnexpectedCommand("Pong", "WriteEventsCompleted"), (RemoteProtocolError, ValueError)),
        (exc.PayloadUnreadable(CID, b"\x00", None), (ValueError,)),
        (exc.RequestTimeout(CID, timeout=2.5), (TimeoutError,)),
        (exc.ConnectionClosed(CID), (ConnectionFailure, ConnectionError)),
        (exc.ClientClosed(), (exc.ConnectionClosed, ConnectionFailure, ConnectionError)),
        (exc.DiscoveryFailed(), (ReconnectExhausted, ConnectionFailure, ConnectionError)),
        (exc.NotReady(CID), (exc.NotHandled,)),
        (exc.TooBusy(CID), (exc.NotHandled,)),
        (exc.NotMaster(CID), (exc.NotHandled,)),
        (exc.IsReadOnly(CID), (exc.NotHandled,)),
        (exc.SubscriptionAlreadyExists(CID, "exists"), (exc.SubscriptionCreationFailed,)),
    ],
)
def test_errors_are_also_core_and_builtin_errors(
    error: exc.PhotonPumpException, bases: tuple[type[BaseException], ...]
) -> None:
    for base in bases:
        assert isinstance(error, base), base
    assert isinstance(error, exc.PhotonPumpException)


def test_discovery_failed_is_not_tied_to_a_conversation() -> None:
    error = exc.DiscoveryFailed(attempts=3, last_error=OSError("refused"))
    assert not isinstance(error, exc.ConversationException)
    assert error.attempts == 3
    assert isinstance(error.last_error, OSError)
    assert "discovery failed" in str(exc.DiscoveryFailed())


def test_request_timeout_is_caught_as_a_timeout() -> None:
    try:
        raise exc.RequestTimeout(CID, timeout=2.5)
    except TimeoutError as caught:
        error = caught
    assert isinstance(error, exc.RequestTimeout)
    assert error.conversation_id == CID
    assert error.timeout == 2.5
    assert "2.5s" in str(error)


def test_client_closed_is_caught_as_a_connection_error() -> None:
    try:
        raise exc.ClientClosed(CID)
    except ConnectionError as caught:
        error = caught
    assert isinstance(error, exc.ClientClosed)
    assert error.conversation_id == CID
    assert str(error) == "the client was closed"


def test_conversation_exception_keeps_id_and_message() -> None:
    error = exc.ConversationException(CID, "it broke")
    assert (error.conversation_id, error.message, str(error)) == (CID, "it broke", "it broke")


def test_original_constructor_shapes() -> None:
    assert exc.StreamNotFound(CID, "ponies").stream == "ponies"
    assert exc.StreamDeleted(CID, "ponies").stream == "ponies"
    read_error = exc.ReadError(CID, "ponies", "disk on fire")
    assert (read_error.stream, read_error.error) == ("ponies", "disk on fire")
    assert "disk on fire" in str(read_error)
    missing = exc.EventNotFound(CID, "ponies", 12)
    assert (missing.stream, missing.event_number, missing.conversation_id) == ("ponies", 12, CID)
    denied = exc.AccessDenied(CID, "ReadStreamEvents", "no", stream="ponies")
    assert (denied.conversation_type, denied.error, denied.stream) == (
        "ReadStreamEvents",
        "no",
        "ponies",
    )
    assert denied.details == {"stream": "ponies"}
    unhandled = exc.MessageUnhandled(CID, "not for me", "late")
    assert (unhandled.message, unhandled.reason) == ("not for me", "late")
    cause = KeyError("x")
    unreadable = exc.PayloadUnreadable(CID, b"\x01\x02", cause)
    assert (unreadable.payload, unreadable.exn) == (b"\x01\x02", cause)
    unexpected = exc.UnexpectedCommand(("Pong",), "WriteEventsCompleted")
    assert (unexpected.expected, unexpected.actual) == (("Pong",), "WriteEventsCompleted")
    assert unexpected.conversation_id is None
    assert exc.BadRequest(CID, "garbage").message == "garbage"
    assert exc.NotAuthenticated(CID, "bad password").conversation_id == CID
    assert exc.SubscriptionCreationFailed(CID, "already there").reason == "already there"


def test_not_handled_reasons() -> None:
    assert exc.NotReady(CID).reason == 0
    assert exc.TooBusy(CID).reason == 1
    assert exc.NotMaster(CID).reason == 2
    assert exc.IsReadOnly(CID).reason == 3
    unknown = exc.NotHandled(CID, 99)
    assert unknown.reason == 99
    assert "99" in str(unknown)
    assert "read-only" in str(exc.IsReadOnly(CID))


def test_retryable_labels() -> None:
    assert exc.NotReady(CID).retryable
    assert exc.TooBusy(CID).retryable
    assert exc.NotMaster(CID).retryable
    assert not exc.IsReadOnly(CID).retryable
    assert not exc.AccessDenied(CID, "write").retryable
    assert not exc.RequestTimeout(CID).retryable


def test_not_master_carries_the_master_endpoints() -> None:
    master = MasterInfo(("10.0.0.2", 1113), ("10.0.0.2", 2113), ("10.0.0.2", 1115))
    error = exc.NotMaster(CID, master)
    assert error.master_info == master
    assert "10.0.0.2:1113" in str(error)
    assert exc.NotMaster(CID).master_info is None


def test_subscription_failed_names_the_drop_reason() -> None:
    error = exc.SubscriptionFailed(CID, SubscriptionDropReason.AccessDenied)
    assert error.reason == SubscriptionDropReason.AccessDenied
    assert error.drop_reason == 1
    assert "AccessDenied" in str(error)
    unknown = exc.SubscriptionFailed(CID, 42)
    assert "42" in str(unknown)
    text = exc.SubscriptionFailed(CID, "buffer overflow")
    assert (text.drop_reason, text.reason) == (None, "buffer overflow")
    assert "buffer overflow" in str(text)


def test_subscription_already_exists_is_distinct() -> None:
    error = exc.SubscriptionAlreadyExists(CID, "group exists")
    assert error.result == 1  # CreatePersistentSubscriptionResult.AlreadyExists
    assert error.reason == "group exists"
    failed = exc.SubscriptionCreationFailed(CID, "nope", result=2)
    assert not isinstance(failed, exc.SubscriptionAlreadyExists)
    assert failed.result == 2


def test_update_and_delete_failures_carry_result() -> None:
    update = exc.SubscriptionUpdateFailed(CID, "missing", result=1)
    delete = exc.SubscriptionDeletionFailed(CID, "missing", result=1)
    assert (update.reason, update.result) == ("missing", 1)
    assert (delete.reason, delete.result) == ("missing", 1)
    assert "updated" in str(update)
    assert "deleted" in str(delete)


def test_wrong_expected_version_carries_versions() -> None:
    error = exc.WrongExpectedVersion(CID, stream="ponies", expected_version=3, current_version=5)
    assert (error.stream, error.expected_version, error.current_version) == ("ponies", 3, 5)
    assert "ponies" in str(error)
    assert exc.WrongExpectedVersion(CID, "server said no").message == "server said no"

"""The toolkit's one error tree.

Every package of the toolkit raises subclasses of these, so a single ``except`` clause works
across all of them::

    TopologyError(Exception)                        .labels, .retryable
    ├── ConfigurationError(TopologyError, ValueError)
    │   └── InvalidAddress                          a host:port that cannot be parsed
    ├── ServerSelectionError(TopologyError)
    │   └── ServerSelectionTimeout(ServerSelectionError, TimeoutError)
    ├── ConnectionFailure(TopologyError, ConnectionError)
    │   ├── HeartbeatFailed                         .address, .duration
    │   └── ReconnectExhausted                      .attempts, .last_error
    └── ProtocolError(TopologyError)                abstract: raise one of the two below
        ├── LocalProtocolError                      we were about to send something invalid
        └── RemoteProtocolError(ProtocolError, ValueError)
            ├── InvalidHelloReply                   a hello/isMaster reply we cannot trust
            └── InvalidGossip                       a gossip document we cannot trust

Retry decisions read ``labels`` and types, never message text.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ConfigurationError",
    "ConnectionFailure",
    "HeartbeatFailed",
    "InvalidAddress",
    "InvalidGossip",
    "InvalidHelloReply",
    "LocalProtocolError",
    "ProtocolError",
    "ReconnectExhausted",
    "RemoteProtocolError",
    "ServerSelectionError",
    "ServerSelectionTimeout",
    "TopologyError",
    "describe_error",
]

RETRYABLE_LABEL = "RetryableError"


class TopologyError(Exception):
    """Root of every error the toolkit raises."""

    def __init__(self, message: str = "", *, labels: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.labels: frozenset[str] = frozenset(labels)

    def has_label(self, label: str) -> bool:
        return label in self.labels

    @property
    def retryable(self) -> bool:
        """True when the operation that failed may safely be tried again."""
        return RETRYABLE_LABEL in self.labels


class ConfigurationError(TopologyError, ValueError):
    """Settings, URIs or arguments that cannot work."""


class InvalidAddress(ConfigurationError):
    """A server address that cannot be parsed."""


class ServerSelectionError(TopologyError):
    """No server suits the operation (for a reason other than running out of time)."""


class ServerSelectionTimeout(ServerSelectionError, TimeoutError):
    """No suitable server appeared before the deadline."""


class ConnectionFailure(TopologyError, ConnectionError):
    """A server could not be reached or stopped answering."""


class HeartbeatFailed(ConnectionFailure):
    """A monitoring check of one server failed; ``__cause__`` holds the transport error."""

    def __init__(self, message: str, *, address: object, duration: float | None = None) -> None:
        super().__init__(message, labels=(RETRYABLE_LABEL,))
        self.address = address
        self.duration = duration


class ReconnectExhausted(ConnectionFailure):
    """A reconnect policy ran out of attempts or time."""

    def __init__(self, message: str, *, attempts: int, last_error: BaseException | None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.last_error = last_error


class ProtocolError(TopologyError):
    """A protocol rule was broken; abstract, raise a local or remote subclass."""

    def __init__(self, message: str = "", *, labels: Iterable[str] = ()) -> None:
        if type(self) is ProtocolError:
            raise TypeError("raise LocalProtocolError or RemoteProtocolError, not ProtocolError")
        super().__init__(message, labels=labels)


class LocalProtocolError(ProtocolError):
    """We were about to send something the protocol does not allow."""


class RemoteProtocolError(ProtocolError, ValueError):
    """A peer sent something malformed or inconsistent."""


class InvalidHelloReply(RemoteProtocolError):
    """A hello/isMaster reply that cannot be turned into a server description."""


class InvalidGossip(RemoteProtocolError):
    """An EventStore gossip document that cannot be parsed."""


def describe_error(error: BaseException | str) -> str:
    """A one-line description of ``error`` for server descriptions and heartbeat records."""
    if isinstance(error, str):
        return error
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__

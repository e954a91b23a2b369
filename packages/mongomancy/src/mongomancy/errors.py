"""mongomancy's errors: each is a toolkit error and, where one fits, a builtin.

    MongomancyError(resilient_topology.TopologyError)
    ├── DefinitionError(+ resilient_topology.ConfigurationError, a ValueError)
    ├── CursorInterrupted(+ resilient_topology.ConnectionFailure, a ConnectionError)
    ├── RetriesExhausted(+ resilient_topology.ReconnectExhausted, a ConnectionError)
    └── LockTimeout(+ TimeoutError)

Errors of pymongo that are not retried reach the caller unchanged (``DuplicateKeyError`` and
friends), so existing ``except pymongo.errors...`` clauses keep working.
"""

from __future__ import annotations

from resilient_topology import ConfigurationError, ConnectionFailure, TopologyError
from resilient_topology.errors import ReconnectExhausted

__all__ = [
    "CursorInterrupted",
    "DefinitionError",
    "LockTimeout",
    "MongomancyError",
    "RetriesExhausted",
]


class MongomancyError(TopologyError):
    """Root of every error mongomancy raises itself."""


class DefinitionError(MongomancyError, ConfigurationError):
    """A collection, index or document definition is invalid (raised when it is made)."""


class CursorInterrupted(MongomancyError, ConnectionFailure):
    """A cursor failed after it had delivered documents; ``delivered`` says how many.

    Re-running the query could repeat or skip documents, so it is not done silently.
    """

    def __init__(self, message: str, *, delivered: int) -> None:
        super().__init__(message)
        self.delivered = delivered


class RetriesExhausted(MongomancyError, ReconnectExhausted):
    """Every attempt failed with a retryable error; ``last_error`` is the final one."""


class LockTimeout(MongomancyError, TimeoutError):
    """``create_all`` could not take its lock within ``max_wait`` seconds."""

"""Operation handlers: what an :class:`~mongo_observer.observer.Observer` hands each change to.

Delivery guarantee: **at least once**. The observer records an operation's position
(``last_timestamp``, the checkpoint) only *after* :meth:`OperationHandler.handle` returned, so an
operation whose handler failed, or that was in flight when the process died, is delivered again
by the next observer started from the same position. Handlers must therefore be idempotent. (The
original recorded the timestamp first, which made a failed operation silently lost.)

Every operation has the oplog shape ``{"ts", "op": "i"|"u"|"d", "ns": "db.coll", "o", "o2"}``
(see :mod:`mongo_observer.observer` for how change events are converted to it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

__all__ = ["OperationHandler", "ShouldStopObservation"]

Operation = Mapping[str, Any]


class ShouldStopObservation(KeyboardInterrupt):
    """Raised by a handler or callback to make ``Observer.observe_changes()`` return.

    A ``KeyboardInterrupt`` so that no ``except Exception`` between the handler and the observer
    can swallow it. The operation being handled when it is raised counts as not handled.
    """


class OperationHandler(ABC):
    """Dispatches insert/update/delete operations to ``on_insert``/``on_update``/``on_delete``.

    ``last_timestamp`` is the ``ts`` of the last operation handled successfully (``None`` before
    the first); it is set after the handler returns, never before.
    """

    def __init__(self) -> None:
        self.last_timestamp: Any = None
        self.handlers: dict[str, Callable[[Operation], Awaitable[None]]] = {
            "i": self.on_insert,
            "u": self.on_update,
            "d": self.on_delete,
        }

    @abstractmethod
    async def on_insert(self, operation: Operation) -> None:
        """``operation["o"]`` is the inserted document."""

    @abstractmethod
    async def on_update(self, operation: Operation) -> None:
        """``operation["o2"]["_id"]`` names the document, ``operation["o"]`` is the update."""

    @abstractmethod
    async def on_delete(self, operation: Operation) -> None:
        """``operation["o"]["_id"]`` names the deleted document."""

    async def handle(self, operation: Operation) -> None:
        """Dispatch by ``operation["op"]``; other ops (``c``, ``n``, ...) are skipped."""
        handler = self.handlers.get(operation.get("op", ""))
        if handler is None:
            return
        await handler(operation)
        self.last_timestamp = operation.get("ts")

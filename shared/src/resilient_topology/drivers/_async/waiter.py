"""Wait until a predicate on the latest topology holds, or a deadline passes.

The waiter holds the latest value published by whoever owns the topology (a pymongo listener
adapter, the core's monitor) and wakes every waiter on each publication. ``publish`` may be
called from any thread. No lock is held while a predicate runs, and a caller's cancellation is
never turned into a timeout.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from ...errors import ConfigurationError, ServerSelectionTimeout
from .._backends import AsyncEvent, async_monotonic

__all__ = ["AsyncTopologyWaiter"]

T = TypeVar("T")


class AsyncTopologyWaiter(Generic[T]):
    """The latest value of a topology, and waits for a condition on it."""

    def __init__(self, initial: T) -> None:
        self._value = initial
        self._lock = threading.Lock()
        self._changed = AsyncEvent()
        self._closed = False

    @property
    def current(self) -> T:
        return self._value

    @property
    def closed(self) -> bool:
        return self._closed

    def publish(self, value: T) -> None:
        """Make ``value`` the latest and wake every waiter."""
        with self._lock:
            self._value = value
            changed, self._changed = self._changed, AsyncEvent()
        changed.set()

    def close(self) -> None:
        """Wake every waiter; later waits fail at once. Idempotent."""
        with self._lock:
            self._closed = True
            changed = self._changed
        changed.set()

    async def wait_for(
        self, predicate: Callable[[T], bool], timeout: float | None, *, what: str = "a server"
    ) -> T:
        """Return the first value for which ``predicate`` holds.

        Raises :class:`ServerSelectionTimeout` after ``timeout`` seconds (``None`` waits as long
        as it takes), naming the last value seen; raises at once once the waiter is closed.
        """
        if timeout is not None and (not math.isfinite(timeout) or timeout < 0):
            raise ConfigurationError(f"timeout must be a finite number >= 0, got {timeout!r}")
        deadline = None if timeout is None else await async_monotonic() + timeout
        while True:
            with self._lock:
                value, changed, closed = self._value, self._changed, self._closed
            if predicate(value):
                return value
            if closed:
                raise ServerSelectionTimeout(f"stopped waiting for {what}: the waiter was closed")
            remaining = None if deadline is None else deadline - await async_monotonic()
            if remaining is not None and remaining <= 0:
                raise ServerSelectionTimeout(f"no {what} within {timeout} s; last seen: {value}")
            await changed.wait(remaining)

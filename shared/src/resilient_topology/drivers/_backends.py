"""The I/O seam of the drivers: events and clocks in an async and a sync form.

The generated sync drivers use the plain forms; the async drivers use the ``Async`` forms. Both
expose the same methods, so a driver is written once.
"""

from __future__ import annotations

import asyncio
import threading
import time

__all__ = ["AsyncEvent", "Event", "async_monotonic", "monotonic"]


class AsyncEvent:
    """An asyncio event that may be set from any thread and waited on with a timeout."""

    __slots__ = ("_event", "_loop")

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def set(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or _running_loop() is loop:
            self._event.set()
        else:
            loop.call_soon_threadsafe(self._event.set)

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self, timeout: float | None) -> bool:
        """True once set; False when ``timeout`` seconds pass first. Cancellation propagates."""
        self._loop = asyncio.get_running_loop()
        if self._event.is_set():
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            return False
        return True


class Event:
    """A thread event with the same surface as :class:`AsyncEvent`."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None) -> bool:
        return self._event.wait(timeout)


async def async_monotonic() -> float:
    """The running loop's clock, in seconds."""
    return asyncio.get_running_loop().time()


def monotonic() -> float:
    return time.monotonic()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None

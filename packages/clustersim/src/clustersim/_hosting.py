"""Where a simulated deployment runs: a loop of its own on a background thread, or the caller's.

``with`` starts a thread with its own event loop, so synchronous tests and programs can use the
deployment; ``async with`` serves on the caller's loop. Subclasses provide ``_start`` and
``_stop`` (coroutines run on that loop); :meth:`_on_loop` and :meth:`_call` let their fault
methods work from either side.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Self, TypeVar

from .errors import SimulatorConfigurationError

__all__ = ["LoopHost"]

T = TypeVar("T")
TIMEOUT = 10.0  # seconds a control call from another thread may take


class LoopHost:
    """Base of every deployment: lifecycle on a loop, idempotent close."""

    _thread_name = "clustersim"

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._owns_loop = False

    async def _start(self) -> None:
        raise NotImplementedError

    async def _stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._thread = threading.Thread(target=run, name=self._thread_name, daemon=True)
        self._thread.start()
        ready.wait(TIMEOUT)
        self._loop, self._owns_loop = loop, True
        try:
            self._on_loop(self._start())
        except BaseException:
            self._stop_thread()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        await self._start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def close(self) -> None:
        """Stop everything and, in sync use, the background loop. Idempotent."""
        if self._loop is None:
            return
        if not self._owns_loop:
            raise SimulatorConfigurationError("with 'async with', use 'await aclose()'")
        self._on_loop(self._stop())
        self._stop_thread()

    async def aclose(self) -> None:
        """Stop everything (``async with`` use). Idempotent."""
        if self._loop is not None and not self._owns_loop:
            await self._stop()
            self._loop = None

    def _stop_thread(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop, self._thread = None, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(TIMEOUT)
        if loop is not None:
            loop.close()

    def _on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the background loop and wait (sync use only)."""
        try:
            loop = self._require_loop()
        except SimulatorConfigurationError:
            coroutine.close()  # never to run: no "never awaited" warning
            raise
        if self._owns_loop:
            return asyncio.run_coroutine_threadsafe(coroutine, loop).result(TIMEOUT)
        coroutine.close()
        raise SimulatorConfigurationError("with 'async with', await the a-prefixed method instead")

    def _call(self, work: Callable[..., T], *args: Any) -> T:
        """Run plain ``work`` on the deployment's loop, from its thread or from another."""
        loop = self._require_loop()
        if not self._owns_loop:
            return work(*args)

        async def run() -> T:
            return work(*args)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(TIMEOUT)

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise SimulatorConfigurationError(
                "the deployment is not running; use 'with' or 'async with'"
            )
        return self._loop

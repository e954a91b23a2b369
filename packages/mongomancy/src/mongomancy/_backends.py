"""The few primitives whose sync and async forms differ in name; ``_async`` code uses the
``async_`` ones and ``scripts/unasync.py`` renames them for ``_sync``."""

from __future__ import annotations

import asyncio
import threading
import time
import weakref

__all__ = ["async_local_lock", "async_sleep", "local_lock", "sleep"]


async def async_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


_GUARD = threading.Lock()
_THREAD_LOCKS: dict[str, threading.Lock] = {}
# asyncio locks belong to one event loop, so there is one set per running loop.
_LOOP_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def local_lock(key: str) -> threading.Lock:
    """The process-wide lock named ``key``: threads of one process take turns with it."""
    with _GUARD:
        return _THREAD_LOCKS.setdefault(key, threading.Lock())


def async_local_lock(key: str) -> asyncio.Lock:
    """The lock named ``key`` shared by the tasks of the running event loop."""
    loop = asyncio.get_running_loop()
    with _GUARD:
        return _LOOP_LOCKS.setdefault(loop, {}).setdefault(key, asyncio.Lock())

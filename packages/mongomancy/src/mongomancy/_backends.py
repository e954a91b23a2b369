"""The few primitives whose sync and async forms differ in name; ``_async`` code uses the
``async_`` ones and ``scripts/unasync.py`` renames them for ``_sync``."""

from __future__ import annotations

import asyncio
import time

__all__ = ["async_sleep", "sleep"]


async def async_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def sleep(seconds: float) -> None:
    time.sleep(seconds)

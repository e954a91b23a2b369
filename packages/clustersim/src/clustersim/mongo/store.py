"""The document store behind the wire front end: mongomock, on one worker thread.

mongomock does the query matching, projection, sorting, update operators and index checks; we
write none of that. Its calls are synchronous and can be slow on large collections, so every one
runs on a single worker thread: the event loop that answers heartbeats is never blocked, and
store operations stay serialised, as mongomock is not thread-safe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any, TypeVar

import mongomock

__all__ = ["Store"]

T = TypeVar("T")


class Store:
    """A mongomock client reached only through :meth:`run`."""

    def __init__(self) -> None:
        self._client: Any = mongomock.MongoClient()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="clustersim-store"
        )

    async def run(self, work: Callable[[Any], T]) -> T:
        """Run ``work(client)`` on the store thread and return its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, work, self._client)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

"""Server-side cursors shared by every member, so a getMore can follow a failover."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bson import Int64

from .commands.base import CommandError

__all__ = ["Cursor", "CursorTable"]


@dataclass
class Cursor:
    """A cursor's remaining results, or a live source for tailable and change-stream cursors.

    ``refill`` (tailable cursors) fetches what arrived since the last batch; ``post_batch`` adds
    fields such as ``postBatchResumeToken`` to every batch.
    """

    id: int
    namespace: str
    pending: deque[dict[str, Any]] = field(default_factory=deque)
    tailable: bool = False
    await_data: bool = False
    refill: Callable[[], Awaitable[list[dict[str, Any]]]] | None = None
    post_batch: Callable[[], dict[str, Any]] | None = None

    async def fill(self) -> None:
        """Fetch new results of a tailable cursor when those already fetched are used up."""
        if self.refill is not None and not self.pending:
            self.pending.extend(await self.refill())

    def take(self, count: int | None) -> list[dict[str, Any]]:
        limit = len(self.pending) if count is None or count <= 0 else count
        return [self.pending.popleft() for _ in range(min(limit, len(self.pending)))]

    @property
    def exhausted(self) -> bool:
        return not self.tailable and not self.pending


class CursorTable:
    def __init__(self) -> None:
        self._cursors: dict[int, Cursor] = {}

    def open(self, namespace: str, results: Iterable[dict[str, Any]], **options: Any) -> Cursor:
        cursor_id = random.randint(1, 2**62)
        cursor = Cursor(cursor_id, namespace, deque(results), **options)
        self._cursors[cursor_id] = cursor
        return cursor

    def get(self, cursor_id: object, namespace: str) -> Cursor:
        cursor = self._cursors.get(int(cursor_id)) if isinstance(cursor_id, int) else None
        if cursor is None:
            raise CommandError(43, "CursorNotFound", f"cursor id {cursor_id} not found")
        if cursor.namespace != namespace:
            raise CommandError(13, "Unauthorized", "cursor belongs to another namespace")
        return cursor

    def kill(self, cursor_id: int) -> bool:
        return self._cursors.pop(int(cursor_id), None) is not None

    def close_if_done(self, cursor: Cursor) -> Int64:
        if cursor.exhausted:
            self._cursors.pop(cursor.id, None)
            return Int64(0)
        return Int64(cursor.id)

    def clear(self) -> None:
        self._cursors.clear()

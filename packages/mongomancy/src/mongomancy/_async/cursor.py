"""A cursor whose opening is retried, and whose later failures are reported, not hidden.

Until the first batch has been delivered, re-running the query cannot repeat or skip anything
the caller saw, so opening is retried like any read (on the engine's current client). Once
documents have been handed out, a failure raises :class:`~mongomancy.errors.CursorInterrupted`
carrying how many were delivered: re-running would silently repeat or skip documents.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self

import pymongo.errors

from ..errors import CursorInterrupted
from ..mongo_errors import ErrorClass, OperationKind, classify

if TYPE_CHECKING:
    from .engine import AsyncEngine

__all__ = ["AsyncRetryingCursor"]

_EMPTY = object()


class AsyncRetryingCursor:
    """Iterate with ``async for``; also ``to_list()``, ``close()`` and ``async with``.

    ``opener`` receives the pymongo collection resolved on the current client and returns a
    pymongo cursor (or an awaitable of one).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        target: Any,
        opener: Callable[[Any], Any],
        *,
        kind: OperationKind = OperationKind.READ,
        name: str = "find",
    ) -> None:
        self._engine = engine
        self._target = target
        self._opener = opener
        self._kind = kind
        self._name = name
        self._cursor: Any = None
        self._first: Any = _EMPTY
        self._opened = False
        self._exhausted = False
        self.delivered = 0

    async def _open_once(self, collection: Any) -> Any:
        cursor = self._opener(collection)
        if inspect.isawaitable(cursor):
            cursor = await cursor
        try:
            first = await cursor.next()
        except StopAsyncIteration:
            await cursor.close()
            return None, _EMPTY
        except BaseException:
            await cursor.close()
            raise
        return cursor, first

    async def _prime(self) -> None:
        """Open the cursor and fetch the first document, retrying on the current client."""
        if self._opened:
            return
        self._cursor, self._first = await self._engine._run(
            self._kind, self._name, self._target, self._open_once
        )
        self._opened = True
        self._exhausted = self._cursor is None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Any:
        await self._prime()
        if self._first is not _EMPTY:
            document, self._first = self._first, _EMPTY
            self.delivered += 1
            return document
        if self._exhausted or self._cursor is None:
            raise StopAsyncIteration
        try:
            document = await self._cursor.next()
        except StopAsyncIteration:
            self._exhausted = True
            raise
        except pymongo.errors.PyMongoError as exc:
            if not _interrupts(exc):
                raise
            self._exhausted = True
            await self.close()
            raise CursorInterrupted(
                f"{self._name} cursor failed after {self.delivered} document(s): {exc}",
                delivered=self.delivered,
            ) from exc
        self.delivered += 1
        return document

    async def to_list(self, length: int | None = None) -> list[Any]:
        """Up to ``length`` documents (all when ``None``)."""
        documents: list[Any] = []
        while length is None or len(documents) < length:
            try:
                documents.append(await self.__anext__())
            except StopAsyncIteration:
                break
        return documents

    async def close(self) -> None:
        cursor, self._cursor = self._cursor, None
        self._exhausted = True
        self._opened = True
        if cursor is not None:
            await cursor.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _interrupts(exc: BaseException) -> bool:
    """A failure of the connection or server (not of the query) ends the cursor midway."""
    if isinstance(exc, pymongo.errors.CursorNotFound):
        return True
    return classify(exc) is not ErrorClass.FATAL

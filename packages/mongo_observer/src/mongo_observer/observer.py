"""The asyncio observer: reads changes from the oplog or a change stream and hands them on.

Two sources:

* **change streams** (``source=`` a collection, database or client): the supported way, works
  wherever change streams do;
* **the oplog** (``oplog=`` the ``local.oplog.rs`` collection): the original API, for replica
  sets where reading ``local`` is allowed. Transactions and batched writes (``applyOps`` on
  ``admin.$cmd``) are read too and expanded into their inner operations; transactions logged
  over several entries (``partialTxn``, ``prepare`` then commit or abort) are handed on only
  once committed, all at once (see :mod:`mongo_observer.transactions`).

Operations handed to the handler always have the oplog shape
``{"ts", "op": "i"|"u"|"d", "ns": "db.coll", "o", "o2"}``. Change events are converted:

==========  ====  ==========================================================================
event       op    fields
==========  ====  ==========================================================================
insert      i     ``o`` = ``fullDocument``
update      u     ``o`` = ``{"$v": "cs", "updateDescription": {...}}``, ``o2`` = ``documentKey``
replace     u     ``o`` = the full replacement document, ``o2`` = ``documentKey``
delete      d     ``o`` = ``{"_id": ...}``
==========  ====  ==========================================================================

plus ``"ts"`` = ``clusterTime`` and ``"resume_token"`` = the event's ``_id``. Other events
(drop, rename, invalidate, ...) only move the position.

Delivery is **at least once**: the position (and the checkpoint) advances only after the handler
returned, so handlers must be idempotent. A reader task fills a bounded queue that the handler
drains, so a slow handler slows the reader instead of growing memory. The reader survives
transient errors (network errors, failovers, dead and lost cursors) by re-opening from the
last position it *read* (what is queued still gets handled, so nothing repeats), after an
awaited, doubling, jittered pause capped at ``max_sleep_time`` (announced to receivers of the
core's ``Reconnecting`` hook in :attr:`Observer.hooks`); a new observer starts from the last
*handled* one (its checkpoint, saved every ``checkpoint_every`` operations and when observation
ends). When the source no longer holds that position (oplog roll-over,
``ChangeStreamHistoryLost``) it restarts from the current end and the consumer calls
``on_resync`` (e.g. ``ReactiveCollection.resync``) at that point of the stream.

Errors: a handler exception ends ``observe_changes()`` and is raised from it (the failed
operation is not counted as handled) unless ``on_error(operation, exc)`` returns True, which
skips it. ``ShouldStopObservation`` from a handler or callback, or :meth:`Observer.stop`, makes
``observe_changes()`` return. Cancelling the caller cancels the reader and propagates.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Self

from bson import Timestamp
from pymongo import CursorType
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from resilient_topology.backoff import RetryPolicy
from resilient_topology.hooks import HookRegistry, Reconnecting

from .checkpoints import CheckpointStore
from .errors import ObserverError
from .handlers import OperationHandler, ShouldStopObservation
from .transactions import TransactionAssembler

__all__ = ["HISTORY_LOST_CODES", "Observer"]

logger = logging.getLogger(__name__)

ZERO: Timestamp = Timestamp(0, 1)
# ChangeStreamHistoryLost, ChangeStreamFatalError, CappedPositionLost: resuming cannot work.
HISTORY_LOST_CODES = frozenset({286, 280, 136})

Callback = Callable[[], Awaitable[None] | None]
ErrorCallback = Callable[[Mapping[str, Any], Exception], Awaitable[bool] | bool]


@dataclass
class _Item:
    kind: Literal["op", "position", "idle", "resync"]
    op: dict[str, Any] | None = None
    position: Any = None  # None: the position does not move with this item


async def _call(callback: Callable[..., Any], *args: Any) -> Any:
    result = callback(*args)
    return await result if inspect.isawaitable(result) else result


# Server errors worth re-opening for: the cursor or the node went away, or the server says so.
# Anything else (bad query, authorization, ...) would fail again forever: it ends observation.
_TRANSIENT_CODES = frozenset(
    {6, 7, 43, 89, 91, 133, 134, 150, 175, 189, 234, 237, 262, 9001}
    | {10058, 10107, 11600, 11602, 13388, 13435, 13436}
)


def _transient(exc: PyMongoError) -> bool:
    """Whether re-opening the cursor after ``exc`` can succeed."""
    if isinstance(exc, ConnectionFailure):
        return True
    if exc.has_error_label("ResumableChangeStreamError"):
        return True
    return isinstance(exc, OperationFailure) and exc.code in _TRANSIENT_CODES


def _history_lost(exc: PyMongoError) -> bool:
    return isinstance(exc, OperationFailure) and exc.code in HISTORY_LOST_CODES


def event_to_operation(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """A change event in the oplog shape (module docstring), or None for non-CRUD events."""
    kind = event.get("operationType")
    ns = event.get("ns") or {}
    base: dict[str, Any] = {
        "ts": event.get("clusterTime"),
        "ns": f"{ns.get('db')}.{ns.get('coll')}",
        "resume_token": event["_id"],
    }
    key = event.get("documentKey") or {}
    if kind == "insert":
        return {**base, "op": "i", "o": event["fullDocument"]}
    if kind == "delete":
        return {**base, "op": "d", "o": {"_id": key["_id"]}}
    if kind == "replace":
        return {**base, "op": "u", "o": event["fullDocument"], "o2": dict(key)}
    if kind == "update":
        o = {"$v": "cs", "updateDescription": event["updateDescription"]}
        return {**base, "op": "u", "o": o, "o2": dict(key)}
    return None


class Observer:
    """Observes one source and hands every insert, update and delete to ``operation_handler``.

    Create with :meth:`init_async`, which captures the start position *before* returning (so a
    snapshot taken afterwards misses nothing); run :meth:`observe_changes`; :meth:`close` or
    leave ``async with``.
    """

    max_sleep_time: float = 5.0

    def __init__(
        self,
        oplog: Any,
        operation_handler: OperationHandler,
        namespace_filter: str | None,
        position: Any,
        on_nothing_to_fetch_on_cursor: Callback | None = None,
        *,
        source: Any = None,
        checkpoint_store: CheckpointStore | None = None,
        checkpoint_every: int = 1,
        queue_size: int = 1000,
        on_resync: Callback | None = None,
        on_error: ErrorCallback | None = None,
    ) -> None:
        self.oplog = oplog
        self.source = source
        self.operation_handler = operation_handler
        self.namespace_filter = namespace_filter
        self.on_nothing_to_fetch_on_cursor = on_nothing_to_fetch_on_cursor
        self.on_resync = on_resync
        self.on_error = on_error
        self.checkpoint_store = checkpoint_store
        self.checkpoint_every = max(1, checkpoint_every)
        self.queue_size = queue_size
        self.sleep_time = float(os.environ.get("SLEEP_TIME_BEFORE_GET_NEW_CURSOR_IN_SECONDS", 0.1))
        #: the core's hook registry: ``Reconnecting`` is dispatched before each re-open
        self.hooks = HookRegistry()
        #: position of the last handled operation: a Timestamp, or a resume token
        self.position: Any = position
        #: how many cursors / change streams the reader opened (a hot loop shows here)
        self.cursors_opened = 0
        self._unsaved = 0
        self._stop = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[_Item] | None = None
        self._closed = False

    @classmethod
    async def init_async(
        cls,
        oplog: Any = None,
        operation_handler: OperationHandler | None = None,
        namespace_filter: str | None = None,
        starting_timestamp: Timestamp | None = None,
        on_nothing_to_fetch_on_cursor: Callback | None = None,
        *,
        source: Any = None,
        checkpoint_store: CheckpointStore | None = None,
        checkpoint_every: int = 1,
        queue_size: int = 1000,
        on_resync: Callback | None = None,
        on_error: ErrorCallback | None = None,
    ) -> Self:
        """Build an observer of ``oplog`` (oplog mode) or of ``source`` (change streams).

        Start: the checkpoint if ``checkpoint_store`` holds one, else ``starting_timestamp``,
        else the current end (newest oplog ``ts``; empty oplog: ``Timestamp(0, 1)``; a fresh
        change stream's resume token).
        """
        if (oplog is None) == (source is None):
            raise ObserverError("pass exactly one of oplog= (oplog mode) or source= (streams)")
        if operation_handler is None:
            raise ObserverError("operation_handler is required")
        position = await checkpoint_store.load() if checkpoint_store is not None else None
        if position is not None and oplog is not None and not isinstance(position, Timestamp):
            raise ObserverError(f"checkpoint {position!r} is not an oplog Timestamp")
        if position is None:
            position = starting_timestamp
        observer = cls(
            oplog,
            operation_handler,
            namespace_filter,
            position,
            on_nothing_to_fetch_on_cursor,
            source=source,
            checkpoint_store=checkpoint_store,
            checkpoint_every=checkpoint_every,
            queue_size=queue_size,
            on_resync=on_resync,
            on_error=on_error,
        )
        if observer.position is None:
            observer.position = await observer._current_end()
        return observer

    # --- positions and cursors ----------------------------------------------------------------

    async def _current_end(self) -> Any:
        if self.oplog is not None:
            return await self._edge_ts(-1) or ZERO
        stream = await self._open_stream(None)
        try:
            return stream.resume_token
        finally:
            await stream.close()

    async def _edge_ts(self, direction: int) -> Timestamp | None:
        """The newest (-1) or oldest (1) oplog ``ts``."""
        cursor = self.oplog.find({}, {"ts": 1}, sort=[("$natural", direction)], limit=1)
        entries = await cursor.to_list(1)
        return entries[0]["ts"] if entries else None

    @property
    def backlog(self) -> int:
        """Entries read from the server and not yet handled (never more than ``queue_size``).

        A steadily full backlog means the handler is slower than the stream: the reader then waits
        instead of buffering more.
        """
        return 0 if self._queue is None else self._queue.qsize()

    @property
    def filter(self) -> dict[str, Any]:
        """The oplog query from the current position."""
        return self._oplog_filter(self.position)

    def _oplog_filter(self, position: Timestamp) -> dict[str, Any]:
        query: dict[str, Any] = {"ts": {"$gt": position}}
        if self.namespace_filter is not None:
            # Transactions live on admin.$cmd (applyOps, and the commit or abort of a prepared
            # one); their inner operations are filtered after assembly.
            query["$or"] = [
                {"ns": self.namespace_filter},
                *(
                    {"ns": "admin.$cmd", f"o.{field}": {"$exists": True}}
                    for field in ("applyOps", "commitTransaction", "abortTransaction")
                ),
            ]
        return query

    def get_new_cursor(self, position: Timestamp | None = None) -> Any:
        """A tailable, awaitData oplog cursor after ``position`` (default: last handled)."""
        if position is None:
            position = self.operation_handler.last_timestamp or self.position
        self.cursors_opened += 1
        return self.oplog.find(self._oplog_filter(position), cursor_type=CursorType.TAILABLE_AWAIT)

    async def _open_stream(self, position: Any) -> Any:
        pipeline: list[dict[str, Any]] = []
        if self.namespace_filter is not None:
            db, _, coll = self.namespace_filter.partition(".")
            pipeline.append({"$match": {"ns.db": db, "ns.coll": coll}})
        options: dict[str, Any] = {}
        if isinstance(position, Timestamp):
            options["start_at_operation_time"] = position
        elif position is not None:
            options["start_after"] = position
        self.cursors_opened += 1
        stream = self.source.watch(pipeline, **options)
        if inspect.isawaitable(stream):  # pymongo
            return await stream
        await stream.__aenter__()  # motor opens lazily; open now to fail and capture here
        return stream

    # --- the reader task ------------------------------------------------------------------------

    async def _pause(self, failures: int, error: BaseException | None) -> None:
        """Awaited, growing, jittered pause before re-opening (never a hot loop).

        The core's backoff with equal jitter: each pause is at least half of
        ``sleep_time * 2**(failures-1)`` (capped at ``max_sleep_time``), so observers that lost
        the same primary do not return in step. Receivers of ``Reconnecting`` hear of it first.
        """
        initial = min(self.sleep_time, self.max_sleep_time)
        policy = RetryPolicy(initial, self.max_sleep_time, jitter="equal", deadline=None)
        delay = policy.delay(max(failures, 1), random.random)
        loop = asyncio.get_running_loop()
        if self.hooks:
            await self.hooks.dispatch(Reconnecting(failures + 1, delay, error, loop.time()))
        await asyncio.sleep(delay)

    async def _read_oplog(self, queue: asyncio.Queue[_Item], position: Any) -> None:
        failures = 0
        lost = False
        transactions = TransactionAssembler()  # kept across re-opened cursors
        while True:
            cursor = None
            error: BaseException | None = None
            try:
                if not lost and position != ZERO:
                    oldest = await self._edge_ts(1)
                    lost = oldest is not None and oldest > position
                if lost:  # capture the new position first, the snapshot follows in the consumer
                    lost = False
                    transactions.reset()
                    position = await self._edge_ts(-1) or ZERO
                    logger.warning("oplog history lost: resynchronising from %s", position)
                    await queue.put(_Item("resync", position=position))
                cursor = self.get_new_cursor(position)
                while cursor.alive:
                    try:
                        entry = await cursor.next()
                    except StopAsyncIteration:
                        await queue.put(_Item("idle"))
                        continue
                    failures = 0
                    position = entry["ts"]
                    assembled = transactions.feed(entry)
                    checkpoint = assembled.checkpoint  # None while a transaction is open
                    ops = [op for op in assembled.ops if self._wanted(op)]
                    if not ops and checkpoint is not None:
                        await queue.put(_Item("position", position=checkpoint))
                    for index, op in enumerate(ops):  # a transaction is done after its last op
                        last = index == len(ops) - 1
                        await queue.put(_Item("op", op, checkpoint if last else None))
                failures += 1
            except PyMongoError as exc:
                if _history_lost(exc):
                    lost = True
                    continue
                if not _transient(exc):
                    raise
                failures += 1
                error = exc
                logger.warning("oplog cursor failed (%s); re-opening after %s", exc, position)
            finally:
                if cursor is not None:
                    await cursor.close()
            await self._pause(failures, error)

    def _wanted(self, op: Mapping[str, Any]) -> bool:
        return self.namespace_filter is None or op.get("ns") == self.namespace_filter

    async def _read_stream(self, queue: asyncio.Queue[_Item], position: Any) -> None:
        failures = 0
        resync = False
        while True:
            try:
                stream = await self._open_stream(position)
            except PyMongoError as exc:
                if _history_lost(exc) and position is not None:
                    logger.warning("change stream history lost (%s): resynchronising", exc)
                    position, resync = None, True
                    continue
                if not _transient(exc):
                    raise
                failures += 1
                logger.warning("cannot open change stream (%s); retrying", exc)
                await self._pause(failures, exc)
                continue
            error: BaseException | None = None
            try:
                if resync:  # position captured first, the snapshot follows in the consumer
                    resync = False
                    position = stream.resume_token
                    await queue.put(_Item("resync", position=position))
                while stream.alive:
                    event = await stream.try_next()
                    if event is None:
                        token = stream.resume_token
                        if token is not None and token != position:
                            position = token
                            await queue.put(_Item("position", position=token))
                        await queue.put(_Item("idle"))
                        continue
                    failures = 0
                    position = event["_id"]
                    op = event_to_operation(event)
                    kind: Literal["op", "position"] = "position" if op is None else "op"
                    await queue.put(_Item(kind, op, position))
                failures += 1
            except PyMongoError as exc:
                if _history_lost(exc):
                    position, resync = None, True
                    continue
                if not _transient(exc):
                    raise
                failures += 1
                error = exc
                logger.warning("change stream failed (%s); resuming", exc)
            finally:
                await stream.close()
            await self._pause(failures, error)

    # --- the consumer -----------------------------------------------------------------------

    async def observe_changes(self) -> None:
        """Hand every operation to the handler until stopped; handler errors are raised."""
        if self._closed:
            raise ObserverError("this observer is closed")
        if self._reader is not None:
            raise ObserverError("observe_changes() is already running")
        self._stop.clear()
        queue: asyncio.Queue[_Item] = asyncio.Queue(self.queue_size)
        self._queue = queue
        read = self._read_oplog if self.oplog is not None else self._read_stream
        reader = self._reader = asyncio.create_task(read(queue, self.position))
        cancelled = False
        try:
            while (item := await self._next(queue, reader)) is not None:
                await self._process(item)
        except ShouldStopObservation:
            return
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            self._reader = self._queue = None
            reader.cancel()
            await asyncio.wait([reader])
            if not cancelled:
                await self._flush()

    async def _next(self, queue: asyncio.Queue[_Item], reader: asyncio.Task[None]) -> _Item | None:
        """The next item, or None once stopped; a crashed reader's error is raised."""
        if self._stop.is_set():
            return None
        if not queue.empty():
            return queue.get_nowait()
        getter = asyncio.ensure_future(queue.get())
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait([getter, stopper, reader], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        if reader.done() and not self._stop.is_set():
            reader.result()  # raises the reader's error
            raise ObserverError("the reader task ended unexpectedly")
        return None

    async def _process(self, item: _Item) -> None:
        if item.kind == "op" and item.op is not None:
            try:
                await self.operation_handler.handle(item.op)
            except Exception as exc:
                if self.on_error is None or await _call(self.on_error, item.op, exc) is not True:
                    raise
                logger.warning("skipping operation %r after %r", item.op, exc)
        elif item.kind == "idle":
            if self.on_nothing_to_fetch_on_cursor is not None:
                await _call(self.on_nothing_to_fetch_on_cursor)
            return
        elif item.kind == "resync":
            if self.on_resync is None:
                logger.warning("history lost and no on_resync: changes were missed")
            else:
                await _call(self.on_resync)
        if item.position is not None:
            await self._advance(item.position)

    async def _advance(self, position: Any) -> None:
        self.position = position
        self._unsaved += 1
        if self._unsaved >= self.checkpoint_every:
            await self._flush()

    async def _flush(self) -> None:
        if self.checkpoint_store is not None and self._unsaved:
            await self.checkpoint_store.save(self.position)
        self._unsaved = 0

    # --- lifecycle ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Make ``observe_changes()`` return after the operation being handled."""
        self._stop.set()

    async def close(self) -> None:
        """Stop, cancel the reader and wait for it; idempotent."""
        self._closed = True
        self.stop()
        reader = self._reader
        if reader is not None:
            reader.cancel()
            await asyncio.wait([reader])

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

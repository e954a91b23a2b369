"""The engine: one pymongo client, every collection operation retried safely.

Each attempt resolves the collection again on the engine's *current* client, so an attempt
after :meth:`AsyncEngine.reconnect` never reaches a closed client. Whether an error is worth
another attempt depends on the operation (:func:`mongomancy.mongo_errors.should_retry`): an
error that may have come after the server applied a write is retried only for idempotent
operations. Inserts are made idempotent by assigning ``_id`` before the first attempt.

Pacing is the core's :class:`~resilient_topology.RetryPolicy`: delays grow from the ``*_delay``
value, doubling up to :data:`MAX_DELAY` with full jitter, within ``retry_deadline`` seconds.
When the budget is spent the last pymongo error is raised unchanged, so existing
``except pymongo.errors.AutoReconnect`` clauses keep working.
"""

from __future__ import annotations

import contextvars
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self

import pymongo.errors
from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.results import InsertManyResult, InsertOneResult
from pymongo.uri_parser import parse_uri, split_hosts

from resilient_topology import Address, RetryPolicy, RetryState, TopologySettings
from resilient_topology.backoff import GiveUp
from resilient_topology.hooks import HookRegistry, PrimaryChanged
from resilient_topology.mongo import PymongoHeartbeatAdapter

from .._backends import async_sleep
from ..hooks import LegacyHook, PrimarySwitch, async_fire, async_settle
from ..mongo_errors import (
    DEFAULT_RETRY,
    OperationKind,
    is_idempotent_update,
    is_single_id_filter,
    should_retry,
)
from .cursor import AsyncRetryingCursor

__all__ = ["MAX_DELAY", "AsyncEngine"]

MAX_DELAY = 2.0
"""Seconds: the longest wait between two attempts, before jitter."""

_READ = OperationKind.READ
_IDEMPOTENT = OperationKind.IDEMPOTENT_WRITE
_WRITE = OperationKind.WRITE
_MULTI = OperationKind.MULTI_WRITE
_COLLECTION_OPTIONS = ("codec_options", "read_preference", "write_concern", "read_concern")

# Set while this engine runs hooks, so a hook calling reconnect() neither recurses nor waits
# for its own task on dispose().
_IN_HOOK: contextvars.ContextVar[bool] = contextvars.ContextVar("mongomancy_in_hook", default=False)


class AsyncEngine:
    """A pymongo client with retried operations, reconnects and primary-switch hooks.

    Defaults differ from the original's ``max_pool_size=1, queue_timeout=400``: one connection
    and a 0.4 s queue wait made every stalled operation fail and reconnect at once (reconnect
    storms); pymongo's own pool size and an unbounded queue wait are used instead.
    ``write_retry=N`` allows at most N+1 attempts; ``None`` caps attempts only by
    ``retry_deadline`` (seconds). ``host`` may be a ``mongodb://`` URI.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 27017,
        max_pool_size: int = 100,
        queue_timeout: int | None = None,
        auth_source: str | None = None,
        auth_mechanism: str | None = None,
        user: str | None = None,
        password: str | None = None,
        connect_timeout: int = 15000,
        write_retry: int | None = None,
        write_retry_delay: float = 0.05,
        read_retry: int | None = None,
        read_retry_delay: float = 0.05,
        retry_codes: Sequence[int] | frozenset[int] | None = None,
        logger: logging.Logger | None = None,
        mongo_client_cls: type[AsyncMongoClient[Any]] = AsyncMongoClient,
        *,
        retry_deadline: float | None = 30.0,
        **kwargs: Any,
    ) -> None:
        self.logger = logger or logging.getLogger("mongomancy.engine")
        self.retry_codes: frozenset[int] = frozenset(retry_codes) if retry_codes else DEFAULT_RETRY
        self.write_retry = write_retry
        self.write_retry_delay = write_retry_delay
        self.read_retry = read_retry
        self.read_retry_delay = read_retry_delay
        self.retry_deadline = retry_deadline
        self.mongo_client_cls = mongo_client_cls
        self.reconnect_hooks: list[LegacyHook] = []
        self.hooks = HookRegistry()
        self._write_policy = _policy(write_retry, write_retry_delay, retry_deadline)
        self._read_policy = _policy(read_retry, read_retry_delay, retry_deadline)
        options: dict[str, Any] = {
            "maxPoolSize": max_pool_size,
            "waitQueueTimeoutMS": queue_timeout,
            "connectTimeoutMS": connect_timeout,
        }
        if auth_mechanism:
            options.update(
                authSource=auth_source,
                authMechanism=auth_mechanism,
                username=user,
                password=password,
            )
        options.update(kwargs)
        self._host, self._port = host, port
        self._listeners = list(options.pop("event_listeners", None) or ())
        self._options = options
        self._settings = _settings(host, port, options)
        self._lock = threading.Lock()
        self._disposed = False
        self._known_primary: Address | None = None
        self._adapters: list[PymongoHeartbeatAdapter] = []
        self._adapter = self._new_adapter()
        self.client = self._new_client(self._adapter)

    # --- client lifecycle ---------------------------------------------------------------------

    def _new_adapter(self) -> PymongoHeartbeatAdapter:
        internal = HookRegistry()
        adapter = PymongoHeartbeatAdapter(self._settings, hooks=internal)
        internal.register(PrimaryChanged, lambda event: self._on_primary(adapter, event))
        internal.freeze()
        with self._lock:
            self._adapters.append(adapter)
        return adapter

    def _new_client(self, adapter: PymongoHeartbeatAdapter) -> AsyncMongoClient[Any]:
        return self.mongo_client_cls(
            self._host,
            self._port,
            event_listeners=[*self._listeners, adapter],
            **self._options,
        )

    async def _on_primary(self, adapter: PymongoHeartbeatAdapter, event: PrimaryChanged) -> None:
        """Turn the adapter's PrimaryChanged into a PrimarySwitch; stale clients are ignored.

        The first primary ever discovered is recorded silently: it is not a switch.
        """
        with self._lock:
            if adapter is not self._adapter or self._disposed:
                return
            previous = self._known_primary
            if event.new is None:
                switch = (
                    PrimarySwitch(previous, None, "topology", event.at)
                    if event.previous is not None and event.previous == previous
                    else None
                )
            else:
                self._known_primary = event.new
                switch = (
                    PrimarySwitch(previous, event.new, "election", event.at)
                    if previous is not None and previous != event.new
                    else None
                )
        if switch is not None:
            await self._fire(switch)

    async def _fire(self, event: PrimarySwitch) -> None:
        token = _IN_HOOK.set(True)
        try:
            await async_fire(self.hooks, event, self.reconnect_hooks, self)
        finally:
            _IN_HOOK.reset(token)

    async def reconnect(self) -> None:
        """Make a new client, close the replaced one, then run the hooks.

        A hook that calls ``reconnect()`` itself gets a new client but no second round of hooks.
        """
        adapter = self._new_adapter()
        client = self._new_client(adapter)
        with self._lock:
            if self._disposed:
                old = client
            else:
                old, self.client, self._adapter = self.client, client, adapter
            previous = self._known_primary
            found = adapter.description.primary  # seen before the swap: recorded, not fired
            if found is not None and old is not client:
                self._known_primary = found.address
        await old.close()
        if old is client:
            raise pymongo.errors.InvalidOperation("the engine has been disposed")
        self.logger.info("engine reconnected to %s", self._host)
        if not _IN_HOOK.get():
            await self._fire(PrimarySwitch(previous, None, "reconnect", time.monotonic()))

    @property
    def disposed(self) -> bool:
        return self._disposed

    async def dispose(self) -> None:
        """Close the client and wait for running hooks; calling it again does nothing."""
        with self._lock:
            if self._disposed:
                return
            self._disposed = True
            adapters, self._adapters = self._adapters, []
        await self.client.close()
        if not _IN_HOOK.get():  # a hook cannot wait for its own task
            for adapter in adapters:
                await async_settle(adapter)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.dispose()

    def register_hook(self, hook: LegacyHook) -> None:
        """Call ``hook(engine)`` after reconnect() and when a new primary is seen."""
        self.reconnect_hooks.append(hook)

    @property
    def address(self) -> tuple[str, int] | None:
        """The primary's (host, port) as last seen by heartbeats; no I/O."""
        primary = self._adapter.description.primary
        if primary is None or primary.address.port is None:
            return None
        return (primary.address.host, primary.address.port)

    def get_database(self, name: str, **options: Any) -> Any:
        return self.client.get_database(name, **options)

    async def drop_database(self, name: str) -> None:
        async def op(_: Any) -> None:
            await self.client.drop_database(name)

        await self._run(_IDEMPOTENT, "drop_database", None, op)

    async def ping(self, database: str | None = None) -> bool:
        """True if the deployment answered a ping (retried like a read), False otherwise."""

        async def op(_: Any) -> Any:
            return await self.client.get_database(database or "admin").command("ping")

        try:
            await self._run(_READ, "ping", None, op)
        except pymongo.errors.PyMongoError:
            return False
        return True

    def start_session(self, **kwargs: Any) -> Any:
        return self.client.start_session(**kwargs)

    # --- the retry loop -----------------------------------------------------------------------

    def collection(self, target: Any) -> Any:
        """``target`` (a pymongo collection or anything naming one) on the current client."""
        source = target
        # A pymongo collection answers any attribute with a sub-collection: never probe it.
        if not type(target).__module__.startswith("pymongo."):
            wrapped = getattr(target, "pymongo_collection", None)
            source = target if wrapped is None else wrapped
        database = source.database
        db_name = database if isinstance(database, str) else database.name
        options = {key: getattr(source, key, None) for key in _COLLECTION_OPTIONS}
        return self.client.get_database(db_name).get_collection(source.name, **options)

    async def _run(
        self,
        kind: OperationKind,
        name: str,
        target: Any,
        op: Callable[[Any], Any],
    ) -> Any:
        """Call ``op`` with the collection resolved afresh until it succeeds or must stop."""
        policy = self._read_policy if kind is _READ else self._write_policy
        state = RetryState.begin(time.monotonic())
        while True:
            client = self.client
            try:
                collection = None if target is None else self.collection(target)
                return await op(collection)
            except pymongo.errors.PyMongoError as exc:
                # A reconnect (maybe from a hook on another thread) closed the client this
                # attempt started on; pymongo refused before sending anything, so run it again.
                replaced = isinstance(exc, pymongo.errors.InvalidOperation) and (
                    client is not self.client
                )
                if not (replaced or should_retry(exc, kind, self.retry_codes)):
                    raise
                state = state.failed(exc)
            step = policy.next_step(state, time.monotonic(), random.random)
            if isinstance(step, GiveUp):
                self.logger.error("%s: %s", name, step.message)
                error = state.last_error
                assert error is not None
                raise error
            self.logger.warning(
                "%s failed (attempt %d), retrying in %.3f s: %s",
                name,
                state.attempts,
                step.delay,
                state.last_error,
            )
            await async_sleep(step.delay)

    # --- reads --------------------------------------------------------------------------------

    def find(self, collection: Any, *args: Any, **kwargs: Any) -> AsyncRetryingCursor:
        """A lazy cursor: opening is retried, a failure after documents raises
        CursorInterrupted."""
        return AsyncRetryingCursor(self, collection, lambda c: c.find(*args, **kwargs))

    async def find_one(self, collection: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._run(_READ, "find_one", collection, lambda c: c.find_one(*args, **kwargs))

    async def aggregate(
        self, collection: Any, pipeline: Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> AsyncRetryingCursor:
        """Runs at once (like pymongo); a pipeline with $out/$merge is a write."""
        writes = any("$out" in stage or "$merge" in stage for stage in pipeline)
        cursor = AsyncRetryingCursor(
            self,
            collection,
            lambda c: c.aggregate(pipeline, **kwargs),
            kind=_WRITE if writes else _READ,
            name="aggregate",
        )
        await cursor._prime()
        return cursor

    async def count_documents(self, collection: Any, filter: Any, **kwargs: Any) -> int:
        result: int = await self._run(
            _READ, "count_documents", collection, lambda c: c.count_documents(filter, **kwargs)
        )
        return result

    async def distinct(self, collection: Any, key: str, *args: Any, **kwargs: Any) -> list[Any]:
        result: list[Any] = await self._run(
            _READ, "distinct", collection, lambda c: c.distinct(key, *args, **kwargs)
        )
        return result

    async def list_indexes(self, collection: Any, **kwargs: Any) -> list[Any]:
        async def op(c: Any) -> list[Any]:
            cursor = await c.list_indexes(**kwargs)
            indexes: list[Any] = await cursor.to_list()
            return indexes

        result: list[Any] = await self._run(_READ, "list_indexes", collection, op)
        return result

    async def index_information(self, collection: Any, **kwargs: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._run(
            _READ, "index_information", collection, lambda c: c.index_information(**kwargs)
        )
        return result

    async def watch(self, collection: Any, *args: Any, **kwargs: Any) -> Any:
        """pymongo's change stream (it resumes by itself); only its creation is retried."""
        return await self._run(_READ, "watch", collection, lambda c: c.watch(*args, **kwargs))

    # --- writes -------------------------------------------------------------------------------

    async def insert_one(
        self, collection: Any, document: Any, *args: Any, **kwargs: Any
    ) -> InsertOneResult:
        """Assigns ``_id`` first; a retry that hits our own ``_id`` means it had landed."""
        if "_id" not in document:
            document["_id"] = ObjectId()
        oid = document["_id"]
        attempts = 0

        async def op(c: Any) -> InsertOneResult:
            nonlocal attempts
            attempts += 1
            try:
                done: InsertOneResult = await c.insert_one(document, *args, **kwargs)
                return done
            except pymongo.errors.DuplicateKeyError:
                if attempts > 1 and await c.count_documents({"_id": oid}, limit=1):
                    return InsertOneResult(oid, acknowledged=True)
                raise

        result: InsertOneResult = await self._run(_IDEMPOTENT, "insert_one", collection, op)
        return result

    async def insert_many(
        self, collection: Any, documents: Sequence[Any], ordered: bool = True, **kwargs: Any
    ) -> InsertManyResult:
        """Assigns ``_id`` first; retries go unordered and count duplicates of our own ids
        as already inserted (an ``_id`` the caller chose cannot be told from ours)."""
        documents = list(documents)
        for document in documents:
            if "_id" not in document:
                document["_id"] = ObjectId()
        ids = [document["_id"] for document in documents]
        attempts = 0

        async def op(c: Any) -> InsertManyResult:
            nonlocal attempts
            attempts += 1
            try:
                await c.insert_many(
                    documents,
                    ordered=ordered if attempts == 1 else False,
                    **kwargs,
                )
            except pymongo.errors.BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                _raise_write_concern_error(exc)
                if attempts == 1:
                    raise
                if any(error.get("code") != 11000 for error in errors):
                    raise
                dup_ids = [ids[error["index"]] for error in errors]
                if await c.count_documents({"_id": {"$in": dup_ids}}) != len(set(dup_ids)):
                    raise
            return InsertManyResult(ids, acknowledged=True)

        result: InsertManyResult = await self._run(_IDEMPOTENT, "insert_many", collection, op)
        return result

    async def update_one(self, collection: Any, filter: Any, update: Any, **kwargs: Any) -> Any:
        kind = _IDEMPOTENT if is_idempotent_update(update) else _WRITE
        return await self._run(
            kind, "update_one", collection, lambda c: c.update_one(filter, update, **kwargs)
        )

    async def update_many(self, collection: Any, filter: Any, update: Any, **kwargs: Any) -> Any:
        return await self._run(
            _MULTI, "update_many", collection, lambda c: c.update_many(filter, update, **kwargs)
        )

    async def replace_one(
        self,
        collection: Any,
        filter: Any,
        replacement: Any,
        **kwargs: Any,
    ) -> Any:
        kind = _IDEMPOTENT if is_idempotent_update(replacement) else _WRITE
        return await self._run(
            kind, "replace_one", collection, lambda c: c.replace_one(filter, replacement, **kwargs)
        )

    async def delete_one(self, collection: Any, filter: Any, **kwargs: Any) -> Any:
        kind = _IDEMPOTENT if is_single_id_filter(filter) else _WRITE
        return await self._run(
            kind,
            "delete_one",
            collection,
            lambda c: c.delete_one(filter, **kwargs),
        )

    async def delete_many(self, collection: Any, filter: Any, **kwargs: Any) -> Any:
        return await self._run(
            _MULTI, "delete_many", collection, lambda c: c.delete_many(filter, **kwargs)
        )

    async def bulk_write(self, collection: Any, requests: Sequence[Any], **kwargs: Any) -> Any:
        return await self._run(
            _MULTI, "bulk_write", collection, lambda c: c.bulk_write(requests, **kwargs)
        )

    async def find_one_and_update(
        self,
        collection: Any,
        filter: Any,
        update: Any,
        **kwargs: Any,
    ) -> Any:
        kind = _IDEMPOTENT if is_idempotent_update(update) else _WRITE
        return await self._run(
            kind,
            "find_one_and_update",
            collection,
            lambda c: c.find_one_and_update(filter, update, **kwargs),
        )

    async def find_one_and_replace(
        self, collection: Any, filter: Any, replacement: Any, **kwargs: Any
    ) -> Any:
        kind = _IDEMPOTENT if is_idempotent_update(replacement) else _WRITE
        return await self._run(
            kind,
            "find_one_and_replace",
            collection,
            lambda c: c.find_one_and_replace(filter, replacement, **kwargs),
        )

    async def find_one_and_delete(self, collection: Any, filter: Any, **kwargs: Any) -> Any:
        kind = _IDEMPOTENT if is_single_id_filter(filter) else _WRITE
        return await self._run(
            kind,
            "find_one_and_delete",
            collection,
            lambda c: c.find_one_and_delete(filter, **kwargs),
        )

    async def create_index(self, collection: Any, keys: Any, **kwargs: Any) -> str:
        result: str = await self._run(
            _IDEMPOTENT, "create_index", collection, lambda c: c.create_index(keys, **kwargs)
        )
        return result

    async def create_indexes(self, collection: Any, indexes: Sequence[Any], **kwargs: Any) -> Any:
        return await self._run(
            _IDEMPOTENT, "create_indexes", collection, lambda c: c.create_indexes(indexes, **kwargs)
        )

    async def drop_index(self, collection: Any, index: Any, **kwargs: Any) -> None:
        await self._run(
            _IDEMPOTENT,
            "drop_index",
            collection,
            lambda c: c.drop_index(index, **kwargs),
        )


def _raise_write_concern_error(exc: pymongo.errors.BulkWriteError) -> None:
    """A bulk write whose only failure is its write concern: re-raise it as the
    WriteConcernError it is, so that its code decides whether to retry."""
    details = exc.details
    concern = details.get("writeConcernErrors") or []
    if concern and not details.get("writeErrors"):
        first = concern[-1]
        raise pymongo.errors.WriteConcernError(
            str(first.get("errmsg", "write concern error")), first.get("code"), first
        ) from exc


def _policy(retries: int | None, delay: float, deadline: float | None) -> RetryPolicy:
    return RetryPolicy(
        initial_delay=delay,
        max_delay=max(MAX_DELAY, delay),
        jitter="full",
        max_attempts=None if retries is None else retries + 1,
        deadline=deadline,
    )


def _settings(host: str, port: int, options: Mapping[str, Any]) -> TopologySettings:
    """Seeds and replica-set name as pymongo reads them from the client arguments."""
    lower = {key.lower(): value for key, value in options.items()}
    if host.startswith(("mongodb://", "mongodb+srv://")):
        parsed = parse_uri(host, port)
        nodes = parsed["nodelist"]
        lower = {**{k.lower(): v for k, v in parsed["options"].items()}, **lower}
    else:
        nodes = split_hosts(host, port)
    return TopologySettings(
        tuple(Address.of(node) for node in nodes),
        replica_set_name=lower.get("replicaset"),
        direct_connection=lower.get("directconnection"),
    )

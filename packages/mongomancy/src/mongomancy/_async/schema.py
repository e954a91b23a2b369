"""The data-definition layer: collections bound to an engine, and ``create_all``.

``AsyncDatabase`` only stores :class:`~mongomancy.types.CollectionDefinition` values until
``create_all`` turns them into collections, indexes and default documents, under a lease lock so
that many processes starting at once do the work once. Every operation goes through the engine,
so it is retried across primary switches and always runs on the engine's current client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol

import pymongo.asynchronous.collection
import pymongo.asynchronous.database
from pymongo.errors import CollectionInvalid, DuplicateKeyError, OperationFailure

from ..drift import (
    CreateAllReport,
    IndexDrift,
    same_options,
    server_key,
    server_options,
)
from ..errors import DefinitionError
from ..types import BsonDict, CollectionDefinition, Document, Index
from .lock import LOCK_COLLECTION, AsyncCreateAllLock

__all__ = [
    "AsyncCollection",
    "AsyncDatabase",
    "AsyncExecutor",
]

_NAMESPACE_EXISTS = 48


class AsyncExecutor(Protocol):
    """What the schema layer needs of an engine (``AsyncEngine`` provides it)."""

    @property
    def client(self) -> Any: ...

    def get_database(self, name: str) -> pymongo.asynchronous.database.AsyncDatabase[Any]: ...

    def register_hook(self, hook: Any) -> Any: ...

    async def ping(self, *args: Any, **kwargs: Any) -> Any: ...

    async def drop_database(self, name: str) -> Any: ...

    def find(self, collection: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def find_one(self, collection: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def insert_one(self, collection: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def insert_many(self, collection: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def update_one(self, collection: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def update_many(self, collection: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def replace_one(self, collection: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def delete_one(self, collection: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def delete_many(self, collection: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def aggregate(self, collection: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def count_documents(self, collection: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def distinct(self, collection: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def bulk_write(self, collection: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def find_one_and_update(self, collection: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def find_one_and_replace(self, collection: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def find_one_and_delete(self, collection: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def create_index(self, collection: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def create_indexes(self, collection: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def drop_index(self, collection: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def list_indexes(self, collection: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def index_information(self, collection: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def watch(self, collection: Any, *args: Any, **kwargs: Any) -> Any: ...


class AsyncCollection:
    """A pymongo collection whose every operation goes through the engine (and its retries).

    The engine re-resolves ``database.name``/``name`` on its current client at each attempt, so
    a reconnect never leaves this object pointing at a closed client.
    """

    __slots__ = ("dialect_entity", "engine")

    def __init__(
        self,
        dialect_entity: pymongo.asynchronous.collection.AsyncCollection[Any],
        engine: AsyncExecutor,
    ) -> None:
        self.dialect_entity = dialect_entity
        self.engine = engine

    @property
    def pymongo_collection(self) -> pymongo.asynchronous.collection.AsyncCollection[Any]:
        """The original's alias of ``dialect_entity``."""
        return self.dialect_entity

    @property
    def name(self) -> str:
        return self.dialect_entity.name

    @property
    def full_name(self) -> str:
        return self.dialect_entity.full_name

    @property
    def database(self) -> pymongo.asynchronous.database.AsyncDatabase[Any]:
        return self.dialect_entity.database

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.full_name!r})"

    def find(self, *args: Any, **kwargs: Any) -> Any:
        """A cursor wrapper (iterate it; not awaitable)."""
        return self.engine.find(self, *args, **kwargs)

    async def find_one(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.find_one(self, *args, **kwargs)

    async def insert_one(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.insert_one(self, *args, **kwargs)

    async def insert_many(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.insert_many(self, *args, **kwargs)

    async def update_one(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.update_one(self, *args, **kwargs)

    async def update_many(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.update_many(self, *args, **kwargs)

    async def replace_one(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.replace_one(self, *args, **kwargs)

    async def delete_one(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.delete_one(self, *args, **kwargs)

    async def delete_many(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.delete_many(self, *args, **kwargs)

    async def aggregate(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.aggregate(self, *args, **kwargs)

    async def count_documents(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.count_documents(self, *args, **kwargs)

    async def distinct(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.distinct(self, *args, **kwargs)

    async def bulk_write(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.bulk_write(self, *args, **kwargs)

    async def find_one_and_update(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.find_one_and_update(self, *args, **kwargs)

    async def find_one_and_replace(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.find_one_and_replace(self, *args, **kwargs)

    async def find_one_and_delete(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.find_one_and_delete(self, *args, **kwargs)

    async def create_index(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.create_index(self, *args, **kwargs)

    async def create_indexes(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.create_indexes(self, *args, **kwargs)

    async def drop_index(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.drop_index(self, *args, **kwargs)

    async def list_indexes(self, *args: Any, **kwargs: Any) -> Any:
        """The collection's indexes as a list of dicts."""
        return await self.engine.list_indexes(self, *args, **kwargs)

    async def index_information(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.index_information(self, *args, **kwargs)

    async def watch(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.watch(self, *args, **kwargs)


class AsyncDatabase:
    """Collection definitions for one database, bound to an engine.

    ``name`` defaults to the default database of the engine's connection string
    (``mongodb://host/<name>``), else ``"test"``, as pymongo's ``get_default_database``.
    """

    def __init__(
        self,
        name: str | None = None,
        logger: logging.Logger | None = None,
        engine: AsyncExecutor | None = None,
        *collections: CollectionDefinition,
        wait_step: float = 0.25,
        max_wait: float = 60.0,
        lock_lease: float = 30.0,
    ) -> None:
        if engine is None:
            raise DefinitionError("a Database needs an engine")
        self.engine = engine
        self.logger = logger or logging.getLogger("mongomancy.schema")
        self.name = name if name is not None else engine.client.get_default_database("test").name
        self.wait_step = wait_step
        self.max_wait = max_wait
        self.lock_lease = lock_lease
        self.topology: list[CollectionDefinition] = []
        self._collections: dict[str, AsyncCollection] = {}
        self._database = engine.get_database(self.name)
        self.extend(*collections)
        engine.register_hook(self.invalidate_cache_hook)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {[d.name for d in self.topology]!r})"

    def invalidate_cache_hook(self, source: Any) -> None:
        """Re-bind the cached collections to the engine's new client (called after reconnects)."""
        self._database = source.get_database(self.name)
        for name, collection in list(self._collections.items()):
            collection.dialect_entity = self._database[name]

    # --- definitions -------------------------------------------------------------------------

    def _definition(self, name: str) -> CollectionDefinition | None:
        return next((d for d in self.topology if d.name == name), None)

    def add_collection(self, definition: CollectionDefinition) -> None:
        """Add a definition; re-adding an equal one is a no-op, a different one an error."""
        if not isinstance(definition, CollectionDefinition):
            raise DefinitionError(f"expected a CollectionDefinition, got {definition!r}")
        known = self._definition(definition.name)
        if known is None:
            self.topology.append(definition)
        elif known != definition:
            raise DefinitionError(f"collection {definition.name!r} is already defined otherwise")

    def extend(self, *new_definitions: CollectionDefinition) -> None:
        for definition in new_definitions:
            self.add_collection(definition)

    def _bind(self, name: str) -> AsyncCollection:
        return AsyncCollection(self._database[name], self.engine)

    def get_collection(self, name: str) -> AsyncCollection:
        """The defined collection ``name``; ``KeyError`` if it has no definition."""
        if self._definition(name) is None:
            raise KeyError(name)
        if name not in self._collections:
            self._collections[name] = self._bind(name)
        return self._collections[name]

    def __getitem__(self, name: str) -> AsyncCollection:
        return self.get_collection(name)

    def __getattr__(self, name: str) -> AsyncCollection:
        if name.startswith("_") or "topology" not in self.__dict__:
            raise AttributeError(name)
        try:
            return self.get_collection(name)
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__} has no attribute or collection {name!r}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._definition(name) is not None

    # --- server ------------------------------------------------------------------------------

    async def ping(self) -> bool:
        return bool(await self.engine.ping())

    async def list_collection_names(self) -> list[str]:
        return list(await self.engine.get_database(self.name).list_collection_names())

    async def drop(self) -> None:
        """Drop the whole database on the server (definitions are kept)."""
        await self.engine.drop_database(self.name)

    async def _ensure_collection(self, name: str) -> bool:
        """Create ``name`` if missing; True if this call created it (a racing creator wins)."""
        if name in await self.list_collection_names():
            return False
        try:
            await self.engine.get_database(self.name).create_collection(name)
        except CollectionInvalid:
            return False
        except OperationFailure as error:
            if error.code != _NAMESPACE_EXISTS:
                raise
            return False
        return True

    async def create_collection(self, definition: CollectionDefinition) -> AsyncCollection:
        """Add ``definition`` and create its collection on the server if missing.

        Indexes and documents are left to ``create_all``.
        """
        self.add_collection(definition)
        await self._ensure_collection(definition.name)
        return self.get_collection(definition.name)

    # --- create_all --------------------------------------------------------------------------

    async def create_all(self, skip_existing: bool = True, repair: bool = False) -> CreateAllReport:
        """Create every defined collection, its indexes and its default documents.

        Missing indexes and default documents are applied to new collections, and to existing
        ones with ``skip_existing=False``. Index drift (same name with another spec, or the same
        key pattern under another name or options) is always reported, and dropped and
        re-created only with ``repair=True``. Runs under the ``create_all`` lease lock.
        """
        created: list[str] = []
        indexes: list[tuple[str, str]] = []
        drift: list[IndexDrift] = []
        upserted: list[tuple[str, BsonDict]] = []
        inserted: list[tuple[str, int]] = []
        lock = AsyncCreateAllLock(
            self._bind(LOCK_COLLECTION),
            self.name,
            wait_step=self.wait_step,
            max_wait=self.max_wait,
            lease=self.lock_lease,
            logger=self.logger,
        )
        async with lock:
            for definition in list(self.topology):
                await lock.renew()
                is_new = await self._ensure_collection(definition.name)
                if is_new:
                    created.append(definition.name)
                collection = self.get_collection(definition.name)
                apply = is_new or not skip_existing
                await self._sync_indexes(collection, definition, apply, repair, indexes, drift)
                if apply:
                    await self._apply_documents(collection, definition, upserted, inserted)
        return CreateAllReport(
            tuple(created), tuple(indexes), tuple(drift), tuple(upserted), tuple(inserted)
        )

    async def _create_index(self, collection: AsyncCollection, index: Index) -> str:
        name = index.name_in(collection.name)
        await collection.create_index(index.field_for_mongo(), name=name, **index.options())
        return name

    async def _sync_indexes(
        self,
        collection: AsyncCollection,
        definition: CollectionDefinition,
        apply: bool,
        repair: bool,
        created: list[tuple[str, str]],
        drift: list[IndexDrift],
    ) -> None:
        existing = [s for s in await collection.list_indexes() if s.get("name") != "_id_"]
        for index in definition.indices:
            name = index.name_in(collection.name)
            key, options = tuple(index.fields), index.options()
            same_name = [s for s in existing if s["name"] == name]
            same_key = [s for s in existing if s["name"] != name and server_key(s) == key]
            if (
                same_name
                and server_key(same_name[0]) == key
                and same_options(options, server_options(same_name[0]))
            ):
                continue
            conflicts = same_name or same_key
            if not conflicts:
                if apply:
                    created.append((collection.name, await self._create_index(collection, index)))
                continue
            for spec in conflicts:
                found = IndexDrift(
                    collection=collection.name,
                    name=name,
                    expected_key=key,
                    expected_options=options,
                    actual_name=spec["name"],
                    actual_key=server_key(spec),
                    actual_options=server_options(spec),
                    repaired=repair,
                )
                self.logger.warning(
                    "index drift in %s: %s defined as %s %s, but %s on the server is %s %s%s",
                    collection.full_name,
                    name,
                    list(key),
                    options,
                    spec["name"],
                    list(found.actual_key),
                    found.actual_options,
                    " (repairing)" if repair else " (left alone; create_all(repair=True) fixes it)",
                )
                drift.append(found)
                if repair:
                    await collection.drop_index(spec["name"])
            if repair:
                existing = [s for s in existing if s not in conflicts]
                created.append((collection.name, await self._create_index(collection, index)))

    async def _apply_documents(
        self,
        collection: AsyncCollection,
        definition: CollectionDefinition,
        upserted: list[tuple[str, BsonDict]],
        inserted: list[tuple[str, int]],
    ) -> None:
        keyless: list[Document] = [d for d in definition.default_docs if d.unique_key is None]
        if keyless and await collection.count_documents({}, limit=1) == 0:
            # Copies: the driver adds ``_id`` to the dicts it inserts.
            await collection.insert_many([dict(d.data) for d in keyless])
            inserted.append((collection.name, len(keyless)))
        for document in _keyed(definition.default_docs):
            key = dict(document.unique_key or {})
            try:
                result = await collection.update_one(
                    key, {"$setOnInsert": dict(document.data)}, upsert=True
                )
            except DuplicateKeyError:
                continue  # inserted meanwhile by someone not holding the lock
            if result.upserted_id is not None:
                upserted.append((collection.name, key))


def _keyed(documents: Iterable[Document]) -> list[Document]:
    return [d for d in documents if d.unique_key is not None]

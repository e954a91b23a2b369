"""In-memory replicas of a collection, kept current by the operations an observer hands them.

Initial sync, done so that no write is lost (the original recipe snapshotted first and read the
oplog position second, losing every write made in between)::

    replica = ReactiveCollection(collection)  # empty: the observer needs its handler first
    observer = await Observer.init_async(     # 1. captures the position (current end)
        oplog=client.local["oplog.rs"], operation_handler=replica, on_resync=replica.resync
    )
    await replica.resync()                    # 2. then the snapshot
    await observer.observe_changes()          # 3. then replay from the position

Operations already in the snapshot are replayed, so every handler is idempotent: an insert of a
held ``_id`` replaces it, a delete of a missing one is a no-op, an update of a missing one is
ignored (the document was deleted later; its delete follows) and set/unset diffs converge when
applied again. When a replayed diff no longer fits the newer document (a sub-diff into a field a
later write removed, a change event's path under a parent that no longer exists) the document is
re-read from the server instead, since that copy is at least as new as the operation.
``init_async`` (snapshot at once) suits an observer whose position was captured earlier.

On a lost history the observer calls :meth:`ReactiveCollection.resync`, which re-snapshots.
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Self

from .errors import MalformedChange, ObserverError
from .handlers import OperationHandler
from .updates import apply_oplog_update, apply_update_description

__all__ = [
    "Change",
    "ChangeCallback",
    "QuerySupportMissing",
    "ReactiveCollection",
    "ReactivePartialCollection",
]

logger = logging.getLogger(__name__)

Document = dict[str, Any]
ChangeKind = Literal["insert", "update", "delete", "resync"]


@dataclass(frozen=True)
class Change:
    """One change of a replica, as its subscribers see it.

    ``before``/``after`` are copies (``None`` where the document is absent); a ``"resync"`` has
    ``_id`` ``None`` and neither, because the whole replica was replaced.
    """

    kind: ChangeKind
    _id: Any
    before: Document | None
    after: Document | None


ChangeCallback = Callable[[Change], Awaitable[None] | None]


class QuerySupportMissing(ObserverError, ImportError):
    """Query matching needs the optional ``query`` extra (mongomock's matcher is reused)."""


def _matcher() -> Callable[[Mapping[str, Any], Mapping[str, Any]], bool]:
    try:
        from mongomock.filtering import filter_applies
    except ImportError as exc:
        raise QuerySupportMissing(
            "query matching needs mongomock: pip install 'mongo-observer[query]'"
        ) from exc
    matcher: Callable[[Mapping[str, Any], Mapping[str, Any]], bool] = filter_applies
    return matcher


def _is_full_document(o: Mapping[str, Any]) -> bool:
    """A replacement (no ``$`` keys) carries the whole document, so it can be stored as is."""
    return bool(o) and not any(key.startswith("$") for key in o)


class ReactiveCollection(OperationHandler):
    """A read-only in-memory replica of one collection, keyed by ``_id``.

    Only operations whose ``ns`` is this collection's full name are applied, so one replica never
    absorbs documents of another collection, even without a namespace filter. Readers get copies:
    the replica cannot be corrupted through a returned document.
    """

    def __init__(self, collection: Any) -> None:
        super().__init__()
        self.collection = collection
        self.namespace: str = collection.full_name
        self._documents: dict[Any, Document] = {}
        self._subscribers: list[ChangeCallback] = []

    @classmethod
    async def init_async(cls, collection: Any) -> Self:
        """Snapshot ``collection`` (a pymongo ``AsyncCollection`` or motor collection)."""
        replica = cls(collection)
        replica._documents = await replica._snapshot()
        return replica

    # --- snapshot ---------------------------------------------------------------------------

    async def _snapshot(self) -> dict[Any, Document]:
        documents: dict[Any, Document] = {}
        async for document in self.collection.find({}):
            documents[document["_id"]] = document
        return documents

    async def resync(self) -> None:
        """Replace the replica by a fresh snapshot (after lost history) and emit ``"resync"``."""
        self._documents = await self._snapshot()
        await self._emit(Change("resync", None, None, None))

    # --- reads ------------------------------------------------------------------------------

    def get(self, _id: Any, default: Document | None = None) -> Document | None:
        document = self._documents.get(_id)
        return default if document is None else self._view(document)

    def __getitem__(self, _id: Any) -> Document:
        return self._view(self._documents[_id])

    def __contains__(self, _id: object) -> bool:
        return _id in self._documents

    def __iter__(self) -> Iterator[Document]:
        """Copies of the documents; a snapshot of the ids, so handlers may run meanwhile."""
        for document in list(self._documents.values()):
            yield self._view(document)

    def __len__(self) -> int:
        return len(self._documents)

    def find(self, filter: Mapping[str, Any] | None = None) -> list[Document]:
        """Documents matching a MongoDB query ``filter``, matched by mongomock's matcher."""
        if not filter:
            return list(self)
        applies = _matcher()
        return [self._view(doc) for doc in list(self._documents.values()) if applies(filter, doc)]

    def _view(self, document: Document) -> Document:
        return copy.deepcopy(document)

    # --- subscriptions ----------------------------------------------------------------------

    def subscribe(self, callback: ChangeCallback) -> Callable[[], None]:
        """Call ``callback(change)`` (sync or async) after each change; returns an unsubscriber.

        A callback's exception is logged and does not stop the others or the observation,
        except ``ShouldStopObservation`` (a ``KeyboardInterrupt``), which propagates on purpose.
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    async def _emit(self, change: Change) -> None:
        for callback in list(self._subscribers):
            try:
                result = callback(change)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("subscriber %r failed on %s change", callback, change.kind)

    async def _store(self, _id: Any, document: Document | None) -> None:
        """Put (or, with ``None``, drop) a document and tell subscribers what changed."""
        before = self._documents.get(_id)
        if document is None:
            if before is None:
                return
            del self._documents[_id]
            await self._emit(Change("delete", _id, self._view(before), None))
            return
        self._documents[_id] = document
        if before is None:
            await self._emit(Change("insert", _id, None, self._view(document)))
        elif before != document:  # a replayed operation changes nothing: no event
            await self._emit(Change("update", _id, self._view(before), self._view(document)))

    # --- operations -------------------------------------------------------------------------

    def _concerns(self, operation: Mapping[str, Any]) -> bool:
        return operation.get("ns") == self.namespace

    async def on_insert(self, operation: Mapping[str, Any]) -> None:
        if not self._concerns(operation):
            return
        document = copy.deepcopy(dict(operation["o"]))
        await self._store(document["_id"], document)

    async def on_delete(self, operation: Mapping[str, Any]) -> None:
        if self._concerns(operation):
            await self._store(operation["o"]["_id"], None)

    async def on_update(self, operation: Mapping[str, Any]) -> None:
        if not self._concerns(operation):
            return
        _id = operation["o2"]["_id"]
        o: Mapping[str, Any] = operation["o"]
        current = self._documents.get(_id)
        if current is None:
            await self._update_unknown(_id, o)
            return
        try:
            updated = self._apply(current, o)
        except MalformedChange as exc:
            logger.warning("%s: cannot apply update to _id %r (%s); re-reading it", self, _id, exc)
            await self._store(_id, await self.collection.find_one({"_id": _id}))
            return
        await self._store(_id, updated)

    async def _update_unknown(self, _id: Any, o: Mapping[str, Any]) -> None:
        """An update of a document not held: during replay it was deleted later, so skip it."""
        if _is_full_document(o):
            await self._store(_id, {**copy.deepcopy(dict(o)), "_id": _id})
        else:
            logger.info("%s: update of unknown _id %r ignored", self, _id)

    @staticmethod
    def _apply(document: Document, o: Mapping[str, Any]) -> Document:
        if o.get("$v") == "cs":  # a change event converted to the oplog shape
            return apply_update_description(document, o["updateDescription"])
        return apply_oplog_update(document, o)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.namespace} ({len(self)} documents)>"


class ReactivePartialCollection(ReactiveCollection):
    """A replica of the documents matching ``filter``, optionally projected.

    Membership is decided on the full document, so full documents are held internally and the
    projection is applied to what readers and subscribers get: projecting at the server would
    drop fields that later diffs touch or the filter tests. A document entering or leaving the
    filter is reported as ``"insert"``/``"delete"``.

    Cost: an update of a document that is not held may make it match, and a diff alone cannot
    tell, so every such update costs one ``find_one({"_id": ...})`` round trip to the server. A
    selective filter on a busy collection pays that for most updates. Membership is tested with
    mongomock's matcher, so this class needs the ``query`` extra (:class:`QuerySupportMissing`).
    """

    def __init__(
        self,
        collection: Any,
        filter: Mapping[str, Any],
        projection: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(collection)
        self.filter: dict[str, Any] = dict(filter)
        self.projection: dict[str, Any] | None = _check_projection(projection)
        self._applies = _matcher()

    @classmethod
    async def init_async(  # type: ignore[override]
        cls,
        collection: Any,
        filter: Mapping[str, Any],
        projection: Mapping[str, Any] | None = None,
    ) -> Self:
        replica = cls(collection, filter, projection)
        replica._documents = await replica._snapshot()
        return replica

    async def _snapshot(self) -> dict[Any, Document]:
        documents: dict[Any, Document] = {}
        async for document in self.collection.find(self.filter):
            documents[document["_id"]] = document
        return documents

    def _view(self, document: Document) -> Document:
        if self.projection is None:
            return copy.deepcopy(document)
        return _project(document, self.projection)

    def find(self, filter: Mapping[str, Any] | None = None) -> list[Document]:
        """Held documents matching ``filter``, tested on the full documents, returned projected."""
        if not filter:
            return list(self)
        return [
            self._view(doc) for doc in list(self._documents.values()) if self._applies(filter, doc)
        ]

    def _matches(self, document: Document | None) -> bool:
        return document is not None and bool(self._applies(self.filter, document))

    async def _store(self, _id: Any, document: Document | None) -> None:
        """Keep only members: a non-matching document is dropped (a "delete" if it was held)."""
        await super()._store(_id, document if self._matches(document) else None)

    async def _update_unknown(self, _id: Any, o: Mapping[str, Any]) -> None:
        """The update may have made the document match: ask the server for its current state."""
        if _is_full_document(o):
            await self._store(_id, {**copy.deepcopy(dict(o)), "_id": _id})
            return
        await self._store(_id, await self.collection.find_one({"_id": _id}))


# --- projection -----------------------------------------------------------------------------


def _check_projection(projection: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Accept simple projections only: all inclusions or all exclusions (``_id`` either way)."""
    if not projection:
        return None
    kinds = {bool(value) for key, value in projection.items() if key != "_id"}
    if len(kinds) > 1:
        raise ValueError(f"projection mixes inclusion and exclusion: {dict(projection)!r}")
    if any(not isinstance(v, bool | int) for v in projection.values()):
        raise ValueError(f"only 0/1 projections are supported: {dict(projection)!r}")
    return dict(projection)


def _project(document: Document, projection: Mapping[str, Any]) -> Document:
    fields = {key: bool(value) for key, value in projection.items() if key != "_id"}
    keep_id = bool(projection.get("_id", True))
    if any(fields.values()) or (not fields and keep_id):  # inclusion; mixing was refused
        result: Document = _include(document, [key.split(".") for key in fields])
        if keep_id and "_id" in document:
            result = {"_id": copy.deepcopy(document["_id"]), **result}
    else:
        result = copy.deepcopy(document)
        for key in fields:
            _exclude(result, key.split("."))
    if not keep_id:
        result.pop("_id", None)
    return result


def _include(value: Any, paths: list[list[str]]) -> Any:
    """Like the server: an included path keeps matching sub-fields, also inside arrays."""
    if isinstance(value, list):
        return [_include(item, paths) for item in value if isinstance(item, dict | list)]
    result: Document = {}
    for key, item in value.items():
        rests = [path[1:] for path in paths if path[0] == key]
        if not rests:
            continue
        if any(not rest for rest in rests):
            result[key] = copy.deepcopy(item)
        elif isinstance(item, dict | list):
            result[key] = _include(item, rests)
    return result


def _exclude(value: Any, path: list[str]) -> None:
    if isinstance(value, list):
        for item in value:
            _exclude(item, path)
    elif isinstance(value, dict) and path[0] in value:
        if len(path) == 1:
            del value[path[0]]
        else:
            _exclude(value[path[0]], path[1:])

"""Store work run on the store thread: mongomock calls plus the before/after images the oplog needs.

Each function takes the mongomock client first and returns plain data, so it can be handed to
:meth:`Store.run` as is and never touches the event loop.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import mongomock
from mongomock import DuplicateKeyError, OperationFailure

from ._array_filters import lower_array_filters
from .base import CommandError

__all__ = ["Change", "store_error"]


@dataclass(frozen=True)
class Change:
    """One document-level change: what the oplog and change streams will see."""

    op: str  # "i", "u", "d"
    namespace: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    replacement: bool = False


def store_error(exc: Exception) -> CommandError:
    """mongomock's exception as MongoDB's error reply."""
    if isinstance(exc, DuplicateKeyError):
        return CommandError(11000, "DuplicateKey", f"E11000 duplicate key error: {exc}")
    if isinstance(exc, OperationFailure):
        code = exc.code if isinstance(exc.code, int) else 2
        return CommandError(code, "BadValue" if code == 2 else "OperationFailed", str(exc))
    if isinstance(exc, NotImplementedError):
        return CommandError(115, "CommandNotSupported", f"not supported by the simulator: {exc}")
    return CommandError(2, "BadValue", f"{type(exc).__name__}: {exc}")


def collection(client: Any, namespace: str) -> Any:
    database, _, name = namespace.partition(".")
    return client[database][name]


def insert(
    client: Any, namespace: str, documents: Sequence[dict[str, Any]], ordered: bool
) -> tuple[int, list[dict[str, Any]], list[Change]]:
    coll = collection(client, namespace)
    errors: list[dict[str, Any]] = []
    changes: list[Change] = []
    for index, document in enumerate(documents):
        try:
            coll.insert_one(document)
        except Exception as exc:
            error = store_error(exc)
            errors.append({"index": index, "code": error.code, "errmsg": error.message})
            if ordered:
                break
            continue
        # The stored document is the one sent: log a copy rather than scan for it again.
        changes.append(Change("i", namespace, None, copy.deepcopy(document)))
    return len(changes), errors, changes


def update(
    client: Any, namespace: str, statements: Sequence[Mapping[str, Any]], ordered: bool
) -> tuple[dict[str, Any], list[Change]]:
    coll = collection(client, namespace)
    matched = modified = 0
    upserted: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    changes: list[Change] = []
    for index, statement in enumerate(statements):
        try:
            n, m, new_id, done = _update_one_statement(coll, namespace, statement)
        except Exception as exc:
            error = exc if isinstance(exc, CommandError) else store_error(exc)
            errors.append({"index": index, "code": error.code, "errmsg": error.message})
            if ordered:
                break
            continue
        matched += n
        modified += m
        changes.extend(done)
        if new_id is not None:
            upserted.append({"index": index, "_id": new_id})
    reply: dict[str, Any] = {"n": matched + len(upserted), "nModified": modified}
    if upserted:
        reply["upserted"] = upserted
    if errors:
        reply["writeErrors"] = errors
    return reply, changes


def _update_one_statement(
    coll: Any, namespace: str, statement: Mapping[str, Any]
) -> tuple[int, int, Any, list[Change]]:
    query = statement.get("q") or {}
    spec = statement.get("u")
    multi = bool(statement.get("multi"))
    upsert = bool(statement.get("upsert"))
    array_filters = statement.get("arrayFilters")
    if array_filters is not None and not isinstance(array_filters, list):
        raise CommandError(14, "TypeMismatch", "arrayFilters must be an array")
    replacement = isinstance(spec, Mapping) and not any(k.startswith("$") for k in spec)
    if isinstance(spec, list):
        raise CommandError(115, "CommandNotSupported", "pipeline updates are not simulated")
    if not isinstance(spec, Mapping):
        raise CommandError(9, "FailedToParse", "update must be a document")
    if replacement and multi:
        raise CommandError(9, "FailedToParse", "multi update is not supported for replacement")
    ids = [d["_id"] for d in coll.find(query, {"_id": 1})]
    if not multi:
        ids = ids[:1]
    changes: list[Change] = []
    modified = 0
    for doc_id in ids:
        before = coll.find_one({"_id": doc_id})
        if replacement:
            coll.replace_one({"_id": doc_id}, dict(spec))
        else:
            lowered = lower_arithmetic(lower_array_filters(spec, before, array_filters), before)
            if lowered:
                coll.update_one({"_id": doc_id}, lowered)
        after = coll.find_one({"_id": doc_id})
        if after != before:
            modified += 1
            changes.append(Change("u", namespace, before, after, replacement))
    if ids or not upsert:
        return len(ids), modified, None, changes
    if replacement:
        result = coll.replace_one(query, dict(spec), upsert=True)
    else:
        lowered = lower_arithmetic(lower_array_filters(spec, {}, array_filters), {})
        result = coll.update_one(query, lowered, upsert=True)
    new_id = result.upserted_id
    changes.append(Change("i", namespace, None, coll.find_one({"_id": new_id})))
    return 0, 0, new_id, changes


_MISSING = object()


def lower_arithmetic(spec: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` with ``$mul`` and ``$bit`` turned into ``$set`` of what the server would compute.

    mongomock implements neither; the value is computed from ``before`` (the document as it is
    now, on the store's single thread), so the result and the logged diff match a real server.
    """
    if "$mul" not in spec and "$bit" not in spec:
        return dict(spec)
    lowered = {key: value for key, value in spec.items() if key not in ("$mul", "$bit")}
    computed: dict[str, Any] = {}
    for path, factor in dict(spec.get("$mul") or {}).items():
        current = _field(before, path)
        if not _is_number(factor):
            raise CommandError(14, "TypeMismatch", f"cannot multiply by non-numeric {factor!r}")
        if current is _MISSING:
            computed[path] = 0.0 if isinstance(factor, float) else 0
        elif not _is_number(current):
            raise CommandError(14, "TypeMismatch", f"cannot apply $mul to non-numeric {path!r}")
        else:
            computed[path] = current * factor
    for path, operations in dict(spec.get("$bit") or {}).items():
        value = _field(before, path)
        value = 0 if value is _MISSING else value
        if not isinstance(value, int) or isinstance(value, bool):
            raise CommandError(14, "TypeMismatch", f"cannot apply $bit to non-integer {path!r}")
        for operation, operand in dict(operations).items():
            if operation not in ("and", "or", "xor") or not isinstance(operand, int):
                raise CommandError(9, "FailedToParse", f"bad $bit operation {operation!r}")
            value = {"and": value & operand, "or": value | operand, "xor": value ^ operand}[
                operation
            ]
        computed[path] = value
    sets = dict(lowered.get("$set") or {})
    for path in computed:
        if path in sets:
            raise CommandError(40, "ConflictingUpdateOperators", f"{path!r} updated twice")
    lowered["$set"] = {**sets, **computed}
    return lowered


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _field(document: Mapping[str, Any], path: str) -> Any:
    current: Any = document
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def delete(
    client: Any, namespace: str, statements: Sequence[Mapping[str, Any]], ordered: bool
) -> tuple[int, list[dict[str, Any]], list[Change]]:
    coll = collection(client, namespace)
    removed = 0
    errors: list[dict[str, Any]] = []
    changes: list[Change] = []
    for index, statement in enumerate(statements):
        try:
            query = statement.get("q") or {}
            limit = int(statement.get("limit", 0))
            documents = list(coll.find(query))
            if limit == 1:
                documents = documents[:1]
            for document in documents:
                coll.delete_one({"_id": document["_id"]})
                changes.append(Change("d", namespace, document, None))
            removed += len(documents)
        except Exception as exc:
            error = store_error(exc)
            errors.append({"index": index, "code": error.code, "errmsg": error.message})
            if ordered:
                break
    return removed, errors, changes


def find(client: Any, namespace: str, command: Mapping[str, Any]) -> list[dict[str, Any]]:
    coll = collection(client, namespace)
    projection = command.get("projection") or None
    cursor = coll.find(command.get("filter") or {}, projection)
    sort = command.get("sort")
    if sort:
        cursor = cursor.sort(list(sort.items()))
    if command.get("skip"):
        cursor = cursor.skip(int(command["skip"]))
    limit = int(command.get("limit") or 0)
    if limit:
        cursor = cursor.limit(abs(limit))
    return list(cursor)


def find_and_modify(
    client: Any, namespace: str, command: Mapping[str, Any]
) -> tuple[dict[str, Any], list[Change]]:
    coll = collection(client, namespace)
    query = command.get("query") or {}
    sort = command.get("sort")
    candidates = coll.find(query)
    if sort:
        candidates = candidates.sort(list(sort.items()))
    found = next(iter(candidates.limit(1)), None)
    fields = command.get("fields")
    if command.get("remove"):
        if found is None:
            return {"lastErrorObject": {"n": 0}, "value": None}, []
        coll.delete_one({"_id": found["_id"]})
        return (
            {"lastErrorObject": {"n": 1}, "value": _project(found, fields)},
            [Change("d", namespace, found, None)],
        )
    statement = {
        "q": query if found is None else {"_id": found["_id"]},
        "u": command.get("update"),
        "upsert": command.get("upsert", False),
    }
    if command.get("arrayFilters") is not None:
        statement["arrayFilters"] = command["arrayFilters"]
    matched, _, new_id, changes = _update_one_statement(coll, namespace, statement)
    after_id = new_id if new_id is not None else (found["_id"] if found else None)
    after = coll.find_one({"_id": after_id}) if after_id is not None else None
    value = after if command.get("new") else (found if new_id is None else None)
    last_error: dict[str, Any] = {
        "n": 1 if (matched or new_id is not None) else 0,
        "updatedExisting": bool(matched),
    }
    if new_id is not None:
        last_error["upserted"] = new_id
    return {"lastErrorObject": last_error, "value": _project(value, fields)}, changes


def _project(document: dict[str, Any] | None, fields: Any) -> dict[str, Any] | None:
    if document is None or not fields:
        return document
    filtered: Any = mongomock.MongoClient()["p"]["p"]
    filtered.insert_one(document)
    result: dict[str, Any] | None = filtered.find_one({}, fields)
    return result

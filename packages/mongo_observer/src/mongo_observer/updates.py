"""Apply a logged update to an in-memory copy of a document.

Three forms reach an observer: the oplog's ``$v: 2`` diff (MongoDB 5.0+), the classic
``$set``/``$unset`` update (``$v: 1`` or no ``$v``, before 5.0) or a whole replacement document,
and a change event's ``updateDescription``. Each function returns a new document and never
mutates its input, so a caller can keep the previous version for comparison.

Anything that does not fit the document (unknown diff section, wrong type, a path through a
scalar, a sub-diff for a missing field) raises :class:`MalformedChange`: a replica that silently
drifts from the server is worse than one that stops and resyncs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, Final

from .errors import MalformedChange

__all__ = ["apply_oplog_update", "apply_update_description"]

Document = dict[str, Any]
PathPart = str | int  # an int only comes from ``disambiguatedPaths``: always an array index

_MISSING: Final = object()
_SECTIONS: Final = ("d", "u", "i")


# --- entry points -------------------------------------------------------------------------------


def apply_oplog_update(document: Mapping[str, Any], o: Mapping[str, Any]) -> Document:
    """``document`` after the ``o`` field of an oplog ``u`` entry.

    ``{"$v": 2, "diff": ...}`` is a 5.0+ diff; ``$set``/``$unset`` (with or without ``$v: 1``)
    is the classic form; an object without ``$`` keys replaces the document but keeps its
    ``_id``. A replacement may not change the ``_id``, as the server forbids that too.
    """
    _require_mapping(document, "document")
    _require_mapping(o, "update")
    result = copy.deepcopy(dict(document))
    version = o.get("$v", 1)
    if version == 2 and not isinstance(version, bool):
        if set(o) != {"$v", "diff"}:
            raise MalformedChange(f"$v 2 update must hold exactly $v and diff, got {list(o)}")
        return _apply_object(result, _require_mapping(o["diff"], "diff"), "")
    operators = [key for key in o if key.startswith("$")]
    if not operators:
        return _replace(result, o)
    if len(operators) != len(o):
        plain = [key for key in o if not key.startswith("$")]
        raise MalformedChange(f"update mixes operators {operators} with fields {plain}")
    if version != 1 or isinstance(version, bool):
        raise MalformedChange(f"unsupported update version $v={version!r}")
    unknown = set(o) - {"$v", "$set", "$unset"}
    if unknown:
        raise MalformedChange(f"unsupported update operators {sorted(unknown)}")
    for path, value in _require_mapping(o.get("$set", {}), "$set").items():
        _set_path(result, _split(path), path, copy.deepcopy(value), create=True)
    for path in _require_mapping(o.get("$unset", {}), "$unset"):
        _remove_path(result, _split(path), path)
    return result


def apply_update_description(
    document: Mapping[str, Any], update_description: Mapping[str, Any]
) -> Document:
    """``document`` after a change event's ``updateDescription``.

    Order: ``truncatedArrays``, then ``updatedFields``, then ``removedFields``. The event comes
    from a ``$v: 2`` diff, whose ``l`` resizes an array before its ``u<index>`` entries set
    elements; so an event that truncates ``arr`` and sets ``arr.<n>`` means "cut, then set", and
    setting first would lose any element at or past the new size. Updated and removed paths never
    overlap in one event (a field is either deleted or set), so their mutual order is immaterial.

    ``disambiguatedPaths`` (7.0+, ``showExpandedEvents``), when present, gives the real parts of
    paths whose field names contain dots or are numeric; other paths are split on dots and a
    decimal part indexes into an array only when its parent is an array.

    An updated path whose parent is missing raises: the server reports new sub-documents whole,
    so a missing parent means this copy has drifted. Removing a missing field is a no-op.
    """
    _require_mapping(document, "document")
    desc = _require_mapping(update_description, "updateDescription")
    known = {"updatedFields", "removedFields", "truncatedArrays", "disambiguatedPaths"}
    unknown = set(desc) - known
    if unknown:
        raise MalformedChange(f"unknown updateDescription fields {sorted(unknown)}")
    hints = _require_mapping(desc.get("disambiguatedPaths", {}), "disambiguatedPaths")
    updated = _require_mapping(desc.get("updatedFields", {}), "updatedFields")
    removed = _require_list(desc.get("removedFields", []), "removedFields")
    truncated = _require_list(desc.get("truncatedArrays", []), "truncatedArrays")
    result = copy.deepcopy(dict(document))
    for item in truncated:
        entry = _require_mapping(item, "truncatedArrays entry")
        path, size = entry.get("field"), entry.get("newSize")
        if set(entry) != {"field", "newSize"} or not isinstance(path, str):
            raise MalformedChange(f"truncatedArrays entry must be {{field, newSize}}: {entry!r}")
        _truncate(result, _parts(path, hints), path, _require_size(size, path))
    for path, value in updated.items():
        _set_path(result, _parts(path, hints), path, copy.deepcopy(value), create=False)
    for path in removed:
        _remove_path(result, _parts(path, hints), path)
    return result


# --- validation helpers -------------------------------------------------------------------------


def _require_mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedChange(f"{what} must be a document, got {type(value).__name__}")
    return value


def _require_list(value: Any, what: str) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise MalformedChange(f"{what} must be an array, got {type(value).__name__}")
    return value


def _require_size(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedChange(f"{where}: array length must be a non-negative integer: {value!r}")
    return value


def _decimal_index(text: str, where: str) -> int:
    """An array index written in decimal; signs, spaces and non-ASCII digits are malformed."""
    if not (text.isascii() and text.isdecimal()):
        raise MalformedChange(f"{where}: {text!r} is not a non-negative array index")
    return int(text)


def _label(path: str) -> str:
    return path or "<root>"


# --- $v: 2 diffs --------------------------------------------------------------------------------


def _apply_object(document: Document, diff: Mapping[str, Any], path: str) -> Document:
    """A document diff: ``u`` sets in place, ``i`` appends at the end, as the server orders them."""
    sections: dict[str, Mapping[str, Any]] = {name: {} for name in _SECTIONS}
    subdiffs: dict[str, Mapping[str, Any]] = {}
    for key, value in diff.items():
        if key in sections:
            sections[key] = _require_mapping(value, f"{_label(path)}: diff section {key!r}")
        elif key.startswith("s") and len(key) > 1:
            subdiffs[key[1:]] = _require_mapping(value, f"{_label(path)}: sub-diff {key!r}")
        else:
            raise MalformedChange(f"{_label(path)}: unknown document diff section {key!r}")
    deletes, updates, inserts = (sections[name] for name in _SECTIONS)
    seen: set[str] = set()
    for fields in (deletes, updates, inserts, subdiffs):
        clash = seen.intersection(fields)
        if clash:
            raise MalformedChange(f"{_label(path)}: fields {sorted(clash)} changed twice")
        seen.update(fields)
    for field, flag in deletes.items():
        if not isinstance(flag, bool):
            raise MalformedChange(f"{path}{field}: delete marker must be a boolean: {flag!r}")
    for field in subdiffs:
        if field not in document:
            raise MalformedChange(f"{path}{field}: sub-diff for a missing field")
    result: Document = {}
    for key, value in document.items():
        if key in deletes or key in inserts:
            continue
        if key in updates:
            result[key] = copy.deepcopy(updates[key])
        elif key in subdiffs:
            result[key] = _apply_sub(value, subdiffs[key], path + key)
        else:
            result[key] = value
    for section in (updates, inserts):
        for key, value in section.items():
            if key not in result:
                result[key] = copy.deepcopy(value)
    return result


def _apply_sub(value: Any, diff: Mapping[str, Any], path: str) -> Any:
    """An ``s`` entry: an array diff (marked ``a: true``) or a document diff, matching ``value``."""
    if "a" in diff:
        if diff["a"] is not True:
            raise MalformedChange(f"{path}: array diff marker 'a' must be true, got {diff['a']!r}")
        if not isinstance(value, list):
            raise MalformedChange(f"{path}: array diff for a {type(value).__name__}")
        return _apply_array(value, diff, path)
    if not isinstance(value, dict):
        raise MalformedChange(f"{path}: document diff for a {type(value).__name__}")
    return _apply_object(value, diff, path + ".")


def _apply_array(array: list[Any], diff: Mapping[str, Any], path: str) -> list[Any]:
    """An array diff: resize to ``l`` first, then ``u``/``s`` by ascending index."""
    result = list(array)
    changes: dict[int, tuple[str, Any]] = {}
    for key, value in diff.items():
        if key in ("a", "l"):
            continue
        if key[:1] not in ("u", "s"):
            raise MalformedChange(f"{path}: unknown array diff entry {key!r}")
        index = _decimal_index(key[1:], f"{path}: array diff entry {key!r}")
        if index in changes:
            raise MalformedChange(f"{path}.{index}: element changed twice")
        changes[index] = (key[0], value)
    if "l" in diff:
        size = _require_size(diff["l"], path)
        del result[size:]
        result.extend([None] * (size - len(result)))
    for index in sorted(changes):
        kind, value = changes[index]
        where = f"{path}.{index}"
        if kind == "u":
            result.extend([None] * (index + 1 - len(result)))
            result[index] = copy.deepcopy(value)
        elif index >= len(result):
            raise MalformedChange(f"{where}: sub-diff for a missing element")
        else:
            result[index] = _apply_sub(result[index], _require_mapping(value, where), where)
    return result


# --- dotted paths -------------------------------------------------------------------------------


def _replace(current: Document, replacement: Mapping[str, Any]) -> Document:
    """A replacement keeps ``_id`` first, as the server stores it."""
    new_id = replacement.get("_id", current.get("_id", _MISSING))
    if "_id" in current and "_id" in replacement and replacement["_id"] != current["_id"]:
        raise MalformedChange(
            f"replacement changes _id from {current['_id']!r} to {replacement['_id']!r}"
        )
    result: Document = {} if new_id is _MISSING else {"_id": copy.deepcopy(new_id)}
    result.update((k, copy.deepcopy(v)) for k, v in replacement.items() if k != "_id")
    return result


def _split(path: Any) -> list[PathPart]:
    if not isinstance(path, str) or not path or "" in path.split("."):
        raise MalformedChange(f"invalid field path {path!r}")
    return list(path.split("."))


def _parts(path: Any, hints: Mapping[str, Any]) -> list[PathPart]:
    """A path's parts, from ``disambiguatedPaths`` when the server gave them."""
    if not isinstance(path, str) or path not in hints:
        return _split(path)
    parts = _require_list(hints[path], f"disambiguatedPaths[{path!r}]")
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, str | int):
            raise MalformedChange(f"disambiguatedPaths[{path!r}]: bad part {part!r}")
    if not parts:
        raise MalformedChange(f"disambiguatedPaths[{path!r}] is empty")
    return list(parts)


def _key(parent: Any, part: PathPart, path: str) -> str | int:
    """Where ``part`` lands in ``parent``: a field of a document, an index of an array."""
    if isinstance(parent, dict):
        if isinstance(part, int):
            raise MalformedChange(f"{path}: array index {part} into a document")
        return part
    if isinstance(parent, list):
        if isinstance(part, int):
            if part < 0:
                raise MalformedChange(f"{path}: negative array index {part}")
            return part
        return _decimal_index(part, path)
    raise MalformedChange(f"{path}: path goes through a {type(parent).__name__}")


def _get(parent: dict[str, Any] | list[Any], key: str | int) -> Any:
    if isinstance(parent, dict):
        assert isinstance(key, str)
        return parent.get(key, _MISSING)
    assert isinstance(key, int)
    return parent[key] if key < len(parent) else _MISSING


def _put(parent: dict[str, Any] | list[Any], key: str | int, value: Any) -> None:
    """Set a field, or an element after padding the array with nulls (as ``$set`` does)."""
    if isinstance(parent, dict):
        assert isinstance(key, str)
        parent[key] = value
    else:
        assert isinstance(key, int)
        parent.extend([None] * (key + 1 - len(parent)))
        parent[key] = value


def _parent(
    document: Document, parts: Sequence[PathPart], path: str, *, create: bool
) -> tuple[Any, str | int] | None:
    """The container holding the last part and its key; None if an ancestor is missing.

    With ``create``, missing ancestors become empty documents, as ``$set`` creates them.
    """
    node: Any = document
    for part in parts[:-1]:
        key = _key(node, part, path)
        child = _get(node, key)
        if child is _MISSING:
            if not create:
                return None
            child = {}
            _put(node, key, child)
        node = child
    return node, _key(node, parts[-1], path)


def _set_path(
    document: Document, parts: Sequence[PathPart], path: str, value: Any, *, create: bool
) -> None:
    found = _parent(document, parts, path, create=create)
    if found is None:
        raise MalformedChange(f"{path}: updated field below a missing field")
    _put(found[0], found[1], value)


def _remove_path(document: Document, parts: Sequence[PathPart], path: str) -> None:
    """Delete a field; an array element becomes null instead, as ``$unset`` leaves it."""
    found = _parent(document, parts, path, create=False)
    if found is None:
        return
    parent, key = found
    if isinstance(parent, dict):
        assert isinstance(key, str)
        parent.pop(key, None)
    elif isinstance(key, int) and key < len(parent):
        parent[key] = None


def _truncate(document: Document, parts: Sequence[PathPart], path: str, size: int) -> None:
    found = _parent(document, parts, path, create=False)
    array = _MISSING if found is None else _get(found[0], found[1])
    if not isinstance(array, list):
        kind = "missing field" if array is _MISSING else type(array).__name__
        raise MalformedChange(f"{path}: truncatedArrays names a {kind}, not an array")
    if size > len(array):
        raise MalformedChange(f"{path}: truncation to {size} grows an array of {len(array)}")
    del array[size:]

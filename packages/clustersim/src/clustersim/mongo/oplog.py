"""The simulated oplog: timestamps, ``$v: 2`` update diffs, entry shapes and a capped log.

Drivers and observers tail ``local.oplog.rs`` and parse the MongoDB 5.0+ shapes exactly
(mongo-helpers.md §5). Pure: the clock is injected and callers own any locking.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from bson import Binary, Int64, Timestamp

from ..errors import ClustersimError

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "MAX_U32",
    "InvalidDiff",
    "make_entry",
    "Oplog",
    "OplogClock",
    "OplogError",
    "apply_diff",
    "as_int",
    "command_entry",
    "delete_entry",
    "diff_to_update_description",
    "from_int",
    "insert_entry",
    "noop_entry",
    "update_diff",
    "update_entry",
]

MAX_U32: Final = 0xFFFFFFFF
DEFAULT_MAX_ENTRIES: Final = 100_000

Entry = dict[str, Any]
Doc = Mapping[str, Any]
Wall = datetime | None
Filter = Callable[[Doc], bool]


class OplogError(ClustersimError, ValueError):
    """An entry or an append that would break the oplog's shape or order."""


class InvalidDiff(OplogError):
    """A ``$v: 2`` diff that is malformed or does not fit the document it is applied to."""


# --- timestamps ---------------------------------------------------------------------------------


def as_int(ts: Timestamp) -> int:
    """``seconds << 32 | increment``: sorts like ``ts`` (mongomock cannot sort Timestamps)."""
    return (ts.time << 32) | ts.inc


def from_int(value: int) -> Timestamp:
    """The inverse of :func:`as_int`."""
    return Timestamp(value >> 32, value & MAX_U32)


class OplogClock:
    """Strictly increasing oplog timestamps from an injected wall clock (seconds).

    Within a second the increment counts up. A new second restarts at 1, as on a server. When
    ``now`` goes backwards the clock keeps the last second, so ``ts`` never does.
    """

    __slots__ = ("_last", "_now")

    def __init__(self, now: Callable[[], float], *, last: Timestamp | None = None) -> None:
        self._now = now
        self._last = last

    @property
    def last(self) -> Timestamp | None:
        """The newest timestamp issued or observed."""
        return self._last

    def tick(self) -> Timestamp:
        seconds = min(max(int(self._now()), 0), MAX_U32)
        last = self._last
        if last is None or seconds > last.time:
            ts = Timestamp(seconds, 1)
        elif last.inc < MAX_U32:
            ts = Timestamp(last.time, last.inc + 1)
        else:
            ts = Timestamp(last.time + 1, 1)
        self._last = ts
        return ts

    def observe(self, ts: Timestamp) -> None:
        """Issue nothing at or before ``ts`` (a new primary continuing a replicated log)."""
        if self._last is None or ts > self._last:
            self._last = ts


# --- $v: 2 diffs --------------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    """BSON equality: key order and types count (1, 1.0 and True differ), and NaN equals NaN."""
    if isinstance(a, Mapping):
        return isinstance(b, Mapping) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(map(_same, a, b))
    if type(a) is not type(b):
        return False
    return bool(a == b) or bool(a != a and b != b)


def _order_reachable(before: Doc, after: Doc) -> bool:
    """True when ``after``'s order is what d/u/i give: survivors in place, new fields last."""
    survivors = [key for key in before if key in after]
    return list(after)[: len(survivors)] == survivors


def update_diff(before: Doc, after: Doc) -> dict[str, Any]:
    """The ``$v: 2`` diff that turns ``before`` into ``after``, or ``{}`` if they are the same.

    Sections: ``d`` delete, ``u`` update in place, ``i`` insert at the end, ``s<field>`` subdiff.
    Arrays: ``a: true``, ``l`` new length (only when it shrinks), ``u<index>``, ``s<index>``.
    Nested documents come out exactly, key order included: when a subdiff cannot restore a
    sub-document's order, the whole sub-document is sent. At the top level a diff cannot move
    surviving fields, so if ``after`` reorders them only the values are reproduced, not the order.
    """
    return copy.deepcopy(_object_diff(before, after))


def _object_diff(before: Doc, after: Doc) -> dict[str, Any]:
    deleted = {key: False for key in before if key not in after}
    updated: dict[str, Any] = {}
    inserted: dict[str, Any] = {}
    subdiffs: dict[str, Any] = {}
    for key, new in after.items():
        if key not in before:
            inserted[key] = new
        elif not _same(before[key], new):
            sub = _sub_diff(before[key], new)
            if sub is None:
                updated[key] = new
            else:
                subdiffs["s" + key] = sub
    diff: dict[str, Any] = {}
    for section, fields in (("d", deleted), ("u", updated), ("i", inserted)):
        if fields:
            diff[section] = fields
    diff.update(subdiffs)
    return diff


def _sub_diff(old: Any, new: Any) -> dict[str, Any] | None:
    """A subdiff for two unequal values, or None when the whole new value should be sent instead."""
    if isinstance(old, Mapping) and isinstance(new, Mapping) and _order_reachable(old, new):
        return _object_diff(old, new)
    if isinstance(old, list | tuple) and isinstance(new, list | tuple):
        return _array_diff(old, new)
    return None


def _array_diff(old: Sequence[Any], new: Sequence[Any]) -> dict[str, Any]:
    diff: dict[str, Any] = {"a": True}
    if len(new) < len(old):
        diff["l"] = len(new)
    for index, value in enumerate(new):
        if index >= len(old):
            diff[f"u{index}"] = value
        elif not _same(old[index], value):
            sub = _sub_diff(old[index], value)
            if sub is None:
                diff[f"u{index}"] = value
            else:
                diff[f"s{index}"] = sub
    return diff


def apply_diff(document: Doc, diff: Doc) -> dict[str, Any]:
    """Apply a ``$v: 2`` diff to a copy of ``document`` (:class:`InvalidDiff` if it does not fit).

    Existing fields keep their place (``u`` and ``i`` both set in place). New fields are appended in
    diff order, as MongoDB does. ``u<index>`` past an array's end pads the array with nulls.
    """
    return copy.deepcopy(_apply_object(document, diff, ""))


def _split_object_diff(diff: Doc, path: str) -> tuple[dict[str, Doc], dict[str, Doc]]:
    sections: dict[str, Doc] = {"d": {}, "u": {}, "i": {}}
    subdiffs: dict[str, Doc] = {}
    for key, value in diff.items():
        if not isinstance(value, Mapping):
            raise InvalidDiff(f"{path or '<root>'}: diff key {key!r} must hold a document")
        if key in sections:
            sections[key] = value
        elif key.startswith("s"):
            subdiffs[key[1:]] = value
        else:
            raise InvalidDiff(f"{path or '<root>'}: unknown document diff key {key!r}")
    return sections, subdiffs


def _apply_object(document: Doc, diff: Doc, path: str) -> dict[str, Any]:
    sections, subdiffs = _split_object_diff(diff, path)
    deletes, updates, inserts = sections["d"], sections["u"], sections["i"]
    for field in subdiffs:
        if field not in document:
            raise InvalidDiff(f"{path}{field}: subdiff for a missing field")
    result: dict[str, Any] = {}
    for key, value in document.items():
        if key in deletes:
            continue
        if key in updates:
            result[key] = updates[key]
        elif key in inserts:
            result[key] = inserts[key]
        elif key in subdiffs:
            result[key] = _apply_sub(value, subdiffs[key], f"{path}{key}")
        else:
            result[key] = value
    for section in (updates, inserts):
        for key, value in section.items():
            if key not in result:
                result[key] = value
    return result


def _apply_sub(value: Any, diff: Doc, path: str) -> Any:
    if "a" in diff:
        if diff["a"] is not True:
            raise InvalidDiff(f"{path}: array diff marker 'a' must be true")
        if not isinstance(value, list | tuple):
            raise InvalidDiff(f"{path}: array diff applied to a {type(value).__name__}")
        return _apply_array(value, diff, path)
    if not isinstance(value, Mapping):
        raise InvalidDiff(f"{path}: document diff applied to a {type(value).__name__}")
    return _apply_object(value, diff, path + ".")


def _array_index(key: str, path: str) -> int:
    digits = key[1:]
    if key[:1] not in ("u", "s") or not (digits.isascii() and digits.isdecimal()):
        raise InvalidDiff(f"{path}: unknown array diff key {key!r}")
    return int(digits)


def _apply_array(array: Sequence[Any], diff: Doc, path: str) -> list[Any]:
    result = list(array)
    size = diff.get("l")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidDiff(f"{path}: array length 'l' must be a non-negative integer")
        del result[size:]
        result.extend([None] * (size - len(result)))
    changes = sorted(
        (_array_index(key, path), key[0], value)
        for key, value in diff.items()
        if key not in ("a", "l")
    )
    for index, kind, value in changes:
        if kind == "u":
            result.extend([None] * (index + 1 - len(result)))
            result[index] = value
        elif index >= len(result) or not isinstance(value, Mapping):
            raise InvalidDiff(f"{path}.{index}: subdiff for a missing element or not a document")
        else:
            result[index] = _apply_sub(result[index], value, f"{path}.{index}")
    return result


def diff_to_update_description(diff: Doc) -> dict[str, Any]:
    """Turn a diff into a change event's ``updateDescription``, with dotted paths.

    ``truncatedArrays`` holds ``{"field": path, "newSize": n}``. A change stream consumer should
    apply truncations first, then removals, then updates.
    """
    updated: dict[str, Any] = {}
    removed: list[str] = []
    truncated: list[dict[str, Any]] = []

    def walk(sub: Doc, prefix: str) -> None:
        if "a" in sub:
            if "l" in sub:
                truncated.append({"field": prefix[:-1], "newSize": sub["l"]})
            for key, value in sub.items():
                if key not in ("a", "l"):
                    index = _array_index(key, prefix[:-1])
                    if key[0] == "u":
                        updated[f"{prefix}{index}"] = value
                    elif isinstance(value, Mapping):
                        walk(value, f"{prefix}{index}.")
                    else:
                        raise InvalidDiff(f"{prefix}{index}: subdiff must be a document")
            return
        sections, subdiffs = _split_object_diff(sub, prefix[:-1])
        removed.extend(prefix + field for field in sections["d"])
        for section in ("u", "i"):
            updated.update({prefix + field: value for field, value in sections[section].items()})
        for field, nested in subdiffs.items():
            walk(nested, f"{prefix}{field}.")

    walk(diff, "")
    return copy.deepcopy(
        {"updatedFields": updated, "removedFields": removed, "truncatedArrays": truncated}
    )


# --- entries ------------------------------------------------------------------------------------


def make_entry(ts: Timestamp, term: int, wall: Wall, **fields: Any) -> Entry:
    """Copies of ``fields`` (None left out), then ts, t, v, wall: a 5.0+ server's field order."""
    entry = {key: copy.deepcopy(value) for key, value in fields.items() if value is not None}
    entry.update(ts=ts, t=Int64(term), v=Int64(2), wall=wall or ts.as_datetime())
    return entry


def insert_entry(
    ts: Timestamp, term: int, ns: str, ui: Binary, document: Doc, *, wall: Wall = None
) -> Entry:
    return make_entry(ts, term, wall, op="i", ns=ns, ui=ui, o=document)


def update_entry(
    ts: Timestamp,
    term: int,
    ns: str,
    ui: Binary,
    document_id: Any,
    *,
    diff: Doc | None = None,
    replacement: Doc | None = None,
    wall: Wall = None,
) -> Entry:
    """A field-level update (``o = {$v: 2, diff}``) or a replacement (``o`` = the new document).

    Give exactly one of ``diff`` and ``replacement``. MongoDB logs no entry for an update that
    changes nothing, so callers should skip empty diffs.
    """
    if diff is not None and replacement is None:
        o: Doc = {"$v": 2, "diff": diff}
    elif replacement is not None and diff is None:
        o = replacement
    else:
        raise OplogError("update_entry needs exactly one of diff= and replacement=")
    return make_entry(ts, term, wall, op="u", ns=ns, ui=ui, o=o, o2={"_id": document_id})


def delete_entry(
    ts: Timestamp, term: int, ns: str, ui: Binary, document_id: Any, *, wall: Wall = None
) -> Entry:
    return make_entry(ts, term, wall, op="d", ns=ns, ui=ui, o={"_id": document_id})


def command_entry(
    ts: Timestamp, term: int, db: str, command: Doc, *, ui: Binary | None = None, wall: Wall = None
) -> Entry:
    """A DDL entry on ``<db>.$cmd``: ``{"create": c}``, ``{"drop": c}``, ``{"dropDatabase": 1}``...

    Like the server, log a ``drop`` for each collection before ``dropDatabase``. Collection streams
    rely on those entries.
    """
    return make_entry(ts, term, wall, op="c", ns=f"{db}.$cmd", ui=ui, o=command)


def noop_entry(ts: Timestamp, term: int, msg: str = "periodic noop", *, wall: Wall = None) -> Entry:
    return make_entry(ts, term, wall, op="n", ns="", o={"msg": msg})


# --- the capped log -----------------------------------------------------------------------------


class Oplog:
    """An in-memory capped oplog that keeps at most ``max_entries`` entries, oldest dropped first.

    Entries are stored and returned without copies, so callers must not mutate them. The log
    remembers the newest timestamp it ever dropped. That tells a resuming reader whether it has
    lost history (see :meth:`has_history_since`).
    """

    as_int = staticmethod(as_int)

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise OplogError(f"max_entries must be at least 1, not {max_entries}")
        self._max = max_entries
        self._entries: list[Entry] = []
        self._keys: list[int] = []
        self._start = 0  # entries before this index are dropped; compacted lazily
        self._newest_key = -1
        self._dropped_through = -1  # as_int of the newest dropped entry, -1 if none

    @property
    def max_entries(self) -> int:
        return self._max

    def __len__(self) -> int:
        return len(self._entries) - self._start

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries[self._start :])

    @property
    def first_ts(self) -> Timestamp | None:
        return self._entries[self._start]["ts"] if len(self) else None

    @property
    def last_ts(self) -> Timestamp | None:
        return self._entries[-1]["ts"] if len(self) else None

    def append(self, entry: Entry) -> None:
        ts = entry.get("ts")
        if not isinstance(ts, Timestamp):
            raise OplogError(f"oplog entry without a Timestamp 'ts': {entry!r}")
        key = as_int(ts)
        if key <= self._newest_key:
            raise OplogError(f"oplog entry {ts} is not after {from_int(self._newest_key)}")
        self._entries.append(entry)
        self._keys.append(key)
        self._newest_key = key
        if len(self) > self._max:
            self._drop(len(self) - self._max)

    def entries_after(
        self, ts: Timestamp | None, *, ns_filter: Filter | None = None, limit: int | None = None
    ) -> list[Entry]:
        """Retained entries newer than ``ts`` (all of them for None), oldest first."""
        start = self._start
        if ts is not None:
            start = bisect.bisect_right(self._keys, as_int(ts), lo=self._start)
        found: list[Entry] = []
        for entry in self._entries[start:]:
            if limit is not None and len(found) >= limit:
                break
            if ns_filter is None or ns_filter(entry):
                found.append(entry)
        return found

    def has_history_since(self, ts: Timestamp | None) -> bool:
        """True if no entry newer than ``ts`` was dropped, so a reader can continue after ``ts``.

        ``None`` means "from the beginning", which holds only if nothing was ever dropped.
        """
        floor = -1 if ts is None else as_int(ts)
        return floor >= self._dropped_through

    def truncate_before(self, ts: Timestamp) -> int:
        """Drop the entries older than ``ts`` and return how many (tests force lost history)."""
        stop = bisect.bisect_left(self._keys, as_int(ts), lo=self._start)
        count = stop - self._start
        if count:
            self._drop(count)
        return count

    def _drop(self, count: int) -> None:
        self._start += count
        self._dropped_through = self._keys[self._start - 1]
        if self._start > len(self._entries) // 2:  # amortised O(1) per append
            del self._entries[: self._start]
            del self._keys[: self._start]
            self._start = 0

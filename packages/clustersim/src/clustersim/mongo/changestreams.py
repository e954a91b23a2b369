"""Change streams over the simulated oplog: resume tokens, stage options, scopes and events.

These are pure functions over :mod:`.oplog` entries. The wire front end owns cursors, the stages
after ``$changeStream``, and batching. Drivers parse the event and error shapes, so those follow
MongoDB 6.0+ (mongo-helpers.md §6, simulators.md §6).

Error codes (:class:`CommandFailure`) follow the server: 40415 unknown option, 14 TypeMismatch,
2 BadValue, 50808 stage not a document, 50865 both ``resumeAfter`` and ``startAfter``, 40674 a
token together with ``startAtOperationTime``, 260 InvalidResumeToken (malformed, or ``resumeAfter``
from an invalidate), 73 InvalidNamespace, 47 NoMatchingDocument (``required`` image missing), 286
ChangeStreamHistoryLost. The shapes are right, but a few numbers come from memory and are only
plausible.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from bson import Timestamp

from ..errors import ClustersimError
from .oplog import MAX_U32, Oplog, as_int, diff_to_update_description, from_int

__all__ = [
    "CHANGE_STREAM_FATAL",
    "CHANGE_STREAM_HISTORY_LOST",
    "INVALID_RESUME_TOKEN",
    "ChangeStreamSpec",
    "CommandFailure",
    "InvalidResumeToken",
    "StreamScope",
    "TokenParts",
    "decode_token",
    "encode_token",
    "event_from_entry",
    "events_from_entry",
    "high_water_mark",
    "invalidate_event",
    "parse_change_stream_stage",
    "read_events",
    "scope_filter",
    "scope_for",
    "start_position",
]

CHANGE_STREAM_FATAL: Final = 280
CHANGE_STREAM_HISTORY_LOST: Final = 286
INVALID_RESUME_TOKEN: Final = 260

Doc = Mapping[str, Any]
Event = dict[str, Any]
Lookup = Callable[[str, Any], Doc | None]

FULL_DOCUMENT_MODES: Final = ("default", "updateLookup", "whenAvailable", "required")
BEFORE_CHANGE_MODES: Final = ("off", "whenAvailable", "required")
_INTERNAL_DBS: Final = frozenset({"admin", "config", "local"})
_TXN_FIELDS: Final = ("ts", "wall", "lsid", "txnNumber")  # what applyOps' inner ops inherit


class CommandFailure(ClustersimError):
    """A change stream request failed as the server reports it: ``ok: 0``, a code and a name."""

    def __init__(self, code: int, code_name: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.code_name = code_name
        self.message = message

    def reply(self) -> dict[str, Any]:
        return {"ok": 0.0, "errmsg": self.message, "code": self.code, "codeName": self.code_name}


_CODE_NAMES: Final = {
    2: "BadValue",
    14: "TypeMismatch",
    47: "NoMatchingDocument",
    73: "InvalidNamespace",
    260: "InvalidResumeToken",
    280: "ChangeStreamFatalError",
    286: "ChangeStreamHistoryLost",
}


def _fail(code: int, message: str) -> CommandFailure:
    """A failure named as the server names it (assertion codes are ``Location<code>``)."""
    return CommandFailure(code, _CODE_NAMES.get(code, f"Location{code}"), message)


class InvalidResumeToken(ClustersimError, ValueError):
    """A resume token that this simulator did not issue, or that was damaged."""


# --- resume tokens ------------------------------------------------------------------------------


class TokenParts(NamedTuple):
    """A stream position; tuples compare in oplog order, like their tokens.

    ``txn_index``: the operation's place in an ``applyOps``; ``event_index``: 0, or 1 for the
    ``invalidate`` that follows a drop.
    """

    ts: Timestamp
    txn_index: int = 0
    event_index: int = 0
    from_invalidate: bool = False


_TOKEN = re.compile(r"82[0-9A-F]{34}")


def encode_token(
    ts: Timestamp, txn_index: int = 0, event_index: int = 0, from_invalidate: bool = False
) -> dict[str, str]:
    """``{"_data": "82" + seconds + increment + txn_index + event_index + flag}`` in uppercase hex.

    Each part has a fixed width (8, 8, 8, 8 and 2 digits), so the tokens sort as strings in the
    same order as the positions. Real tokens are KeyString-encoded. Drivers treat both as opaque.
    """
    if not (0 <= txn_index <= MAX_U32 and 0 <= event_index <= MAX_U32):
        raise InvalidResumeToken(f"token indexes out of range: {txn_index}, {event_index}")
    flag = 1 if from_invalidate else 0
    return {"_data": f"82{ts.time:08X}{ts.inc:08X}{txn_index:08X}{event_index:08X}{flag:02X}"}


def decode_token(token: object) -> TokenParts:
    data = token.get("_data") if isinstance(token, Mapping) else None
    if not isinstance(data, str) or not _TOKEN.fullmatch(data) or data[34:] not in ("00", "01"):
        raise InvalidResumeToken(
            f"malformed resume token {token!r}: expected {{'_data': '82' + 34 uppercase hex}}"
        )
    fields = [int(data[start : start + 8], 16) for start in range(2, 34, 8)]
    return TokenParts(Timestamp(fields[0], fields[1]), fields[2], fields[3], data[34:] == "01")


def high_water_mark(ts: Timestamp) -> TokenParts:
    """The position after every event at ``ts``: a scanned log's ``postBatchResumeToken``."""
    return TokenParts(ts, MAX_U32, MAX_U32)


# --- the $changeStream stage --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChangeStreamSpec:
    """The options of one ``$changeStream`` stage, with resume tokens already decoded."""

    full_document: str = "default"
    full_document_before_change: str = "off"
    resume_after: TokenParts | None = None
    start_after: TokenParts | None = None
    start_at_operation_time: Timestamp | None = None
    all_changes_for_cluster: bool = False
    show_expanded_events: bool = False


Spec = ChangeStreamSpec


_OPTIONS: Final = {
    "fullDocument": ("full_document", str),
    "fullDocumentBeforeChange": ("full_document_before_change", str),
    "resumeAfter": ("resume_after", Mapping),
    "startAfter": ("start_after", Mapping),
    "startAtOperationTime": ("start_at_operation_time", Timestamp),
    "allChangesForCluster": ("all_changes_for_cluster", bool),
    "showExpandedEvents": ("show_expanded_events", bool),
}
_MODES: Final = {
    "fullDocument": FULL_DOCUMENT_MODES,
    "fullDocumentBeforeChange": BEFORE_CHANGE_MODES,
}


def parse_change_stream_stage(stage: Doc) -> ChangeStreamSpec:
    """Parse ``{"$changeStream": {...}}`` or just its options. Raises :class:`CommandFailure`."""
    options = stage["$changeStream"] if list(stage) == ["$changeStream"] else stage
    if not isinstance(options, Mapping):
        raise _fail(50808, "$changeStream stage expects a document as argument")
    values: dict[str, Any] = {}
    for name, value in options.items():
        if name not in _OPTIONS:
            raise _fail(40415, f"BSON field '$changeStream.{name}' is an unknown field.")
        attribute, kind = _OPTIONS[name]
        if not isinstance(value, kind):
            kind_name = type(value).__name__
            raise _fail(14, f"BSON field '$changeStream.{name}' is the wrong type '{kind_name}'")
        if name in _MODES and value not in _MODES[name]:
            raise _fail(2, f"'{value}' is not a valid value for $changeStream.{name}")
        values[attribute] = _parse_token(name, value) if isinstance(value, Mapping) else value
    spec = ChangeStreamSpec(**values)
    if spec.resume_after is not None and spec.start_after is not None:
        raise _fail(50865, "Do not specify both 'startAfter' and 'resumeAfter'")
    if (spec.resume_after or spec.start_after) and spec.start_at_operation_time is not None:
        raise _fail(40674, "Only one type of resume option is allowed, but multiple were found.")
    if spec.resume_after is not None and spec.resume_after.from_invalidate:
        raise _fail(260, "Cannot resume after an invalidate with 'resumeAfter'; use 'startAfter'")
    return spec


def _parse_token(name: str, value: Doc) -> TokenParts:
    try:
        return decode_token(value)
    except InvalidResumeToken as error:
        raise _fail(INVALID_RESUME_TOKEN, f"{name}: {error}") from error


# --- scopes -------------------------------------------------------------------------------------


def _split(ns: str) -> tuple[str, str]:
    db, _, coll = ns.partition(".")
    return db, coll


@dataclass(frozen=True, slots=True)
class StreamScope:
    """The entries a collection (db, coll), database (db) or cluster (neither) stream reads.

    Calling the scope is the entry filter for :meth:`.Oplog.entries_after`. System collections are
    never shown. A cluster stream skips admin, config and local. Invalidation:

    * a collection stream ends with ``drop``, or ``rename`` of the collection away, followed by
      ``invalidate``. If ``dropDatabase`` arrives without the per-collection drops the server logs
      first, the stream gets a bare ``invalidate``;
    * a database stream ends with ``dropDatabase``, followed by ``invalidate``. Drops and renames of
      its collections are ordinary events;
    * a cluster stream is never invalidated.
    """

    db: str | None = None
    coll: str | None = None

    def watches(self, ns: str) -> bool:
        """True when writes to namespace ``ns`` are this stream's business."""
        db, coll = _split(ns)
        if not coll or coll.startswith("system.") or coll == "$cmd":
            return False
        if self.db is None:
            return db not in _INTERNAL_DBS
        return db == self.db and (self.coll is None or coll == self.coll)

    def __call__(self, entry: Doc) -> bool:
        op, o = entry.get("op"), entry.get("o") or {}
        if op in ("i", "u", "d"):
            return self.watches(entry.get("ns", ""))
        if op != "c":
            return False
        db, _ = _split(entry.get("ns", ""))
        if "applyOps" in o:
            return any(self.watches(inner.get("ns", "")) for inner in o["applyOps"])
        for verb in ("create", "drop"):
            if isinstance(o.get(verb), str):
                return self.watches(f"{db}.{o[verb]}")
        if "renameCollection" in o:
            return self.watches(str(o["renameCollection"])) or self.watches(str(o.get("to", "")))
        in_scope = db not in _INTERNAL_DBS if self.db is None else db == self.db
        return "dropDatabase" in o and in_scope

    def invalidated_by(self, entry: Doc) -> bool:
        if self.db is None or entry.get("op") != "c":
            return False
        o = entry.get("o") or {}
        db, _ = _split(entry.get("ns", ""))
        if "dropDatabase" in o:
            return db == self.db
        dropped = db == self.db and o.get("drop") == self.coll
        moved = o.get("renameCollection") == f"{self.db}.{self.coll}"
        return self.coll is not None and (dropped or moved)


def scope_filter(db: str | None, coll: str | None) -> StreamScope:
    """The scope of a stream on ``db.coll``, on ``db`` (coll None) or on the cluster (both None)."""
    if coll is not None and db is None:
        raise _fail(73, "a collection stream needs a database")
    return StreamScope(db, coll)


def scope_for(spec: ChangeStreamSpec, db: str, coll: str | None) -> StreamScope:
    """The scope of an ``aggregate`` on ``db`` (``coll`` None for ``aggregate: 1``), vetted."""
    if spec.all_changes_for_cluster:
        if db != "admin" or coll is not None:
            raise _fail(73, "'allChangesForCluster: true' needs 'admin' and no collection")
        return StreamScope()
    if db in _INTERNAL_DBS or (coll is not None and coll.startswith("system.")):
        raise _fail(73, f"$changeStream may not be opened on {db}.{coll or ''}")
    return scope_filter(db, coll)


# --- events -------------------------------------------------------------------------------------


def _header(entry: Doc, kind: str, txn_index: int, event_index: int = 0) -> Event:
    token = encode_token(entry["ts"], txn_index, event_index, kind == "invalidate")
    event: Event = {"_id": token, "operationType": kind, "clusterTime": entry["ts"]}
    if "wall" in entry:
        event["wallTime"] = entry["wall"]
    for field in ("lsid", "txnNumber"):
        if field in entry:
            event[field] = copy.deepcopy(entry[field])
    return event


def _image(mode: str, found: Doc | None, what: str, entry: Doc) -> Doc | None:
    if found is None and mode == "required":
        raise _fail(47, f"{what} not found for {entry['ts']}")
    return found


def event_from_entry(
    entry: Doc, *, lookup: Lookup | None = None, spec: Spec | None = None, txn_index: int = 0
) -> Event | None:
    """One operation as a change event, or None for what streams never show (noops, create...).

    ``lookup(ns, _id)`` provides ``fullDocument`` for updates. The simulator keeps no pre- or
    post-images, so ``whenAvailable`` and ``required`` use the current document too, and
    ``fullDocumentBeforeChange`` is always null (``required`` fails). Use
    :func:`events_from_entry` for ``applyOps`` and for invalidation.
    """
    spec = spec or ChangeStreamSpec()
    op, ns = entry.get("op"), str(entry.get("ns", ""))
    o: Doc = entry.get("o") or {}
    db, coll = _split(ns)
    if op == "c":
        return _command_event(entry, o, db, spec, txn_index)
    if op not in ("i", "u", "d"):
        return None
    replacement = op == "u" and not any(key.startswith("$") for key in o)
    kind = {"i": "insert", "d": "delete"}.get(op, "replace" if replacement else "update")
    event = _header(entry, kind, txn_index)
    key = copy.deepcopy(dict(entry.get("o2") or ({"_id": o.get("_id")} if op != "d" else o)))
    if op == "i" or replacement:
        event["fullDocument"] = copy.deepcopy(dict(o))
    elif op == "u" and spec.full_document != "default":
        found = lookup(ns, key.get("_id")) if lookup is not None else None
        event["fullDocument"] = copy.deepcopy(
            _image(spec.full_document, found, "post-image", entry)
        )
    event["ns"] = {"db": db, "coll": coll}
    event["documentKey"] = key
    if kind == "update":
        event["updateDescription"] = _update_description(o)
    if op != "i" and spec.full_document_before_change != "off":
        before_mode = spec.full_document_before_change
        event["fullDocumentBeforeChange"] = _image(before_mode, None, "pre-image", entry)
    return event


def _update_description(o: Doc) -> dict[str, Any]:
    if o.get("$v") == 2 and isinstance(o.get("diff"), Mapping):
        return diff_to_update_description(o["diff"])
    # Legacy ``$v: 1`` ($set / $unset), as written before 5.0.
    return {
        "updatedFields": copy.deepcopy(dict(o.get("$set") or {})),
        "removedFields": list(o.get("$unset") or {}),
        "truncatedArrays": [],
    }


def _command_event(entry: Doc, o: Doc, db: str, spec: Spec, txn_index: int) -> Event | None:
    if "drop" in o:
        event = _header(entry, "drop", txn_index)
        event["ns"] = {"db": db, "coll": o["drop"]}
    elif "renameCollection" in o:
        event = _header(entry, "rename", txn_index)
        source, target = _split(str(o["renameCollection"])), _split(str(o.get("to", "")))
        event["ns"] = {"db": source[0], "coll": source[1]}
        event["to"] = {"db": target[0], "coll": target[1]}
    elif "dropDatabase" in o:
        event = _header(entry, "dropDatabase", txn_index)
        event["ns"] = {"db": db}
    elif "create" in o and spec.show_expanded_events:
        event = _header(entry, "create", txn_index)
        event["ns"] = {"db": db, "coll": o["create"]}
        event["operationDescription"] = {k: copy.deepcopy(v) for k, v in o.items() if k != "create"}
    else:
        return None
    return event


def invalidate_event(entry: Doc, txn_index: int = 0) -> Event:
    """The ``invalidate`` after ``entry``'s event. ``startAfter`` accepts its token."""
    return _header(entry, "invalidate", txn_index, event_index=1)


def events_from_entry(
    entry: Doc, *, scope: StreamScope, spec: Spec | None = None, lookup: Lookup | None = None
) -> list[Event]:
    """All the events a stream with ``scope`` shows for one entry, in order.

    This expands ``applyOps`` transactions (with ``txn_index`` = position) and appends
    ``invalidate`` where the scope requires it.
    """
    if not scope(entry):
        return []
    o = entry.get("o") or {}
    if entry.get("op") == "c" and "applyOps" in o:
        events: list[Event] = []
        for index, inner in enumerate(o["applyOps"]):
            if scope.watches(inner.get("ns", "")):
                merged = {**inner, **{k: entry[k] for k in _TXN_FIELDS if k in entry}}
                event = event_from_entry(merged, lookup=lookup, spec=spec, txn_index=index)
                if event is not None:
                    events.append(event)
        return events
    if not scope.invalidated_by(entry):
        single = event_from_entry(entry, lookup=lookup, spec=spec)
        return [single] if single is not None else []
    bare = scope.coll is not None and "dropDatabase" in o
    first = None if bare else event_from_entry(entry, lookup=lookup, spec=spec)
    return [*([first] if first is not None else []), invalidate_event(entry)]


# --- reading ------------------------------------------------------------------------------------


def _before(ts: Timestamp) -> Timestamp:
    return from_int(max(as_int(ts) - 1, 0))


def start_position(spec: ChangeStreamSpec, latest: Timestamp | None) -> TokenParts:
    """Where a new stream starts. Events strictly after the position are delivered.

    The token for ``resumeAfter`` or ``startAfter``. Just before ``startAtOperationTime``. Otherwise
    after ``latest``, the newest oplog time when the stream opens.
    """
    if spec.resume_after is not None:
        return spec.resume_after
    if spec.start_after is not None:
        return spec.start_after
    if spec.start_at_operation_time is not None:
        return high_water_mark(_before(spec.start_at_operation_time))
    return high_water_mark(latest or Timestamp(0, 0))


def read_events(
    oplog: Oplog,
    position: TokenParts,
    *,
    scope: StreamScope,
    spec: Spec | None = None,
    lookup: Lookup | None = None,
) -> tuple[list[Event], TokenParts]:
    """Events after ``position``, and the next position, which is the ``postBatchResumeToken``.

    Raises ``CommandFailure(286)`` if the oplog has dropped entries the stream still needed. The
    read stops after an ``invalidate``, and the front end should then close the cursor (id 0).
    """
    at_end = position.txn_index == MAX_U32 and position.event_index == MAX_U32
    since = position.ts if at_end else _before(position.ts)
    if not oplog.has_history_since(since):
        raise _fail(CHANGE_STREAM_HISTORY_LOST, "the resume point is no longer in the oplog")
    events: list[Event] = []
    for entry in oplog.entries_after(since, ns_filter=scope):
        for event in events_from_entry(entry, scope=scope, spec=spec, lookup=lookup):
            parts = decode_token(event["_id"])
            if parts <= position:
                continue
            events.append(event)
            position = parts
            if event["operationType"] == "invalidate":
                return events, position
    latest = oplog.last_ts
    if latest is not None and high_water_mark(latest) > position:
        position = high_water_mark(latest)
    return events, position

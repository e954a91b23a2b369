"""Change streams without a server: tokens, ``$changeStream`` parsing, scopes, events, resuming."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

import bson
import pytest
from bson import Binary, Timestamp
from clustersim.errors import ClustersimError
from clustersim.mongo.changestreams import (
    CHANGE_STREAM_FATAL,
    CHANGE_STREAM_HISTORY_LOST,
    ChangeStreamSpec,
    CommandFailure,
    InvalidResumeToken,
    StreamScope,
    TokenParts,
    decode_token,
    encode_token,
    event_from_entry,
    events_from_entry,
    high_water_mark,
    parse_change_stream_stage,
    read_events,
    scope_filter,
    scope_for,
    start_position,
)
from clustersim.mongo.oplog import (
    MAX_U32,
    Oplog,
    OplogClock,
    command_entry,
    delete_entry,
    insert_entry,
    noop_entry,
    update_diff,
    update_entry,
)
from hypothesis import given
from hypothesis import strategies as st

UI = Binary.from_uuid(uuid.UUID(int=1))
TS = Timestamp(1_700_000_000, 5)
WALL = datetime(2023, 11, 14, tzinfo=UTC)

PARTS = st.builds(
    TokenParts,
    st.builds(Timestamp, st.integers(0, MAX_U32), st.integers(0, MAX_U32)),
    st.integers(0, MAX_U32),
    st.integers(0, MAX_U32),
    st.booleans(),
)


class Log:
    """An oplog with a clock, for writing scenarios in a few lines."""

    def __init__(self, max_entries: int = 1000) -> None:
        self.oplog = Oplog(max_entries)
        self.seconds = 1000.0
        self.clock = OplogClock(lambda: self.seconds)
        self.docs: dict[tuple[str, Any], dict[str, Any]] = {}

    def lookup(self, ns: str, document_id: Any) -> dict[str, Any] | None:
        return self.docs.get((ns, document_id))

    def insert(self, ns: str, document: dict[str, Any]) -> Timestamp:
        self.docs[ns, document["_id"]] = document
        return self._add(insert_entry(self.clock.tick(), 1, ns, UI, document))

    def update(self, ns: str, after: dict[str, Any]) -> Timestamp:
        diff = update_diff(self.docs[ns, after["_id"]], after)
        self.docs[ns, after["_id"]] = after
        return self._add(update_entry(self.clock.tick(), 1, ns, UI, after["_id"], diff=diff))

    def command(self, db: str, command: dict[str, Any]) -> Timestamp:
        return self._add(command_entry(self.clock.tick(), 1, db, command))

    def _add(self, entry: dict[str, Any]) -> Timestamp:
        self.oplog.append(entry)
        ts: Timestamp = entry["ts"]
        return ts


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [event["operationType"] for event in events]


# --- tokens ------------------------------------------------------------------------------------


def test_token_shape_and_round_trip() -> None:
    token = encode_token(Timestamp(0x65, 0x0A), 2, 1, True)
    assert token == {"_data": "82" + "00000065" + "0000000A" + "00000002" + "00000001" + "01"}
    assert decode_token(token) == TokenParts(Timestamp(0x65, 0x0A), 2, 1, True)
    ts, txn_index, event_index, from_invalidate = decode_token(encode_token(TS))
    assert (ts, txn_index, event_index, from_invalidate) == (TS, 0, 0, False)


@given(PARTS)
def test_tokens_round_trip(parts: TokenParts) -> None:
    assert decode_token(encode_token(*parts)) == parts
    assert decode_token(bson.decode(bson.encode({"t": encode_token(*parts)}))["t"]) == parts


@given(PARTS, PARTS)
def test_tokens_sort_like_their_positions(a: TokenParts, b: TokenParts) -> None:
    data_a, data_b = encode_token(*a)["_data"], encode_token(*b)["_data"]
    assert (data_a < data_b) == (a < b)
    assert (data_a == data_b) == (a == b)
    if a.ts != b.ts:  # in particular, tokens follow the oplog's timestamp order
        assert (data_a < data_b) == (a.ts < b.ts)


@pytest.mark.parametrize(
    "token",
    [
        None,
        "82" + "0" * 34,
        {},
        {"_data": 5},
        {"_data": "81" + "0" * 34},
        {"_data": "82" + "0" * 33},
        {"_data": "82" + "0" * 35},
        {"_data": "82" + "a" * 34},  # lowercase: not what we issue
        {"_data": "82" + "0" * 32 + "02"},  # unknown flag
        {"_data": "82" + "0_00000" + "0" * 28},
        {"_data": "82" + " " * 34},
    ],
)
def test_malformed_tokens_raise_a_value_error(token: object) -> None:
    with pytest.raises(InvalidResumeToken) as caught:
        decode_token(token)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, ClustersimError)


@given(st.text(max_size=40))
def test_random_token_text_never_crashes_differently(data: str) -> None:
    with contextlib.suppress(InvalidResumeToken):
        decode_token({"_data": data})


def test_encode_rejects_indexes_out_of_range() -> None:
    with pytest.raises(InvalidResumeToken):
        encode_token(TS, -1)
    with pytest.raises(InvalidResumeToken):
        encode_token(TS, 0, MAX_U32 + 1)


def test_high_water_mark_sorts_after_every_event_at_its_time() -> None:
    mark = high_water_mark(TS)
    assert mark > TokenParts(TS, 5, 1, True)
    assert mark < TokenParts(Timestamp(TS.time, TS.inc + 1))
    assert decode_token(encode_token(*mark)) == mark


def test_constants() -> None:
    assert (CHANGE_STREAM_FATAL, CHANGE_STREAM_HISTORY_LOST) == (280, 286)


# --- the $changeStream stage -------------------------------------------------------------------


def test_parse_defaults_and_all_options() -> None:
    assert parse_change_stream_stage({"$changeStream": {}}) == ChangeStreamSpec()
    token = encode_token(TS, 1)
    spec = parse_change_stream_stage(
        {
            "fullDocument": "updateLookup",
            "fullDocumentBeforeChange": "whenAvailable",
            "resumeAfter": token,
            "allChangesForCluster": True,
            "showExpandedEvents": True,
        }
    )
    assert spec == ChangeStreamSpec(
        full_document="updateLookup",
        full_document_before_change="whenAvailable",
        resume_after=TokenParts(TS, 1),
        all_changes_for_cluster=True,
        show_expanded_events=True,
    )
    assert parse_change_stream_stage({"startAtOperationTime": TS}).start_at_operation_time == TS
    invalidate = encode_token(TS, 0, 1, True)
    after = parse_change_stream_stage({"startAfter": invalidate})
    assert after.start_after == TokenParts(TS, 0, 1, True)
    with pytest.raises(AttributeError):
        after.full_document = "required"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("stage", "code"),
    [
        ({"$changeStream": 1}, 50808),
        ({"bogus": 1}, 40415),
        ({"fullDocument": 1}, 14),
        ({"fullDocument": "sometimes"}, 2),
        ({"fullDocumentBeforeChange": "updateLookup"}, 2),
        ({"showExpandedEvents": 1}, 14),
        ({"allChangesForCluster": "yes"}, 14),
        ({"startAtOperationTime": 5}, 14),
        ({"resumeAfter": "token"}, 14),
        ({"resumeAfter": {"_data": "zz"}}, 260),
        ({"resumeAfter": encode_token(TS), "startAfter": encode_token(TS)}, 50865),
        ({"resumeAfter": encode_token(TS), "startAtOperationTime": TS}, 40674),
        ({"startAfter": encode_token(TS), "startAtOperationTime": TS}, 40674),
        ({"resumeAfter": encode_token(TS, 0, 1, True)}, 260),
    ],
)
def test_bad_options_fail_with_server_codes(stage: dict[str, Any], code: int) -> None:
    with pytest.raises(CommandFailure) as caught:
        parse_change_stream_stage(stage)
    failure = caught.value
    assert failure.code == code
    reply = failure.reply()
    assert reply["ok"] == 0.0
    assert reply["code"] == code
    assert reply["codeName"]
    assert reply["errmsg"] == failure.message


# --- scopes ------------------------------------------------------------------------------------


def test_scope_membership() -> None:
    coll, db, cluster = scope_filter("app", "items"), scope_filter("app", None), StreamScope()
    assert coll.watches("app.items")
    assert not coll.watches("app.other")
    assert db.watches("app.other")
    assert not db.watches("app.system.views")
    assert not db.watches("other.items")
    assert cluster.watches("other.items")
    for internal in ("admin.x", "config.x", "local.oplog.rs"):
        assert not cluster.watches(internal)
    assert not cluster(noop_entry(TS, 1))
    drop_other = command_entry(TS, 1, "app", {"drop": "other"})
    assert db(drop_other)
    assert not coll(drop_other)
    assert not coll(command_entry(TS, 1, "app", {"createIndexes": "items"}))
    with pytest.raises(CommandFailure):
        scope_filter(None, "items")


@pytest.mark.parametrize(
    ("all_changes", "db", "coll", "expected"),
    [
        (False, "app", "items", StreamScope("app", "items")),
        (False, "app", None, StreamScope("app")),
        (True, "admin", None, StreamScope()),
        (True, "app", None, None),
        (True, "admin", "x", None),
        (False, "admin", None, None),
        (False, "local", "oplog.rs", None),
        (False, "app", "system.views", None),
    ],
)
def test_scope_for_vets_namespaces(
    all_changes: bool, db: str, coll: str | None, expected: StreamScope | None
) -> None:
    spec = ChangeStreamSpec(all_changes_for_cluster=all_changes)
    if expected is None:
        with pytest.raises(CommandFailure) as caught:
            scope_for(spec, db, coll)
        assert caught.value.code == 73
    else:
        assert scope_for(spec, db, coll) == expected


# --- events ------------------------------------------------------------------------------------


def test_insert_event() -> None:
    entry = insert_entry(TS, 1, "app.items", UI, {"_id": 1, "x": 2}, wall=WALL)
    event = event_from_entry(entry, lookup=None, spec=ChangeStreamSpec())
    assert event == {
        "_id": encode_token(TS),
        "operationType": "insert",
        "clusterTime": TS,
        "wallTime": WALL,
        "fullDocument": {"_id": 1, "x": 2},
        "ns": {"db": "app", "coll": "items"},
        "documentKey": {"_id": 1},
    }
    event["fullDocument"]["x"] = 99
    assert entry["o"]["x"] == 2


def test_update_event_with_and_without_lookup() -> None:
    diff = update_diff({"_id": 1, "a": [1, 2], "b": 1}, {"_id": 1, "a": [1], "c": 3})
    entry = update_entry(TS, 1, "app.items", UI, 1, diff=diff)
    plain = event_from_entry(entry, lookup=None, spec=ChangeStreamSpec())
    assert plain is not None
    assert plain["operationType"] == "update"
    assert "fullDocument" not in plain
    assert plain["documentKey"] == {"_id": 1}
    assert plain["updateDescription"] == {
        "updatedFields": {"c": 3},
        "removedFields": ["b"],
        "truncatedArrays": [{"field": "a", "newSize": 1}],
    }
    current = {"_id": 1, "a": [1], "c": 3}
    seen: list[tuple[str, Any]] = []

    def lookup(ns: str, document_id: Any) -> dict[str, Any] | None:
        seen.append((ns, document_id))
        return current

    spec = ChangeStreamSpec(full_document="updateLookup")
    looked_up = event_from_entry(entry, lookup=lookup, spec=spec)
    assert looked_up is not None
    assert looked_up["fullDocument"] == current
    assert seen == [("app.items", 1)]
    gone = event_from_entry(entry, lookup=lambda ns, i: None, spec=spec)
    assert gone is not None
    assert gone["fullDocument"] is None
    with pytest.raises(CommandFailure) as caught:
        event_from_entry(entry, lookup=lambda ns, i: None, spec=ChangeStreamSpec("required"))
    assert caught.value.code == 47


def test_legacy_v1_update_event() -> None:
    entry = update_entry(TS, 1, "app.items", UI, 1, diff={})
    entry["o"] = {"$v": 1, "$set": {"a": 1}, "$unset": {"b": True}}
    event = event_from_entry(entry)
    assert event is not None
    assert event["updateDescription"] == {
        "updatedFields": {"a": 1},
        "removedFields": ["b"],
        "truncatedArrays": [],
    }


def test_replace_and_delete_events() -> None:
    replace = update_entry(TS, 1, "app.items", UI, 1, replacement={"_id": 1, "y": 1})
    event = event_from_entry(replace)
    assert event is not None
    assert event["operationType"] == "replace"
    assert event["fullDocument"] == {"_id": 1, "y": 1}
    assert "updateDescription" not in event
    delete = event_from_entry(delete_entry(TS, 1, "app.items", UI, 1))
    assert delete is not None
    assert (delete["operationType"], delete["documentKey"]) == ("delete", {"_id": 1})
    assert "fullDocument" not in delete
    spec = ChangeStreamSpec(full_document_before_change="whenAvailable")
    with_before = event_from_entry(delete_entry(TS, 1, "app.items", UI, 1), spec=spec)
    assert with_before is not None
    assert with_before["fullDocumentBeforeChange"] is None


def test_command_events() -> None:
    drop = event_from_entry(command_entry(TS, 1, "app", {"drop": "items"}))
    assert drop is not None
    assert (drop["operationType"], drop["ns"]) == ("drop", {"db": "app", "coll": "items"})
    rename = event_from_entry(
        command_entry(TS, 1, "app", {"renameCollection": "app.a", "to": "app.b"})
    )
    assert rename is not None
    assert rename["operationType"] == "rename"
    assert (rename["ns"], rename["to"]) == ({"db": "app", "coll": "a"}, {"db": "app", "coll": "b"})
    dropped_db = event_from_entry(command_entry(TS, 1, "app", {"dropDatabase": 1}))
    assert dropped_db is not None
    assert (dropped_db["operationType"], dropped_db["ns"]) == ("dropDatabase", {"db": "app"})
    create = command_entry(TS, 1, "app", {"create": "items", "idIndex": {"v": 2}})
    assert event_from_entry(create) is None
    expanded = event_from_entry(create, spec=ChangeStreamSpec(show_expanded_events=True))
    assert expanded is not None
    assert expanded["operationType"] == "create"
    assert expanded["operationDescription"] == {"idIndex": {"v": 2}}
    assert event_from_entry(noop_entry(TS, 1)) is None


def test_drop_invalidates_a_collection_stream_but_not_a_database_stream() -> None:
    drop = command_entry(TS, 1, "app", {"drop": "items"})
    events = events_from_entry(drop, scope=StreamScope("app", "items"))
    assert kinds(events) == ["drop", "invalidate"]
    invalidate = events[1]
    assert set(invalidate) == {"_id", "operationType", "clusterTime", "wallTime"}
    assert decode_token(invalidate["_id"]) == TokenParts(TS, 0, 1, True)
    assert events[0]["_id"]["_data"] < invalidate["_id"]["_data"]
    assert kinds(events_from_entry(drop, scope=StreamScope("app"))) == ["drop"]
    assert kinds(events_from_entry(drop, scope=StreamScope())) == ["drop"]
    assert events_from_entry(drop, scope=StreamScope("app", "other")) == []


def test_rename_and_drop_database_invalidation() -> None:
    rename = command_entry(TS, 1, "app", {"renameCollection": "app.items", "to": "app.old"})
    assert kinds(events_from_entry(rename, scope=StreamScope("app", "items"))) == [
        "rename",
        "invalidate",
    ]
    assert kinds(events_from_entry(rename, scope=StreamScope("app", "old"))) == ["rename"]
    drop_db = command_entry(TS, 1, "app", {"dropDatabase": 1})
    assert kinds(events_from_entry(drop_db, scope=StreamScope("app"))) == [
        "dropDatabase",
        "invalidate",
    ]
    assert kinds(events_from_entry(drop_db, scope=StreamScope("app", "items"))) == ["invalidate"]
    assert kinds(events_from_entry(drop_db, scope=StreamScope())) == ["dropDatabase"]
    assert events_from_entry(drop_db, scope=StreamScope("other")) == []


def test_apply_ops_expands_in_order_with_transaction_indexes() -> None:
    inner = [
        insert_entry(TS, 1, "app.items", UI, {"_id": 1}),
        insert_entry(TS, 1, "app.other", UI, {"_id": 2}),
        delete_entry(TS, 1, "app.items", UI, 3),
    ]
    for op in inner:
        for field in ("ts", "t", "v", "wall"):
            op.pop(field)
    entry = command_entry(TS, 1, "admin", {"applyOps": inner}, wall=WALL)
    entry["lsid"] = {"id": Binary.from_uuid(uuid.UUID(int=9))}
    entry["txnNumber"] = 4
    events = events_from_entry(entry, scope=StreamScope("app", "items"))
    assert kinds(events) == ["insert", "delete"]
    assert [decode_token(e["_id"]).txn_index for e in events] == [0, 2]
    assert all(e["clusterTime"] == TS and e["wallTime"] == WALL for e in events)
    assert all(e["txnNumber"] == 4 and "lsid" in e for e in events)
    assert kinds(events_from_entry(entry, scope=StreamScope("app"))) == [
        "insert",
        "insert",
        "delete",
    ]
    assert events_from_entry(entry, scope=StreamScope("app", "none")) == []


# --- reading and resuming ----------------------------------------------------------------------


def test_read_resume_and_start_positions() -> None:
    log = Log()
    scope = StreamScope("app", "items")
    opened = start_position(ChangeStreamSpec(), log.oplog.last_ts)
    first = log.insert("app.items", {"_id": 1})
    log.insert("app.other", {"_id": 2})
    second = log.update("app.items", {"_id": 1, "x": 1})
    events, position = read_events(log.oplog, opened, scope=scope)
    assert kinds(events) == ["insert", "update"]
    assert position == high_water_mark(second)
    again, same = read_events(log.oplog, position, scope=scope)
    assert (again, same) == ([], position)
    resumed = parse_change_stream_stage({"resumeAfter": events[0]["_id"]})
    tail, _ = read_events(log.oplog, start_position(resumed, None), scope=scope)
    assert [e["_id"] for e in tail] == [events[1]["_id"]]
    at_first = parse_change_stream_stage({"startAtOperationTime": first})
    replay, _ = read_events(log.oplog, start_position(at_first, None), scope=scope)
    assert [e["_id"] for e in replay] == [e["_id"] for e in events]
    origin = parse_change_stream_stage({"startAtOperationTime": Timestamp(0, 0)})
    assert len(read_events(log.oplog, start_position(origin, None), scope=scope)[0]) == 2


def test_read_stops_at_invalidate_and_start_after_continues() -> None:
    log = Log()
    scope = StreamScope("app", "items")
    start = start_position(ChangeStreamSpec(), None)
    log.insert("app.items", {"_id": 1})
    log.command("app", {"drop": "items"})
    log.insert("app.items", {"_id": 2})  # the collection, created again
    events, position = read_events(log.oplog, start, scope=scope)
    assert kinds(events) == ["insert", "drop", "invalidate"]
    assert position == decode_token(events[-1]["_id"])
    with pytest.raises(CommandFailure) as caught:
        parse_change_stream_stage({"resumeAfter": events[-1]["_id"]})
    assert caught.value.code == 260
    spec = parse_change_stream_stage({"startAfter": events[-1]["_id"]})
    after, _ = read_events(log.oplog, start_position(spec, None), scope=scope)
    assert kinds(after) == ["insert"]
    assert after[0]["documentKey"] == {"_id": 2}
    resumed_at_drop = parse_change_stream_stage({"resumeAfter": events[1]["_id"]})
    only_invalidate, _ = read_events(log.oplog, start_position(resumed_at_drop, None), scope=scope)
    assert kinds(only_invalidate) == ["invalidate"]


def test_update_lookup_reads_the_current_document() -> None:
    log = Log()
    spec = ChangeStreamSpec(full_document="updateLookup")
    log.insert("app.items", {"_id": 1, "n": 0})
    log.update("app.items", {"_id": 1, "n": 1})
    log.update("app.items", {"_id": 1, "n": 2})
    events, _ = read_events(
        log.oplog, TokenParts(Timestamp(0, 0)), scope=StreamScope(), spec=spec, lookup=log.lookup
    )
    assert [e["fullDocument"] for e in events] == [{"_id": 1, "n": 0}, *[{"_id": 1, "n": 2}] * 2]


def test_history_lost_when_the_oplog_rolled_past_the_position() -> None:
    log = Log(max_entries=3)
    scope = StreamScope("app")
    stamps = [log.insert("app.items", {"_id": i}) for i in range(5)]
    events, _ = read_events(log.oplog, high_water_mark(stamps[1]), scope=scope)
    assert len(events) == 3  # entries 2, 3, 4 are all retained
    for lost in (TokenParts(stamps[1]), high_water_mark(stamps[0])):
        with pytest.raises(CommandFailure) as caught:
            read_events(log.oplog, lost, scope=scope)
        assert caught.value.code == CHANGE_STREAM_HISTORY_LOST
        assert caught.value.code_name == "ChangeStreamHistoryLost"
    log.oplog.truncate_before(stamps[4])
    with pytest.raises(CommandFailure):
        read_events(log.oplog, high_water_mark(stamps[2]), scope=scope)


@given(st.lists(st.sampled_from(["i", "u", "other", "noop"]), min_size=1, max_size=25), st.data())
def test_resuming_from_any_event_gives_the_rest_without_gaps(
    ops: list[str], data: st.DataObject
) -> None:
    log = Log()
    for n, op in enumerate(ops):
        log.seconds += data.draw(st.sampled_from([0, 0, 1]))
        if op == "i" or (op == "u" and ("app.items", 0) not in log.docs):
            log.insert("app.items", {"_id": n} if op == "i" else {"_id": 0})
        elif op == "u":
            log.update("app.items", {"_id": 0, "n": n})
        elif op == "other":
            log.insert("app.other", {"_id": n})
        else:
            log.oplog.append(noop_entry(log.clock.tick(), 1))
    scope = StreamScope("app", "items")
    everything, _ = read_events(log.oplog, TokenParts(Timestamp(0, 0)), scope=scope)
    tokens = [e["_id"]["_data"] for e in everything]
    assert tokens == sorted(tokens)
    assert len(set(tokens)) == len(tokens)
    for index, event in enumerate(everything):
        spec = parse_change_stream_stage({"resumeAfter": event["_id"]})
        rest, _ = read_events(log.oplog, start_position(spec, None), scope=scope)
        assert [e["_id"] for e in rest] == [e["_id"] for e in everything[index + 1 :]]

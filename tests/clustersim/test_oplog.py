"""The pure oplog: clock, ``$v: 2`` diffs (round trips as properties), entries, capped log."""

from __future__ import annotations

import itertools
import math
import uuid
from datetime import UTC, datetime
from typing import Any

import bson
import pytest
from bson import Binary, Int64, Timestamp
from clustersim.errors import ClustersimError
from clustersim.mongo.oplog import (
    InvalidDiff,
    Oplog,
    OplogClock,
    OplogError,
    apply_diff,
    as_int,
    command_entry,
    delete_entry,
    diff_to_update_description,
    from_int,
    insert_entry,
    noop_entry,
    update_diff,
    update_entry,
)
from hypothesis import given, settings
from hypothesis import strategies as st

UI = Binary.from_uuid(uuid.UUID(int=7))
NS = "app.items"

# --- strategies --------------------------------------------------------------------------------

# Field names include the diff's own section letters and digits, so that a key like "s", "u", "a",
# "l" or "0" cannot be mistaken for diff syntax. "" makes a subdiff key of plain "s". Dots and ""
# make dotted paths ambiguous (as on a real server), so the path tests use PATH_KEYS.
PATH_KEYS = ["a", "b", "c", "d", "i", "l", "s", "u", "0", "1", "sx", "u0"]
ALL_KEYS = [*PATH_KEYS, ""]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.text(max_size=3),
)


def values(keys: list[str]) -> st.SearchStrategy[Any]:
    names = st.sampled_from(keys)
    return st.recursive(
        SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(names, inner, max_size=4)
        ),
        max_leaves=12,
    )


def docs(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys), values(keys), max_size=5)


def mutate(data: st.DataObject, value: Any, keys: list[str]) -> Any:
    """A random edit made the way MongoDB's update operators make it.

    Surviving fields keep their place, new fields are appended, arrays are truncated, extended or
    edited in place. The result's exact BSON (order and types) is then reachable by a diff.
    """
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        for key, old in value.items():
            action = data.draw(st.sampled_from(["keep", "keep", "drop", "edit", "replace"]))
            if action == "keep":
                result[key] = old
            elif action == "edit":
                result[key] = mutate(data, old, keys)
            elif action == "replace":
                result[key] = data.draw(values(keys))
        for key in data.draw(st.lists(st.sampled_from(keys), max_size=2, unique=True)):
            if key not in value:
                result[key] = data.draw(values(keys))
        return result
    if isinstance(value, list):
        size = data.draw(st.integers(min_value=0, max_value=len(value)))
        edited = [
            mutate(data, item, keys) if data.draw(st.booleans()) else item for item in value[:size]
        ]
        return edited + data.draw(st.lists(values(keys), max_size=2))
    if data.draw(st.booleans()):
        return value
    return data.draw(values(keys))


def exact(document: Any) -> bytes:
    """BSON bytes, equal only if order and types are too (``1``, ``1.0`` and ``True`` differ)."""
    return bson.encode({"v": document})


def top_level_sorted(document: dict[str, Any]) -> bytes:
    return exact(dict(sorted(document.items())))


MISSING = object()


def resolve(document: Any, path: str) -> Any:
    """The value at a dotted path, treating a component as an index under arrays."""
    current = document
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part, MISSING)
        elif isinstance(current, list) and part.isdecimal() and int(part) < len(current):
            current = current[int(part)]
        else:
            return MISSING
        if current is MISSING:
            return MISSING
    return current


def apply_description(document: dict[str, Any], description: dict[str, Any]) -> dict[str, Any]:
    """A change stream consumer's view: truncate, remove, then set every dotted path."""
    result = bson.decode(bson.encode(document))  # deep copy

    def parent_of(path: str) -> tuple[Any, str]:
        head, _, last = path.rpartition(".")
        return (resolve(result, head) if head else result), last

    for truncation in description["truncatedArrays"]:
        del resolve(result, truncation["field"])[truncation["newSize"] :]
    for path in description["removedFields"]:
        parent, last = parent_of(path)
        del parent[last]
    for path, value in description["updatedFields"].items():
        parent, last = parent_of(path)
        if isinstance(parent, list):  # $set past an array's end pads it with nulls
            parent.extend([None] * (int(last) + 1 - len(parent)))
            parent[int(last)] = value
        else:
            parent[last] = value
    return result


# --- clock -------------------------------------------------------------------------------------


def test_clock_counts_within_a_second_and_restarts_at_one() -> None:
    now = [100.2]
    clock = OplogClock(lambda: now[0])
    assert clock.last is None
    assert [clock.tick() for _ in range(3)] == [Timestamp(100, i) for i in (1, 2, 3)]
    now[0] = 101.9
    assert clock.tick() == Timestamp(101, 1)
    assert clock.last == Timestamp(101, 1)


def test_clock_never_goes_backwards_and_observe_moves_it_forward() -> None:
    now = [50.0]
    clock = OplogClock(lambda: now[0])
    assert clock.tick() == Timestamp(50, 1)
    now[0] = 10.0
    assert clock.tick() == Timestamp(50, 2)
    clock.observe(Timestamp(60, 5))
    assert clock.tick() == Timestamp(60, 6)
    clock.observe(Timestamp(1, 1))  # older: ignored
    assert clock.tick() == Timestamp(60, 7)


def test_clock_rolls_into_the_next_second_when_the_increment_overflows() -> None:
    clock = OplogClock(lambda: 5.0, last=Timestamp(5, 0xFFFFFFFF))
    assert clock.tick() == Timestamp(6, 1)


@given(st.lists(st.floats(min_value=-10, max_value=4e9, allow_nan=False), min_size=1))
def test_clock_is_strictly_increasing_whatever_now_does(readings: list[float]) -> None:
    feed = iter(readings)
    clock = OplogClock(lambda: next(feed))
    stamps = [clock.tick() for _ in readings]
    assert all(a < b for a, b in itertools.pairwise(stamps))
    assert all(as_int(a) < as_int(b) for a, b in itertools.pairwise(stamps))
    assert stamps[-1].time >= max(0, math.floor(max(readings)))


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_as_int_round_trips_and_orders(seconds: int, inc: int) -> None:
    ts = Timestamp(seconds, inc)
    assert from_int(as_int(ts)) == ts
    assert as_int(ts) < 2**64
    assert Oplog.as_int(ts) == as_int(ts)


# --- diffs: examples ---------------------------------------------------------------------------


def test_diff_sections_for_delete_update_insert_and_nesting() -> None:
    before = {"_id": 1, "a": 1, "b": {"c": 1, "d": 2}, "gone": True}
    after = {"_id": 1, "a": 2, "b": {"c": 1, "d": 3, "e": 4}, "new": "x"}
    diff = update_diff(before, after)
    assert diff == {
        "d": {"gone": False},
        "u": {"a": 2},
        "i": {"new": "x"},
        "sb": {"u": {"d": 3}, "i": {"e": 4}},
    }
    assert apply_diff(before, diff) == after
    assert exact(apply_diff(before, diff)) == exact(after)


def test_array_diff_truncates_updates_and_recurses() -> None:
    before = {"xs": [1, {"k": 1}, 3, 4]}
    after = {"xs": [9, {"k": 2}]}
    diff = update_diff(before, after)
    assert diff == {"sxs": {"a": True, "l": 2, "u0": 9, "s1": {"u": {"k": 2}}}}
    grow = update_diff({"xs": [1]}, {"xs": [1, 2, 3]})
    assert grow == {"sxs": {"a": True, "u1": 2, "u2": 3}}
    assert apply_diff(before, diff) == after


def test_identical_documents_give_an_empty_diff_and_types_count() -> None:
    assert update_diff({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2}]}) == {}
    assert update_diff({"a": 1}, {"a": True}) == {"u": {"a": True}}
    assert update_diff({"a": 1}, {"a": 1.0}) == {"u": {"a": 1.0}}
    assert update_diff({"a": math.nan}, {"a": math.nan}) == {}


def test_reordered_sub_document_is_sent_whole() -> None:
    before = {"x": {"a": 1, "b": 2}}
    after = {"x": {"b": 2, "a": 1}}
    assert update_diff(before, after) == {"u": {"x": {"b": 2, "a": 1}}}


def test_apply_appends_new_fields_and_pads_arrays_with_nulls() -> None:
    document = {"a": 1, "b": 2, "xs": [1]}
    result = apply_diff(document, {"i": {"z": 0}, "u": {"a": 5}, "sxs": {"a": True, "u3": 7}})
    assert list(result) == ["a", "b", "xs", "z"]
    assert result == {"a": 5, "b": 2, "xs": [1, None, None, 7], "z": 0}
    assert document == {"a": 1, "b": 2, "xs": [1]}  # input untouched


def test_apply_does_not_alias_the_diff_or_the_document() -> None:
    inner = {"k": [1]}
    diff = {"i": {"n": inner}}
    result = apply_diff({"keep": inner}, diff)
    result["n"]["k"].append(2)
    result["keep"]["k"].append(3)
    assert inner == {"k": [1]}


@pytest.mark.parametrize(
    ("document", "diff"),
    [
        ({"a": 1}, {"x": {}}),  # unknown section
        ({"a": 1}, {"u": 5}),  # section not a document
        ({"a": 1}, {"sb": {"u": {"c": 1}}}),  # subdiff for a missing field
        ({"a": 1}, {"sa": {"u": {"c": 1}}}),  # document diff on a scalar
        ({"a": {"b": 1}}, {"sa": {"a": True, "u0": 1}}),  # array diff on a document
        ({"a": [1]}, {"sa": {"a": True, "x0": 1}}),  # unknown array key
        ({"a": [1]}, {"sa": {"a": True, "u": 1}}),  # no index
        ({"a": [1]}, {"sa": {"a": True, "u²": 1}}),  # not an ASCII index
        ({"a": [1]}, {"sa": {"a": True, "l": -1}}),
        ({"a": [1]}, {"sa": {"a": True, "l": "2"}}),
        ({"a": [1]}, {"sa": {"a": True, "s4": {"u": {"b": 1}}}}),  # subdiff past the end
        ({"a": [1]}, {"sa": {"a": 1, "u0": 2}}),
    ],
)
def test_malformed_diffs_raise_invalid_diff(document: dict[str, Any], diff: dict[str, Any]) -> None:
    with pytest.raises(InvalidDiff) as caught:
        apply_diff(document, diff)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, ClustersimError)


def test_update_description_uses_dotted_paths() -> None:
    diff = {
        "d": {"old": False},
        "u": {"a": 1},
        "i": {"b": 2},
        "sn": {"sxs": {"a": True, "l": 1, "u0": "z"}, "i": {"deep": True}},
    }
    assert diff_to_update_description(diff) == {
        "updatedFields": {"a": 1, "b": 2, "n.xs.0": "z", "n.deep": True},
        "removedFields": ["old"],
        "truncatedArrays": [{"field": "n.xs", "newSize": 1}],
    }
    with pytest.raises(InvalidDiff):
        diff_to_update_description({"sa": {"a": True, "s0": 5}})


# --- diffs: properties -------------------------------------------------------------------------


@settings(max_examples=300)
@given(st.data(), docs(ALL_KEYS))
def test_diff_round_trips_exactly_for_mongodb_style_edits(
    data: st.DataObject, a: dict[str, Any]
) -> None:
    b = mutate(data, a, ALL_KEYS)
    diff = update_diff(a, b)
    result = apply_diff(a, diff)
    assert result == b
    # MongoDB keeps surviving fields in place and appends new ones, and so does ``mutate``, so
    # even the byte-level BSON (field order, int vs bool) matches.
    assert exact(result) == exact(b)
    assert bson.decode(bson.encode({"diff": diff}))["diff"] == diff  # the diff is valid BSON


@settings(max_examples=300)
@given(docs(ALL_KEYS), docs(ALL_KEYS))
def test_diff_round_trips_any_pair_up_to_top_level_order(
    a: dict[str, Any], b: dict[str, Any]
) -> None:
    result = apply_diff(a, update_diff(a, b))
    assert result == b
    # A diff cannot move surviving top-level fields. Everything below the top level is exact.
    assert top_level_sorted(result) == top_level_sorted(b)
    if list(b)[: len([k for k in a if k in b])] == [k for k in a if k in b]:
        assert exact(result) == exact(b)


@settings(max_examples=300)
@given(st.data(), docs(PATH_KEYS))
def test_update_description_agrees_with_the_diff(data: st.DataObject, a: dict[str, Any]) -> None:
    b = mutate(data, a, PATH_KEYS)
    description = diff_to_update_description(update_diff(a, b))
    for path, value in description["updatedFields"].items():
        assert exact(resolve(b, path)) == exact(value), path
    for path in description["removedFields"]:
        assert resolve(b, path) is MISSING, path
    for truncation in description["truncatedArrays"]:
        assert len(resolve(b, truncation["field"])) == truncation["newSize"]
    assert apply_description(a, description) == b


# --- entries -----------------------------------------------------------------------------------


def test_entries_have_the_modern_shape() -> None:
    ts = Timestamp(1_700_000_000, 3)
    entry = insert_entry(ts, 4, NS, UI, {"_id": 1, "x": 2})
    assert list(entry) == ["op", "ns", "ui", "o", "ts", "t", "v", "wall"]
    assert entry["op"] == "i"
    assert entry["o"] == {"_id": 1, "x": 2}
    assert isinstance(entry["t"], Int64)
    assert entry["t"] == 4
    assert entry["v"] == 2
    assert entry["ui"].subtype == 4
    assert entry["wall"] == datetime.fromtimestamp(1_700_000_000, tz=UTC)
    encoded = bson.decode(bson.encode(entry))
    assert encoded["ts"] == ts


def test_update_entry_forms() -> None:
    ts = Timestamp(10, 1)
    diff = update_diff({"_id": 1, "a": 1}, {"_id": 1, "a": 2})
    field_level = update_entry(ts, 1, NS, UI, 1, diff=diff)
    assert field_level["op"] == "u"
    assert field_level["o"] == {"$v": 2, "diff": {"u": {"a": 2}}}
    assert field_level["o2"] == {"_id": 1}
    replacement = update_entry(ts, 1, NS, UI, 1, replacement={"_id": 1, "b": 3})
    assert replacement["o"] == {"_id": 1, "b": 3}
    assert "$v" not in replacement["o"]
    with pytest.raises(OplogError):
        update_entry(ts, 1, NS, UI, 1)
    with pytest.raises(OplogError):
        update_entry(ts, 1, NS, UI, 1, diff=diff, replacement={"_id": 1})


def test_delete_command_and_noop_entries() -> None:
    ts = Timestamp(10, 2)
    wall = datetime(2024, 1, 2, tzinfo=UTC)
    delete = delete_entry(ts, 1, NS, UI, 5, wall=wall)
    assert (delete["op"], delete["o"], delete["wall"]) == ("d", {"_id": 5}, wall)
    assert "o2" not in delete
    drop = command_entry(ts, 1, "app", {"drop": "items"}, ui=UI)
    assert (drop["op"], drop["ns"], drop["o"], drop["ui"]) == (
        "c",
        "app.$cmd",
        {"drop": "items"},
        UI,
    )
    assert "ui" not in command_entry(ts, 1, "app", {"dropDatabase": 1})
    noop = noop_entry(ts, 1)
    assert (noop["op"], noop["ns"], noop["o"]) == ("n", "", {"msg": "periodic noop"})


def test_entries_copy_their_documents() -> None:
    xs = [1]
    document = {"_id": 1, "xs": xs}
    entry = insert_entry(Timestamp(1, 1), 1, NS, UI, document)
    xs.append(2)
    assert entry["o"] == {"_id": 1, "xs": [1]}


# --- the capped log ----------------------------------------------------------------------------


def filled(count: int, max_entries: int = 100) -> Oplog:
    oplog = Oplog(max_entries)
    for i in range(1, count + 1):
        oplog.append(insert_entry(Timestamp(100, i), 1, f"app.c{i % 2}", UI, {"_id": i}))
    return oplog


def test_empty_log() -> None:
    oplog = Oplog()
    assert oplog.max_entries == 100_000
    assert (len(oplog), oplog.first_ts, oplog.last_ts) == (0, None, None)
    assert oplog.entries_after(None) == []
    assert oplog.has_history_since(None)
    with pytest.raises(OplogError):
        Oplog(0)


def test_entries_after_filters_and_limits() -> None:
    oplog = filled(6)
    assert [e["o"]["_id"] for e in oplog.entries_after(None)] == [1, 2, 3, 4, 5, 6]
    assert [e["o"]["_id"] for e in oplog.entries_after(Timestamp(100, 4))] == [5, 6]
    assert [e["o"]["_id"] for e in oplog.entries_after(Timestamp(100, 3))] == [4, 5, 6]
    odd = oplog.entries_after(None, ns_filter=lambda e: e["ns"] == "app.c1")
    assert [e["o"]["_id"] for e in odd] == [1, 3, 5]
    assert len(oplog.entries_after(None, limit=2)) == 2
    assert oplog.entries_after(Timestamp(200, 1)) == []
    assert [e["o"]["_id"] for e in oplog] == [1, 2, 3, 4, 5, 6]


def test_append_rejects_out_of_order_and_missing_ts() -> None:
    oplog = filled(2)
    with pytest.raises(OplogError):
        oplog.append(noop_entry(Timestamp(100, 2), 1))
    with pytest.raises(OplogError):
        oplog.append(noop_entry(Timestamp(99, 9), 1))
    with pytest.raises(OplogError):
        oplog.append({"op": "n"})
    assert len(oplog) == 2


def test_capping_drops_the_oldest_and_records_lost_history() -> None:
    oplog = filled(10, max_entries=4)
    assert len(oplog) == 4
    assert (oplog.first_ts, oplog.last_ts) == (Timestamp(100, 7), Timestamp(100, 10))
    assert oplog.has_history_since(Timestamp(100, 6))  # seen 6: 7.. are all here
    assert not oplog.has_history_since(Timestamp(100, 5))  # 6 was dropped
    assert not oplog.has_history_since(None)
    assert [e["o"]["_id"] for e in oplog.entries_after(Timestamp(1, 1))] == [7, 8, 9, 10]


def test_truncate_before_forces_lost_history_and_appends_continue() -> None:
    oplog = filled(5)
    assert oplog.truncate_before(Timestamp(100, 4)) == 3
    assert oplog.first_ts == Timestamp(100, 4)
    assert oplog.truncate_before(Timestamp(100, 1)) == 0
    assert not oplog.has_history_since(Timestamp(100, 2))
    assert oplog.has_history_since(Timestamp(100, 3))
    oplog.truncate_before(Timestamp(200, 0))
    assert len(oplog) == 0
    with pytest.raises(OplogError):  # still ordered after the last entry ever appended
        oplog.append(noop_entry(Timestamp(100, 5), 1))
    oplog.append(noop_entry(Timestamp(100, 6), 1))
    assert oplog.last_ts == Timestamp(100, 6)


@given(st.integers(1, 8), st.lists(st.integers(0, 3), min_size=1, max_size=60))
def test_capped_log_matches_a_simple_model(cap: int, gaps: list[int]) -> None:
    oplog = Oplog(cap)
    appended: list[Timestamp] = []
    for seconds, gap in enumerate(gaps, start=1):
        ts = Timestamp(seconds, gap + 1)
        oplog.append(noop_entry(ts, 1))
        appended.append(ts)
    kept = appended[-cap:]
    assert [e["ts"] for e in oplog] == kept
    assert (oplog.first_ts, oplog.last_ts) == (kept[0], kept[-1])
    for probe in appended:
        expected = [ts for ts in kept if ts > probe]
        assert [e["ts"] for e in oplog.entries_after(probe)] == expected
        assert oplog.has_history_since(probe) == (appended.index(probe) >= len(appended) - cap - 1)

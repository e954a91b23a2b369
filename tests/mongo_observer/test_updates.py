"""mongo_observer.updates: every logged update form, on hand-written and random diffs."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from clustersim.mongo.oplog import diff_to_update_description, update_diff
from hypothesis import given, settings
from hypothesis import strategies as st
from mongo_observer.errors import MalformedChange
from mongo_observer.updates import apply_oplog_update, apply_update_description


def v2(document: dict[str, Any], diff: dict[str, Any]) -> dict[str, Any]:
    """Apply a diff and check the input was left alone."""
    before = copy.deepcopy(document)
    result = apply_oplog_update(document, {"$v": 2, "diff": diff})
    assert document == before
    return result


# --- $v: 2 document sections ---------------------------------------------------------------------


def test_delete_update_insert_sections() -> None:
    doc = {"_id": 1, "a": 1, "b": 2, "c": 3}
    result = v2(doc, {"d": {"b": False}, "u": {"a": 10}, "i": {"z": [1]}})
    assert result == {"_id": 1, "a": 10, "c": 3, "z": [1]}
    assert list(result) == ["_id", "a", "c", "z"]


def test_update_keeps_place_and_insert_goes_last() -> None:
    result = v2({"_id": 1, "a": 1, "b": 2}, {"u": {"a": 5, "new": 1}, "i": {"b": 7}})
    assert list(result.items()) == [("_id", 1), ("a", 5), ("new", 1), ("b", 7)]


def test_deleting_a_missing_field_is_a_no_op() -> None:
    assert v2({"_id": 1}, {"d": {"gone": False}}) == {"_id": 1}


def test_nested_document_subdiff() -> None:
    doc = {"_id": 1, "a": {"b": {"c": 1, "d": 2}, "e": 3}}
    diff = {"sa": {"sb": {"u": {"c": 9}, "d": {"d": False}}, "i": {"f": 4}}}
    assert v2(doc, diff) == {"_id": 1, "a": {"b": {"c": 9}, "e": 3, "f": 4}}


def test_result_shares_nothing_with_input_or_diff() -> None:
    doc = {"_id": 1, "keep": {"x": [1]}, "a": 1}
    value = {"deep": [1, 2]}
    result = v2(doc, {"u": {"a": value}})
    result["keep"]["x"].append(2)
    result["a"]["deep"].append(3)
    assert doc == {"_id": 1, "keep": {"x": [1]}, "a": 1}
    assert value == {"deep": [1, 2]}


# --- $v: 2 array diffs ---------------------------------------------------------------------------


def test_array_update_elements() -> None:
    assert v2({"_id": 1, "arr": [1, 2, 3]}, {"sarr": {"a": True, "u1": 20}}) == {
        "_id": 1,
        "arr": [1, 20, 3],
    }


def test_array_update_past_end_pads_with_null() -> None:
    result = v2({"_id": 1, "arr": [1]}, {"sarr": {"a": True, "u3": 4}})
    assert result["arr"] == [1, None, None, 4]


def test_array_truncate_then_set() -> None:
    result = v2({"_id": 1, "arr": [1, 2, 3, 4]}, {"sarr": {"a": True, "l": 2, "u1": "x"}})
    assert result["arr"] == [1, "x"]


def test_array_length_can_grow_with_nulls() -> None:
    assert v2({"_id": 1, "arr": [1]}, {"sarr": {"a": True, "l": 3}})["arr"] == [1, None, None]


def test_array_of_documents_subdiff() -> None:
    doc = {"_id": 1, "items": [{"n": 1, "tags": ["a"]}, {"n": 2}]}
    diff = {"sitems": {"a": True, "s0": {"stags": {"a": True, "u1": "b"}}, "s1": {"u": {"n": 3}}}}
    assert v2(doc, diff)["items"] == [{"n": 1, "tags": ["a", "b"]}, {"n": 3}]


def test_nested_arrays() -> None:
    doc = {"_id": 1, "m": [[1, 2], [3]]}
    diff = {"sm": {"a": True, "s0": {"a": True, "l": 1}, "s1": {"a": True, "u1": 4}}}
    assert v2(doc, diff)["m"] == [[1], [3, 4]]


# --- classic and replacement ---------------------------------------------------------------------


@pytest.mark.parametrize("version", [{}, {"$v": 1}])
def test_classic_set_unset_dotted(version: dict[str, Any]) -> None:
    doc = {"_id": 1, "a": {"b": 1, "c": 2}, "x": 1}
    o = {**version, "$set": {"a.b": 5, "n.m": 1}, "$unset": {"a.c": True, "x": 1}}
    assert apply_oplog_update(doc, o) == {"_id": 1, "a": {"b": 5}, "n": {"m": 1}}


def test_classic_numeric_paths_index_arrays() -> None:
    doc = {"_id": 1, "arr": [{"v": 1}, {"v": 2}], "obj": {"0": "field"}}
    o = {"$set": {"arr.1.v": 9, "arr.3": "new", "obj.0": "still a field"}, "$unset": {"arr.0": 1}}
    assert apply_oplog_update(doc, o) == {
        "_id": 1,
        "arr": [None, {"v": 9}, None, "new"],
        "obj": {"0": "still a field"},
    }


def test_classic_unset_missing_is_a_no_op() -> None:
    assert apply_oplog_update({"_id": 1}, {"$unset": {"a.b": 1}}) == {"_id": 1}


def test_replacement_keeps_id_first() -> None:
    doc = {"_id": 7, "old": 1}
    result = apply_oplog_update(doc, {"new": 2})
    assert list(result.items()) == [("_id", 7), ("new", 2)]
    assert apply_oplog_update(doc, {"new": 2, "_id": 7}) == {"_id": 7, "new": 2}
    assert apply_oplog_update(doc, {}) == {"_id": 7}


# --- updateDescription ---------------------------------------------------------------------------


def test_update_description_nested_and_array_elements() -> None:
    doc = {"_id": 1, "a": {"b": 1, "gone": 2}, "arr": [1, 2, {"x": 1}], "top": 0}
    desc = {
        "updatedFields": {"a.b": 2, "arr.2.x": 5, "arr.0": "z", "new": [1]},
        "removedFields": ["a.gone", "top"],
        "truncatedArrays": [],
    }
    assert apply_update_description(doc, desc) == {
        "_id": 1,
        "a": {"b": 2},
        "arr": ["z", 2, {"x": 5}],
        "new": [1],
    }


def test_update_description_truncates_before_updating() -> None:
    doc = {"_id": 1, "arr": [1, 2, 3, 4]}
    desc = {
        "updatedFields": {"arr.1": "b"},
        "removedFields": [],
        "truncatedArrays": [{"field": "arr", "newSize": 2}],
    }
    assert apply_update_description(doc, desc) == {"_id": 1, "arr": [1, "b"]}


def test_update_description_numeric_field_names_in_documents() -> None:
    doc = {"_id": 1, "d": {"0": "a"}, "l": ["a"]}
    desc = {"updatedFields": {"d.0": "b", "l.0": "b"}, "removedFields": []}
    assert apply_update_description(doc, desc) == {"_id": 1, "d": {"0": "b"}, "l": ["b"]}


def test_update_description_disambiguated_paths() -> None:
    doc = {"_id": 1, "a.b": {"c": 1}, "arr": [{"0": 1}]}
    desc = {
        "updatedFields": {"a.b.c": 2, "arr.0.0": 5},
        "removedFields": [],
        "disambiguatedPaths": {"a.b.c": ["a.b", "c"], "arr.0.0": ["arr", 0, "0"]},
    }
    assert apply_update_description(doc, desc) == {"_id": 1, "a.b": {"c": 2}, "arr": [{"0": 5}]}


def test_update_description_does_not_mutate() -> None:
    doc = {"_id": 1, "arr": [1, 2, 3]}
    desc = {"updatedFields": {}, "truncatedArrays": [{"field": "arr", "newSize": 1}]}
    assert apply_update_description(doc, desc) == {"_id": 1, "arr": [1]}
    assert doc == {"_id": 1, "arr": [1, 2, 3]}


# --- malformed input ----------------------------------------------------------------------------

DOC = {"_id": 1, "s": 5, "o": {"x": 1}, "arr": [1, 2]}


@pytest.mark.parametrize(
    "o",
    [
        pytest.param({"$v": 2, "diff": {"x": {}}}, id="unknown-section"),
        pytest.param({"$v": 2, "diff": {"u": [1]}}, id="section-not-document"),
        pytest.param({"$v": 2, "diff": {"d": {"s": "yes"}}}, id="delete-marker-not-bool"),
        pytest.param({"$v": 2, "diff": {"u": {"s": 1}, "d": {"s": False}}}, id="field-twice"),
        pytest.param({"$v": 2, "diff": {"smissing": {"u": {"a": 1}}}}, id="subdiff-missing"),
        pytest.param({"$v": 2, "diff": {"ss": {"u": {"a": 1}}}}, id="subdiff-on-scalar"),
        pytest.param({"$v": 2, "diff": {"so": {"a": True, "u0": 1}}}, id="array-diff-on-doc"),
        pytest.param({"$v": 2, "diff": {"sarr": {"u": {"a": 1}}}}, id="doc-diff-on-array"),
        pytest.param({"$v": 2, "diff": {"sarr": {"a": False}}}, id="array-marker-false"),
        pytest.param({"$v": 2, "diff": {"sarr": {"a": True, "u-1": 1}}}, id="negative-index"),
        pytest.param({"$v": 2, "diff": {"sarr": {"a": True, "x0": 1}}}, id="array-entry"),
        pytest.param({"$v": 2, "diff": {"sarr": {"a": True, "l": -1}}}, id="negative-length"),
        pytest.param({"$v": 2, "diff": {"sarr": {"a": True, "l": True}}}, id="bool-length"),
        pytest.param({"$v": 2, "diff": {"sarr": {"a": True, "s5": {}}}}, id="subdiff-past-end"),
        pytest.param({"$v": 2, "diff": {"sarr": {"a": True, "s0": {"u": {}}}}}, id="s-on-int"),
        pytest.param({"$v": 2, "diff": []}, id="diff-not-document"),
        pytest.param({"$v": 2, "diff": {}, "$set": {}}, id="extra-v2-key"),
        pytest.param({"$v": 3, "$set": {"a": 1}}, id="unknown-version"),
        pytest.param({"$inc": {"a": 1}}, id="unknown-operator"),
        pytest.param({"$set": {"a": 1}, "b": 2}, id="mixed"),
        pytest.param({"$set": {"s.x": 1}}, id="set-through-scalar"),
        pytest.param({"$set": {"arr.x": 1}}, id="field-of-array"),
        pytest.param({"$set": {"arr.-1": 1}}, id="set-negative-index"),
        pytest.param({"$set": {"a..b": 1}}, id="empty-path-part"),
        pytest.param({"$set": []}, id="set-not-document"),
        pytest.param({"$unset": {"s.x": 1}}, id="unset-through-scalar"),
        pytest.param({"_id": 2, "x": 1}, id="replacement-changes-id"),
    ],
)
def test_malformed_updates_raise(o: dict[str, Any]) -> None:
    with pytest.raises(MalformedChange):
        apply_oplog_update(DOC, o)
    assert DOC == {"_id": 1, "s": 5, "o": {"x": 1}, "arr": [1, 2]}


@pytest.mark.parametrize(
    "desc",
    [
        pytest.param({"updatedFields": {"missing.x": 1}}, id="missing-parent"),
        pytest.param({"updatedFields": {"s.x": 1}}, id="through-scalar"),
        pytest.param({"updatedFields": {"arr.x": 1}}, id="field-of-array"),
        pytest.param({"updatedFields": []}, id="updated-not-document"),
        pytest.param({"removedFields": "s"}, id="removed-not-array"),
        pytest.param({"removedFields": ["s.x"]}, id="remove-through-scalar"),
        pytest.param({"truncatedArrays": [{"field": "o", "newSize": 0}]}, id="truncate-doc"),
        pytest.param({"truncatedArrays": [{"field": "arr", "newSize": 5}]}, id="truncate-grows"),
        pytest.param({"truncatedArrays": [{"field": "arr", "newSize": -1}]}, id="truncate-neg"),
        pytest.param({"truncatedArrays": [{"field": "arr"}]}, id="truncate-no-size"),
        pytest.param({"truncatedArrays": [{"field": "nope", "newSize": 0}]}, id="truncate-gone"),
        pytest.param({"updatedFields": {}, "extra": 1}, id="unknown-key"),
        pytest.param(
            {"updatedFields": {"o.x": 1}, "disambiguatedPaths": {"o.x": ["o", 0]}},
            id="index-into-document",
        ),
    ],
)
def test_malformed_update_descriptions_raise(desc: dict[str, Any]) -> None:
    with pytest.raises(MalformedChange):
        apply_update_description(DOC, desc)


def test_malformed_change_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown document diff section"):
        apply_oplog_update(DOC, {"$v": 2, "diff": {"bogus": {}}})


# --- against the simulator's diff ---------------------------------------------------------------

keys = st.text(alphabet="abc0_", min_size=1, max_size=3)
scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.text(alphabet="xy", max_size=2)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
documents = st.dictionaries(keys, values, max_size=5)


def _mutate(draw: st.DrawFn, value: Any) -> Any:
    """A value near ``value``: similar shape, so diffs get sub-diffs and not only whole values."""
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return draw(values)
    if isinstance(value, dict):
        out = {k: _mutate(draw, v) for k, v in value.items() if draw(st.integers(0, 4))}
        out.update(draw(st.dictionaries(keys, values, max_size=2)))
        return out
    if isinstance(value, list):
        out_list = [_mutate(draw, v) for v in value]
        cut = draw(st.integers(0, len(out_list)))
        return out_list[:cut] + draw(st.lists(values, max_size=2))
    return value if choice < 4 else draw(scalars)


@st.composite
def before_after(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    before = draw(documents)
    return before, _mutate(draw, before) if draw(st.booleans()) else draw(documents)


@settings(max_examples=200, deadline=None)
@given(before_after())
def test_simulator_diffs_round_trip(pair: tuple[dict[str, Any], Any]) -> None:
    before, after = pair
    if not isinstance(after, dict):
        after = {"value": after}
    diff = update_diff(before, after)
    assert apply_oplog_update(before, {"$v": 2, "diff": diff}) == after
    assert apply_update_description(before, diff_to_update_description(diff)) == after

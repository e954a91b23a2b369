"""mongo_observer.oplog: entry shape checks, applyOps expansion and document ids."""

from __future__ import annotations

from typing import Any

import pytest
from mongo_observer.errors import MalformedChange
from mongo_observer.oplog import document_id, expand, validate

INSERT = {"op": "i", "ns": "db.c", "o": {"_id": 1, "x": 1}, "ts": 10}
UPDATE = {
    "op": "u",
    "ns": "db.c",
    "o": {"$v": 2, "diff": {"u": {"x": 2}}},
    "o2": {"_id": 1},
    "ts": 11,
}
DELETE = {"op": "d", "ns": "db.c", "o": {"_id": 1}, "ts": 12}


@pytest.mark.parametrize("entry", [INSERT, UPDATE, DELETE])
def test_crud_entries_expand_to_themselves(entry: dict[str, Any]) -> None:
    assert expand(entry) == [entry]


def test_commands_and_noops_expand_to_nothing() -> None:
    assert expand({"op": "c", "ns": "db.$cmd", "o": {"create": "c"}}) == []
    assert expand({"op": "n", "ns": "", "o": {"msg": "periodic noop"}}) == []


def test_apply_ops_expands_in_order_with_outer_ts() -> None:
    inner_insert = {"op": "i", "ns": "db.a", "o": {"_id": 1}}
    inner_update = {"op": "u", "ns": "db.b", "o": {"$set": {"x": 1}}, "o2": {"_id": 2}}
    inner_delete = {"op": "d", "ns": "db.a", "o": {"_id": 3}}
    entry = {
        "op": "c",
        "ns": "admin.$cmd",
        "o": {"applyOps": [inner_insert, inner_update, inner_delete]},
        "ts": 42,
        "lsid": {"id": "s"},
        "txnNumber": 3,
    }
    result = expand(entry)
    assert [(e["op"], e["ns"], e["ts"], e["txnNumber"]) for e in result] == [
        ("i", "db.a", 42, 3),
        ("u", "db.b", 42, 3),
        ("d", "db.a", 42, 3),
    ]
    assert "ts" not in inner_insert  # inputs untouched


def test_nested_apply_ops_and_skipped_inner_commands() -> None:
    nested = {
        "op": "c",
        "ns": "admin.$cmd",
        "o": {"applyOps": [{"op": "i", "ns": "db.n", "o": {"_id": "deep"}}]},
    }
    entry = {
        "op": "c",
        "ns": "admin.$cmd",
        "ts": 7,
        "o": {
            "applyOps": [
                {"op": "i", "ns": "db.a", "o": {"_id": 1}},
                {"op": "c", "ns": "db.$cmd", "o": {"create": "x"}},
                {"op": "n", "ns": "", "o": {}},
                nested,
                {"op": "d", "ns": "db.a", "o": {"_id": 1}},
            ]
        },
    }
    assert [(e["ns"], document_id(e), e["ts"]) for e in expand(entry)] == [
        ("db.a", 1, 7),
        ("db.n", "deep", 7),
        ("db.a", 1, 7),
    ]


def test_document_id() -> None:
    assert document_id(INSERT) == 1
    assert document_id(UPDATE) == 1
    assert document_id(DELETE) == 1
    with pytest.raises(MalformedChange):
        document_id({"op": "c", "ns": "db.$cmd", "o": {"drop": "c"}})


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param([], id="not-a-document"),
        pytest.param({"op": "x", "ns": "db.c", "o": {}}, id="unknown-op"),
        pytest.param({"ns": "db.c", "o": {}}, id="no-op"),
        pytest.param({"op": "i", "ns": 1, "o": {"_id": 1}}, id="ns-not-string"),
        pytest.param({"op": "i", "ns": "db.c", "o": [1]}, id="o-not-document"),
        pytest.param({"op": "i", "ns": "db.c", "o": {"x": 1}}, id="insert-without-id"),
        pytest.param({"op": "d", "ns": "db.c", "o": {}}, id="delete-without-id"),
        pytest.param({"op": "u", "ns": "db.c", "o": {"$set": {}}}, id="update-without-o2"),
        pytest.param({"op": "u", "ns": "db.c", "o": {}, "o2": {"x": 1}}, id="o2-without-id"),
        pytest.param({"op": "c", "ns": "a.$cmd", "o": {"applyOps": {}}}, id="applyops-not-list"),
        pytest.param({"op": "c", "ns": "a.$cmd", "o": {"applyOps": [1]}}, id="applyops-scalar"),
        pytest.param(
            {"op": "c", "ns": "a.$cmd", "o": {"applyOps": [{"op": "i", "o": {"_id": 1}}]}},
            id="inner-without-ns",
        ),
    ],
)
def test_malformed_entries_raise(entry: Any) -> None:
    with pytest.raises(MalformedChange):
        expand(entry)


def test_validate_checks_the_outer_entry_only() -> None:
    validate(INSERT)
    validate({"op": "c", "ns": "a.$cmd", "o": {"applyOps": [{"op": "?"}]}})
    with pytest.raises(MalformedChange, match="o2 has no _id"):
        validate({"op": "u", "ns": "db.c", "o": {}})

"""Definitions are validated when made, so a bad one fails at import time, not in create_all."""

from __future__ import annotations

import pytest
from mongomancy.errors import DefinitionError
from mongomancy.types import ASCENDING, DESCENDING, CollectionDefinition, Document, Index


def test_index_accepts_mapping_and_pairs_in_key_order() -> None:
    assert Index(fields={"b": 1, "a": -1}).fields == (("b", 1), ("a", -1))
    index = Index(fields=[("a", ASCENDING), ("b", DESCENDING)], name="ab", unique=True)
    assert index.field_for_mongo() == [("a", 1), ("b", -1)]
    assert index.name_in("things") == "ab"
    assert index.options() == {"unique": True}


def test_generated_names_follow_the_original() -> None:
    assert Index(fields={"genre": 1}).name_in("game") == "ix__game__genre"
    assert Index(fields={"a": 1, "b": -1}, unique=True).name_in("p") == "ux__p__a_b"


def test_options_hold_only_what_is_set() -> None:
    index = Index(
        fields={"at": 1},
        sparse=True,
        expire_after_seconds=60,
        partial_filter={"x": {"$gt": 1}},
        collation={"locale": "en", "strength": 2},
    )
    assert index.options() == {
        "sparse": True,
        "expireAfterSeconds": 60,
        "partialFilterExpression": {"x": {"$gt": 1}},
        "collation": {"locale": "en", "strength": 2},
    }
    assert Index(fields={"a": "text"}).options() == {}


@pytest.mark.parametrize(
    "fields",
    [
        {},
        [],
        {"a": 2},
        {"a": 0},
        {"a": True},
        {"a": "up"},
        {"": 1},
        {"$a": 1},
        [("a", 1), ("a", -1)],
        [("a",)],
        ["a"],
    ],
)
def test_bad_index_fields(fields: object) -> None:
    with pytest.raises(DefinitionError):
        Index(fields=fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": ""},
        {"name": 3},
        {"expire_after_seconds": -1},
        {"expire_after_seconds": True},
        {"expire_after_seconds": 1.5},
        {"partial_filter": [1]},
        {"collation": "en"},
    ],
)
def test_bad_index_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(DefinitionError):
        Index({"a": 1}, **kwargs)  # type: ignore[arg-type]


def test_definition_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="at least one field"):
        Index(fields={})


def test_duplicate_index_names_rejected() -> None:
    with pytest.raises(DefinitionError, match="named"):
        CollectionDefinition("c", [Index({"a": 1}, name="x"), Index({"b": 1}, name="x")])
    # {a: 1} and {a: -1} get the same generated name, as in the original.
    with pytest.raises(DefinitionError, match="named"):
        CollectionDefinition("c", [Index({"a": 1}), Index({"a": -1})])


def test_same_key_pattern_twice_rejected() -> None:
    with pytest.raises(DefinitionError, match="key pattern"):
        CollectionDefinition("c", [Index({"a": 1}, name="x"), Index({"a": 1}, name="y")])


@pytest.mark.parametrize("name", ["", "a$b", "a\0b", 5])
def test_bad_collection_names(name: object) -> None:
    with pytest.raises(DefinitionError):
        CollectionDefinition(name)  # type: ignore[arg-type]


def test_definition_contents_are_checked_and_frozen() -> None:
    with pytest.raises(DefinitionError):
        CollectionDefinition("c", indices=[{"a": 1}])  # type: ignore[list-item]
    with pytest.raises(DefinitionError):
        CollectionDefinition("c", default_docs=[{"a": 1}])  # type: ignore[list-item]
    definition = CollectionDefinition("c", [Index({"a": 1})], [Document({"a": 1}, {"a": 1})])
    assert isinstance(definition.indices, tuple)
    assert isinstance(definition.default_docs, tuple)


@pytest.mark.parametrize(
    ("unique_key", "data"),
    [({}, {"a": 1}), ([("a", 1)], {"a": 1}), ({"a": 1}, None), ({"a": 1}, [("a", 1)])],
)
def test_bad_documents(unique_key: object, data: object) -> None:
    with pytest.raises(DefinitionError):
        Document(unique_key, data)  # type: ignore[arg-type]


def test_documents_with_and_without_key() -> None:
    assert Document(None, {"a": 1}).unique_key is None
    assert Document({"a": 1}, {"a": 1, "b": 2}).data == {"a": 1, "b": 2}

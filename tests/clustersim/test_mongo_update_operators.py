"""Update forms mongomock lacks, computed by the simulator as a server would.

$mul, $bit, and the filtered positional operators ($[ident] with arrayFilters, $[]).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymongo.errors
import pytest
from clustersim.mongo import ReplicaSet
from pymongo import MongoClient
from pymongo.collection import Collection


@pytest.fixture
def things() -> Iterator[Collection[dict[str, Any]]]:
    with ReplicaSet(members=1) as rs, MongoClient[dict[str, Any]](rs.uri) as client:
        yield client.test.things


def test_mul_multiplies_and_starts_missing_fields_at_zero(
    things: Collection[dict[str, Any]],
) -> None:
    things.insert_one({"_id": 1, "n": 3, "f": 1.5, "inner": {"k": 2}})
    things.update_one({"_id": 1}, {"$mul": {"n": 4, "f": 2, "inner.k": 5, "absent": 7}})
    assert things.find_one({"_id": 1}) == {
        "_id": 1,
        "n": 12,
        "f": 3.0,
        "inner": {"k": 10},
        "absent": 0,
    }
    things.update_one({"_id": 2}, {"$mul": {"x": 2.5}}, upsert=True)
    assert things.find_one({"_id": 2}) == {"_id": 2, "x": 0.0}


def test_bit_applies_and_or_xor_in_order(things: Collection[dict[str, Any]]) -> None:
    things.insert_one({"_id": 1, "bits": 0b1010})
    things.update_one({"_id": 1}, {"$bit": {"bits": {"and": 0b0110, "or": 0b0001}}})
    assert things.find_one({"_id": 1}) == {"_id": 1, "bits": 0b0011}
    things.update_one({"_id": 1}, {"$bit": {"bits": {"xor": 0b0001}}})
    assert things.find_one({"_id": 1}) == {"_id": 1, "bits": 0b0010}


def test_non_numeric_targets_and_conflicts_are_refused(things: Collection[dict[str, Any]]) -> None:
    things.insert_one({"_id": 1, "s": "text", "n": 1})
    with pytest.raises(pymongo.errors.WriteError) as caught:
        things.update_one({"_id": 1}, {"$mul": {"s": 2}})
    assert caught.value.code == 14
    with pytest.raises(pymongo.errors.WriteError) as caught:
        things.update_one({"_id": 1}, {"$bit": {"s": {"and": 1}}})
    assert caught.value.code == 14
    with pytest.raises(pymongo.errors.WriteError) as caught:
        things.update_one({"_id": 1}, {"$mul": {"n": 2}, "$set": {"n": 5}})
    assert caught.value.code == 40
    assert things.find_one({"_id": 1}) == {"_id": 1, "s": "text", "n": 1}


def test_array_filters_update_only_matching_elements(things: Collection[dict[str, Any]]) -> None:
    things.insert_one(
        {"_id": 1, "arr": [1, 5, 2, 7], "grades": [{"g": 80, "m": 1}, {"g": 95, "m": 2}]}
    )
    things.update_one({"_id": 1}, {"$set": {"arr.$[big]": 0}}, array_filters=[{"big": {"$gt": 4}}])
    things.update_one(
        {"_id": 1},
        {"$inc": {"grades.$[e].m": 10}, "$mul": {"grades.$[e].g": 2}},
        array_filters=[{"e.g": {"$gte": 90}}],
    )
    assert things.find_one({"_id": 1}) == {
        "_id": 1,
        "arr": [1, 0, 2, 0],
        "grades": [{"g": 80, "m": 1}, {"g": 190, "m": 12}],
    }


def test_all_positional_and_nested_identifiers(things: Collection[dict[str, Any]]) -> None:
    things.insert_one({"_id": 1, "rows": [{"cells": [1, 2, 3]}, {"cells": [4, 5]}]})
    things.update_one(
        {"_id": 1},
        {"$set": {"rows.$[].cells.$[odd]": "o"}},
        array_filters=[{"odd": {"$in": [1, 3, 5]}}],
    )
    assert things.find_one({"_id": 1}) == {
        "_id": 1,
        "rows": [{"cells": ["o", 2, "o"]}, {"cells": [4, "o"]}],
    }
    things.update_many({}, {"$inc": {"rows.$[].n": 1}})
    assert [row["n"] for row in things.find_one({"_id": 1})["rows"]] == [1, 1]  # type: ignore[index]


def test_array_filter_that_selects_nothing_modifies_nothing(
    things: Collection[dict[str, Any]],
) -> None:
    things.insert_one({"_id": 1, "arr": [1, 2]})
    result = things.update_one(
        {"_id": 1}, {"$set": {"arr.$[x]": 9}}, array_filters=[{"x": {"$gt": 50}}]
    )
    assert (result.matched_count, result.modified_count) == (1, 0)
    assert things.find_one({"_id": 1}) == {"_id": 1, "arr": [1, 2]}


@pytest.mark.parametrize(
    ("update", "array_filters", "code"),
    [
        ({"$set": {"arr.$[x]": 1}}, [], 2),  # identifier without a filter
        ({"$set": {"arr.$[x]": 1}}, [{"x": 1}, {"y": 2}], 9),  # filter never used
        ({"$set": {"arr.$[x]": 1}}, [{"x": 1}, {"x": 2}], 9),  # same identifier twice
        ({"$set": {"s.$[x]": 1}}, [{"x": 1}], 2),  # not an array
        ({"$set": {"arr.$[X]": 1}}, [{"X": 1}], 2),  # identifiers begin lower-case
    ],
)
def test_array_filter_mistakes_are_refused_with_the_servers_codes(
    things: Collection[dict[str, Any]], update: dict[str, Any], array_filters: list[Any], code: int
) -> None:
    things.insert_one({"_id": 1, "arr": [1, 2], "s": "text"})
    with pytest.raises(pymongo.errors.WriteError) as caught:
        things.update_one({"_id": 1}, update, array_filters=array_filters)
    assert caught.value.code == code
    assert things.find_one({"_id": 1}) == {"_id": 1, "arr": [1, 2], "s": "text"}

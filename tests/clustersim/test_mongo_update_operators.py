"""Update operators mongomock lacks, computed by the simulator as a server would: $mul, $bit."""

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

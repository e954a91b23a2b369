"""Which errors mongomancy retries, for which kind of operation."""

from __future__ import annotations

import pymongo.errors
import pytest
from bson import ObjectId
from mongomancy.mongo_errors import (
    DEFAULT_RETRY,
    ErrorClass,
    OperationKind,
    classify,
    error_code,
    is_idempotent_update,
    is_single_id_filter,
    should_retry,
)

READ, IDEMPOTENT, WRITE, MULTI = (
    OperationKind.READ,
    OperationKind.IDEMPOTENT_WRITE,
    OperationKind.WRITE,
    OperationKind.MULTI_WRITE,
)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (pymongo.errors.ServerSelectionTimeoutError("no primary"), ErrorClass.NOT_APPLIED),
        (pymongo.errors.WaitQueueTimeoutError("pool full"), ErrorClass.NOT_APPLIED),
        (pymongo.errors.NotPrimaryError("not primary", {"code": 10107}), ErrorClass.NOT_APPLIED),
        (pymongo.errors.OperationFailure("not primary", code=13435), ErrorClass.NOT_APPLIED),
        (pymongo.errors.AutoReconnect("connection closed"), ErrorClass.AMBIGUOUS),
        (pymongo.errors.NetworkTimeout("timed out"), ErrorClass.AMBIGUOUS),
        (pymongo.errors.NotPrimaryError("stepped down", {"code": 189}), ErrorClass.AMBIGUOUS),
        (pymongo.errors.OperationFailure("shutting down", code=91), ErrorClass.AMBIGUOUS),
        (
            pymongo.errors.OperationFailure(
                "w", code=64, details={"code": 64, "errorLabels": ["RetryableWriteError"]}
            ),
            ErrorClass.AMBIGUOUS,
        ),
        (pymongo.errors.DuplicateKeyError("dup", code=11000), ErrorClass.FATAL),
        (pymongo.errors.BulkWriteError({"writeErrors": []}), ErrorClass.FATAL),
        (pymongo.errors.OperationFailure("bad query", code=2), ErrorClass.FATAL),
        (pymongo.errors.ConfigurationError("bad uri"), ErrorClass.FATAL),
        (ValueError("not ours"), ErrorClass.FATAL),
    ],
)
def test_errors_are_sorted_into_three_classes(error: BaseException, expected: ErrorClass) -> None:
    assert classify(error) is expected


def test_only_idempotent_operations_retry_ambiguous_errors() -> None:
    ambiguous = pymongo.errors.AutoReconnect("connection closed")
    refused = pymongo.errors.NotPrimaryError("not primary", {"code": 10107})
    assert [should_retry(ambiguous, kind) for kind in (READ, IDEMPOTENT, WRITE, MULTI)] == [
        True,
        True,
        False,
        False,
    ]
    assert all(should_retry(refused, kind) for kind in (READ, IDEMPOTENT, WRITE, MULTI))
    fatal = pymongo.errors.DuplicateKeyError("dup", code=11000)
    assert not any(should_retry(fatal, kind) for kind in (READ, IDEMPOTENT, WRITE, MULTI))


def test_retry_codes_are_configurable_and_cover_pymongos_own() -> None:
    failure = pymongo.errors.OperationFailure("custom", code=12345)
    assert classify(failure) is ErrorClass.FATAL
    assert classify(failure, retry_codes={12345}) is ErrorClass.AMBIGUOUS
    assert {189, 10058, 6, 7, 9001, 134} <= DEFAULT_RETRY
    assert error_code(pymongo.errors.NotPrimaryError("x", {"code": 91})) == 91
    assert error_code(RuntimeError("none")) is None


@pytest.mark.parametrize(
    ("update", "idempotent"),
    [
        ({"$set": {"a": 1}}, True),
        ({"$set": {"a": 1}, "$unset": {"b": ""}}, True),
        ({"$addToSet": {"tags": "x"}, "$max": {"n": 3}}, True),
        ({"name": "replacement"}, True),
        ({"$inc": {"n": 1}}, False),
        ({"$set": {"a": 1}, "$push": {"log": 1}}, False),
        ([{"$set": {"a": 1}}], False),
        ({}, False),
    ],
)
def test_idempotent_updates(update: object, idempotent: bool) -> None:
    assert is_idempotent_update(update) is idempotent


def test_single_id_filters() -> None:
    assert is_single_id_filter({"_id": ObjectId()})
    assert is_single_id_filter({"_id": {"nested": "document"}})
    assert not is_single_id_filter({"_id": {"$in": [1, 2]}})
    assert not is_single_id_filter({"_id": 1, "x": 2})
    assert not is_single_id_filter({"x": 1})
    assert not is_single_id_filter(None)

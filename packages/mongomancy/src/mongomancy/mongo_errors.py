"""Which pymongo errors are worth another attempt, for which kind of operation (pure functions).

An error is sorted into one of three classes:

* ``NOT_APPLIED``: the server certainly did not run the operation (no server could be selected,
  the pool had no connection to give, or the server refused it as not primary). Any operation
  may run again.
* ``AMBIGUOUS``: the connection broke, or the server reported a transient state, possibly after
  the operation took effect. Only operations that give the same result when run twice may run
  again: reads, inserts with a client-assigned ``_id``, replacements, idempotent updates and
  deletes by ``_id``.
* ``FATAL``: anything else (duplicate keys, validation, bad queries, auth): raised at once.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from typing import Any

import pymongo.errors

__all__ = [
    "DEFAULT_RETRY",
    "ErrorClass",
    "OperationKind",
    "classify",
    "error_code",
    "is_idempotent_update",
    "is_single_id_filter",
    "should_retry",
]

# The original's set, plus the not-primary and retryable codes pymongo itself uses that it
# lacked: 6 HostUnreachable, 7 HostNotFound, 134 ReadConcernMajorityNotAvailableYet,
# 189 PrimarySteppedDown, 9001 SocketException, 10058 LegacyNotPrimary.
DEFAULT_RETRY: frozenset[int] = frozenset(
    {6, 7, 83, 89, 91, 96, 109, 117, 134, 145, 189, 202, 262, 9001}
    | {10058, 10107, 11600, 11601, 11602, 13435, 13436}
)

# The server refused the operation before running it: it is not (or no longer) primary.
_REFUSED_CODES: frozenset[int] = frozenset({10058, 10107, 13435, 13436})

_RETRY_LABELS = ("RetryableWriteError", "RetryableReadError")

# Update operators whose effect does not change when applied a second time.
_IDEMPOTENT_OPERATORS = frozenset({"$set", "$unset", "$setOnInsert", "$addToSet", "$min", "$max"})


class ErrorClass(enum.Enum):
    NOT_APPLIED = "not applied"
    AMBIGUOUS = "ambiguous"
    FATAL = "fatal"


class OperationKind(enum.Enum):
    """How safely an operation may run again after an error."""

    READ = "read"
    IDEMPOTENT_WRITE = "idempotent write"  # same outcome when run twice
    WRITE = "write"  # one document, not idempotent (e.g. ``$inc``)
    MULTI_WRITE = "multi-document write"  # update_many, delete_many: never re-run blindly


def error_code(error: BaseException) -> int | None:
    """The server's error code carried by a pymongo error, if any."""
    code = getattr(error, "code", None)
    if isinstance(code, int):
        return code
    details = getattr(error, "details", None)
    if isinstance(details, Mapping):
        value = details.get("code")
        return value if isinstance(value, int) else None
    return None


def classify(error: BaseException, retry_codes: Collection[int] = DEFAULT_RETRY) -> ErrorClass:
    """Sort ``error`` into one of the three classes of the module docstring."""
    if isinstance(error, pymongo.errors.BulkWriteError | pymongo.errors.DuplicateKeyError):
        return ErrorClass.FATAL
    if isinstance(
        error, pymongo.errors.ServerSelectionTimeoutError | pymongo.errors.WaitQueueTimeoutError
    ):
        return ErrorClass.NOT_APPLIED
    code = error_code(error)
    if code in _REFUSED_CODES:
        return ErrorClass.NOT_APPLIED
    if isinstance(error, pymongo.errors.ConnectionFailure | ConnectionError):
        return ErrorClass.AMBIGUOUS
    if isinstance(error, pymongo.errors.PyMongoError):
        has_label = getattr(error, "has_error_label", None)
        if callable(has_label) and any(has_label(label) for label in _RETRY_LABELS):
            return ErrorClass.AMBIGUOUS
        if isinstance(error, pymongo.errors.OperationFailure) and code in retry_codes:
            return ErrorClass.AMBIGUOUS
    return ErrorClass.FATAL


def should_retry(
    error: BaseException, kind: OperationKind, retry_codes: Collection[int] = DEFAULT_RETRY
) -> bool:
    """Whether an operation of ``kind`` that failed with ``error`` may run again."""
    found = classify(error, retry_codes)
    if found is ErrorClass.NOT_APPLIED:
        return True
    if found is ErrorClass.AMBIGUOUS:
        return kind in (OperationKind.READ, OperationKind.IDEMPOTENT_WRITE)
    return False


def is_idempotent_update(update: Any) -> bool:
    """True for an update document using only operators that are safe to apply twice.

    A replacement document (no ``$`` keys) is idempotent too; a pipeline never is (it may read
    the fields it writes).
    """
    if not isinstance(update, Mapping) or not update:
        return False
    keys = [str(key) for key in update]
    if not any(key.startswith("$") for key in keys):
        return True
    return all(key in _IDEMPOTENT_OPERATORS for key in keys)


def is_single_id_filter(filter: Any) -> bool:
    """True for ``{"_id": value}`` with a plain value: it matches one document at most."""
    if not isinstance(filter, Mapping) or list(filter) != ["_id"]:
        return False
    value = filter["_id"]
    return not (isinstance(value, Mapping) and any(str(k).startswith("$") for k in value))

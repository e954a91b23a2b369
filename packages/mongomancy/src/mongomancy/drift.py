"""How ``create_all`` compares indexes with the server's, and what it reports (pure values).

Shared by the sync and async schema modules, so both return the same report classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .types import BsonDict

__all__ = [
    "CreateAllReport",
    "IndexDrift",
    "plain_bson",
    "same_options",
    "server_key",
    "server_options",
]

# The options that make two indexes on one key pattern different (name excluded).
_COMPARED_OPTIONS = ("unique", "sparse", "expireAfterSeconds", "partialFilterExpression")


@dataclass(frozen=True)
class IndexDrift:
    """An index on the server that differs from its definition.

    ``actual_name`` is the server's index in the way: the one named ``name`` with another spec,
    or one with the same key pattern under another name or other options.
    """

    collection: str
    name: str
    expected_key: tuple[tuple[str, Any], ...]
    expected_options: BsonDict
    actual_name: str
    actual_key: tuple[tuple[str, Any], ...]
    actual_options: BsonDict
    repaired: bool


@dataclass(frozen=True)
class CreateAllReport:
    """What ``create_all`` did: all tuples, in definition order.

    ``indexes_created`` holds ``(collection, index name)`` (repairs included);
    ``documents_upserted`` ``(collection, unique_key)`` of documents that were missing;
    ``documents_inserted`` ``(collection, count)`` of keyless documents put in empty collections.
    """

    collections_created: tuple[str, ...] = ()
    indexes_created: tuple[tuple[str, str], ...] = ()
    drift: tuple[IndexDrift, ...] = ()
    documents_upserted: tuple[tuple[str, BsonDict], ...] = ()
    documents_inserted: tuple[tuple[str, int], ...] = ()


def plain_bson(value: Any) -> Any:
    """SON and nested mappings as plain dicts, so comparisons ignore the container type."""
    if isinstance(value, Mapping):
        return {key: plain_bson(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain_bson(item) for item in value]
    return value


def server_key(spec: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """An index's key pattern as listed by the server, with text indexes folded back."""
    key = list(spec["key"].items())
    if not any(field == "_fts" for field, _ in key):
        return tuple((field, _number(direction)) for field, direction in key)
    folded: list[tuple[str, Any]] = []
    for field, direction in key:
        if field == "_fts":
            folded += [(name, "text") for name in spec.get("weights", {})]
        elif field != "_ftsx":
            folded.append((field, _number(direction)))
    return tuple(folded)


def _number(direction: Any) -> Any:
    # Some servers and tools list 1.0 for 1.
    if isinstance(direction, float) and direction.is_integer():
        return int(direction)
    return direction


def server_options(spec: Mapping[str, Any]) -> BsonDict:
    options: BsonDict = {}
    if spec.get("unique"):
        options["unique"] = True
    if spec.get("sparse"):
        options["sparse"] = True
    if spec.get("expireAfterSeconds") is not None:
        options["expireAfterSeconds"] = int(spec["expireAfterSeconds"])
    if spec.get("partialFilterExpression") is not None:
        options["partialFilterExpression"] = plain_bson(spec["partialFilterExpression"])
    if spec.get("collation") is not None:
        options["collation"] = plain_bson(spec["collation"])
    return options


def same_options(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    """Equal options; a collation matches if the server's (defaults filled in) contains ours."""
    if any(expected.get(o) != actual.get(o) for o in _COMPARED_OPTIONS):
        return False
    wanted, found = expected.get("collation"), actual.get("collation")
    if wanted is None or found is None:
        return wanted is None and (found is None or found.get("locale") == "simple")
    return all(found.get(k) == v for k, v in wanted.items())

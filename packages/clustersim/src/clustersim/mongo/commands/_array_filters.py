"""``arrayFilters`` and ``$[]`` resolved against the current document, on the store thread.

mongomock does not implement filtered positional operators. The server's outcome is the same as
applying the operator to every concrete array index the identifiers select, so the simulator
rewrites each ``$[ident]``/``$[]`` path into those concrete paths (reading the document as it is
now) and hands mongomock an ordinary update. Error codes follow the server's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mongomock import filtering

from .base import CommandError

__all__ = ["lower_array_filters"]

# Operators whose argument is {path: value}; any of them may carry positional paths.
_FIELD_OPERATORS = (
    "$set",
    "$unset",
    "$inc",
    "$mul",
    "$min",
    "$max",
    "$push",
    "$addToSet",
    "$pull",
    "$pullAll",
    "$pop",
    "$bit",
    "$currentDate",
    "$setOnInsert",
)


def lower_array_filters(
    spec: Mapping[str, Any],
    before: Mapping[str, Any],
    array_filters: Sequence[Mapping[str, Any]] | None,
) -> dict[str, Any]:
    """``spec`` with every ``$[ident]`` and ``$[]`` replaced by the concrete indexes they select."""
    filters = _parse_filters(array_filters or ())
    used: set[str] = set()
    lowered: dict[str, Any] = {}
    for operator, fields in spec.items():
        if operator not in _FIELD_OPERATORS or not isinstance(fields, Mapping):
            lowered[operator] = fields
            continue
        concrete: dict[str, Any] = {}
        for path, value in fields.items():
            for resolved in _expand(before, path.split("."), filters, used, path):
                concrete[resolved] = value
        if concrete:  # a filter that selects nothing leaves the operator with no work
            lowered[operator] = concrete
    unused = sorted(set(filters) - used)
    if unused:
        raise CommandError(
            9, "FailedToParse", f"The array filter for identifier '{unused[0]}' was not used"
        )
    return lowered


def _parse_filters(array_filters: Sequence[Any]) -> dict[str, Mapping[str, Any]]:
    filters: dict[str, Mapping[str, Any]] = {}
    for array_filter in array_filters:
        if not isinstance(array_filter, Mapping) or not array_filter:
            raise CommandError(9, "FailedToParse", "each array filter must be a non-empty document")
        identifiers = {key.split(".", 1)[0] for key in array_filter if not key.startswith("$")}
        if len(identifiers) != 1:
            raise CommandError(
                9, "FailedToParse", "an array filter must use exactly one top-level identifier"
            )
        (identifier,) = identifiers
        if not identifier[:1].islower() or not identifier.isalnum():
            raise CommandError(
                2, "BadValue", f"array filter identifier {identifier!r} must begin lower-case"
            )
        if identifier in filters:
            raise CommandError(
                9,
                "FailedToParse",
                f"Found multiple array filters with the same top-level field name {identifier}",
            )
        filters[identifier] = array_filter
    return filters


def _expand(
    node: Any,
    parts: list[str],
    filters: Mapping[str, Mapping[str, Any]],
    used: set[str],
    full_path: str,
) -> list[str]:
    """Every concrete path ``parts`` designates from ``node`` (a path with no ``$[`` is kept)."""
    if not parts:
        return [""]
    head, rest = parts[0], parts[1:]
    if not (head.startswith("$[") and head.endswith("]")):
        child = _child(node, head)
        return [_join(head, tail) for tail in _expand(child, rest, filters, used, full_path)]
    identifier = head[2:-1]
    if identifier and identifier not in filters:
        raise CommandError(
            2,
            "BadValue",
            f"No array filter found for identifier '{identifier}' in path '{full_path}'",
        )
    if identifier:
        used.add(identifier)
    if not isinstance(node, list):
        raise CommandError(
            2,
            "BadValue",
            f"The path '{full_path}' must exist in the document in order to apply array updates.",
        )
    paths: list[str] = []
    for index, element in enumerate(node):
        if identifier and not _matches(filters[identifier], identifier, element):
            continue
        paths.extend(
            _join(str(index), tail) for tail in _expand(element, rest, filters, used, full_path)
        )
    if not paths and rest:
        # Nothing matched: still check deeper identifiers exist, as the server parses the path.
        _mark_identifiers(rest, filters, used, full_path)
    return paths


def _mark_identifiers(
    parts: list[str], filters: Mapping[str, Mapping[str, Any]], used: set[str], full_path: str
) -> None:
    for part in parts:
        if part.startswith("$[") and part.endswith("]") and part != "$[]":
            identifier = part[2:-1]
            if identifier not in filters:
                raise CommandError(
                    2,
                    "BadValue",
                    f"No array filter found for identifier '{identifier}' in path '{full_path}'",
                )
            used.add(identifier)


def _matches(array_filter: Mapping[str, Any], identifier: str, element: Any) -> bool:
    """Whether ``element`` passes the filter written for ``identifier`` (mongomock's matcher)."""
    applies: Any = filtering.filter_applies
    return bool(applies(dict(array_filter), {identifier: element}))


def _child(node: Any, part: str) -> Any:
    if isinstance(node, Mapping):
        return node.get(part)
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    return None


def _join(head: str, tail: str) -> str:
    return f"{head}.{tail}" if tail else head

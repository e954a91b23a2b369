"""Definitions of collections, their indexes and their default documents; validated when made.

These are plain frozen values: :class:`~mongomancy.Database` turns them into collections,
indexes and upserts with ``create_all``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from pymongo import ASCENDING, DESCENDING

from .errors import DefinitionError

__all__ = [
    "ASCENDING",
    "DESCENDING",
    "BsonDict",
    "CollectionDefinition",
    "Document",
    "Index",
    "IndexDirection",
]

BsonDict: TypeAlias = dict[str, Any]
IndexDirection: TypeAlias = int | str

_DIRECTIONS: frozenset[object] = frozenset({1, -1, "text", "2d", "2dsphere", "hashed"})


def _pairs(
    fields: Mapping[str, IndexDirection] | Iterable[tuple[str, IndexDirection]],
) -> tuple[tuple[str, IndexDirection], ...]:
    # Checked at run time too: definitions often come from configuration, not typed code.
    items: tuple[Any, ...] = tuple(fields.items()) if isinstance(fields, Mapping) else tuple(fields)
    if not items:
        raise DefinitionError("an index needs at least one field")
    seen: set[str] = set()
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise DefinitionError(f"an index field must be a (name, direction) pair, got {item!r}")
        name, direction = item
        if not isinstance(name, str) or not name or name.startswith("$"):
            raise DefinitionError(f"an index field name must be a non-empty string, got {name!r}")
        if isinstance(direction, bool) or direction not in _DIRECTIONS:
            raise DefinitionError(
                f"index field {name!r} has direction {direction!r}; use 1, -1, 'text', '2d', "
                "'2dsphere' or 'hashed'"
            )
        if name in seen:
            raise DefinitionError(f"index field {name!r} appears twice")
        seen.add(name)
    return items


@dataclass(frozen=True, init=False)
class Index:
    """An index: its key pattern, an optional name, and the options users reach for.

    ``fields`` is a mapping or a sequence of ``(field, direction)`` pairs, in key order. Unnamed
    indexes are named as the original named them: ``ix__<collection>__<fields joined by _>``
    (``ux__`` when unique).
    """

    fields: tuple[tuple[str, IndexDirection], ...]
    name: str | None
    unique: bool
    sparse: bool
    expire_after_seconds: int | None
    partial_filter: Mapping[str, Any] | None
    collation: Mapping[str, Any] | None

    def __init__(
        self,
        fields: Mapping[str, IndexDirection] | Iterable[tuple[str, IndexDirection]],
        name: str | None = None,
        unique: bool | None = False,
        *,
        sparse: bool = False,
        expire_after_seconds: int | None = None,
        partial_filter: Mapping[str, Any] | None = None,
        collation: Mapping[str, Any] | None = None,
    ) -> None:
        given: dict[str, object] = {"name": name, "ttl": expire_after_seconds}
        if given["name"] is not None and (not isinstance(given["name"], str) or not name):
            raise DefinitionError(f"an index name must be a non-empty string, got {name!r}")
        ttl = given["ttl"]
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0):
            raise DefinitionError(
                f"expire_after_seconds must be a non-negative int, got {expire_after_seconds!r}"
            )
        for label, value in (("partial_filter", partial_filter), ("collation", collation)):
            if value is not None and not isinstance(value, Mapping):
                raise DefinitionError(f"{label} must be a mapping, got {value!r}")
        object.__setattr__(self, "fields", _pairs(fields))
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "unique", bool(unique))
        object.__setattr__(self, "sparse", bool(sparse))
        object.__setattr__(self, "expire_after_seconds", expire_after_seconds)
        object.__setattr__(self, "partial_filter", partial_filter)
        object.__setattr__(self, "collation", collation)

    def field_for_mongo(self) -> list[tuple[str, IndexDirection]]:
        """The key pattern as pymongo's ``create_index`` takes it."""
        return list(self.fields)

    def name_in(self, collection: str) -> str:
        """The index's name in ``collection``: its own, or the original's generated one."""
        if self.name is not None:
            return self.name
        prefix = "ux" if self.unique else "ix"
        return f"{prefix}__{collection}__{'_'.join(field for field, _ in self.fields)}"

    def options(self) -> BsonDict:
        """The options that distinguish this index on the server (``name`` excluded)."""
        found: BsonDict = {}
        if self.unique:
            found["unique"] = True
        if self.sparse:
            found["sparse"] = True
        if self.expire_after_seconds is not None:
            found["expireAfterSeconds"] = self.expire_after_seconds
        if self.partial_filter is not None:
            found["partialFilterExpression"] = dict(self.partial_filter)
        if self.collation is not None:
            found["collation"] = dict(self.collation)
        return found


@dataclass(frozen=True)
class Document:
    """A document a collection should contain: upserted by ``unique_key`` on ``create_all``.

    With ``unique_key=None`` the document is inserted only into an empty collection, as in the
    original.
    """

    unique_key: Mapping[str, Any] | None
    data: Mapping[str, Any]

    def __post_init__(self) -> None:
        key: object = self.unique_key
        if key is not None and (not isinstance(key, Mapping) or not key):
            raise DefinitionError(
                f"unique_key must be a non-empty mapping, got {self.unique_key!r}"
            )
        if not isinstance(self.data, Mapping):
            raise DefinitionError(f"document data must be a mapping, got {self.data!r}")


@dataclass(frozen=True)
class CollectionDefinition:
    """A collection with its indexes and default documents."""

    name: str
    indices: Sequence[Index] = field(default_factory=tuple)
    default_docs: Sequence[Document] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        name: object = self.name
        if not isinstance(name, str) or not name or "$" in name or "\0" in name:
            raise DefinitionError(f"invalid collection name {self.name!r}")
        object.__setattr__(self, "indices", tuple(self.indices))
        object.__setattr__(self, "default_docs", tuple(self.default_docs))
        names: dict[str, Index] = {}
        patterns: dict[tuple[tuple[str, IndexDirection], ...], str] = {}
        for index in self.indices:
            if not isinstance(index, Index):
                raise DefinitionError(f"{self.name}: indices must be Index values, got {index!r}")
            name = index.name_in(self.name)
            if name in names:
                raise DefinitionError(f"{self.name}: two indexes are named {name!r}")
            if index.fields in patterns:
                raise DefinitionError(
                    f"{self.name}: indexes {patterns[index.fields]!r} and {name!r} have the same "
                    f"key pattern {index.field_for_mongo()!r}"
                )
            names[name] = index
            patterns[index.fields] = name
        for document in self.default_docs:
            if not isinstance(document, Document):
                raise DefinitionError(
                    f"{self.name}: default_docs must be Document values, got {document!r}"
                )

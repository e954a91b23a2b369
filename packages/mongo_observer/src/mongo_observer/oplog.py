"""Oplog entries: shape checks and expansion of ``applyOps`` into the CRUD entries they hold.

An observer only cares about inserts, updates and deletes. Transactions and batched writes log
them inside one ``c`` entry's ``o.applyOps`` array, so :func:`expand` flattens those (nested
ones too) into ordinary entries, each stamped with the outer entry's timestamp so a resume point
taken from any of them is the transaction's.

Transactions spread over several entries (``partialTxn``, ``prepare`` then a separate commit or
abort) are grouped by :mod:`mongo_observer.transactions` before their entries reach here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from .errors import MalformedChange

__all__ = ["document_id", "expand", "validate"]

Entry = dict[str, Any]

OPS: Final = frozenset({"i", "u", "d", "c", "n"})
CRUD_OPS: Final = frozenset({"i", "u", "d"})
# What inner operations inherit from the applyOps entry that carries them.
_INHERITED: Final = ("ts", "t", "wall", "lsid", "txnNumber")


def validate(entry: Any) -> None:
    """Raise :class:`MalformedChange` unless ``entry`` has the shape the server logs.

    ``op`` in i/u/d/c/n, ``ns`` a string, ``o`` a document, ``o._id`` for inserts and deletes,
    ``o2._id`` for updates; an ``applyOps`` must be an array of documents. Inner operations are
    checked by :func:`expand`, which knows their context.
    """
    if not isinstance(entry, Mapping):
        raise MalformedChange(f"oplog entry must be a document, got {type(entry).__name__}")
    op = entry.get("op")
    if op not in OPS:
        raise MalformedChange(f"oplog entry has unknown op {op!r}")
    if not isinstance(entry.get("ns"), str):
        raise MalformedChange(f"oplog {op!r} entry needs a string ns, got {entry.get('ns')!r}")
    o = entry.get("o")
    if not isinstance(o, Mapping):
        raise MalformedChange(f"oplog {op!r} entry on {entry['ns']}: o must be a document")
    if op in ("i", "d") and "_id" not in o:
        raise MalformedChange(f"oplog {op!r} entry on {entry['ns']}: o has no _id")
    if op == "u":
        o2 = entry.get("o2")
        if not isinstance(o2, Mapping) or "_id" not in o2:
            raise MalformedChange(f"oplog 'u' entry on {entry['ns']}: o2 has no _id")
    if op == "c" and "applyOps" in o:
        ops = o["applyOps"]
        if not isinstance(ops, list) or not all(isinstance(inner, Mapping) for inner in ops):
            raise MalformedChange(f"applyOps on {entry['ns']} must be an array of documents")


def expand(entry: Mapping[str, Any]) -> list[Entry]:
    """The CRUD entries in ``entry``, in order: itself for i/u/d, an applyOps' inner operations.

    Other commands (create, drop, ...) and no-ops give an empty list: they change no document.
    Inner operations keep their own ``ns`` and get the outer ``ts`` (and ``t``, ``wall``,
    ``lsid``, ``txnNumber`` when present). Every returned entry passes :func:`validate`.
    """
    validate(entry)
    op = entry["op"]
    if op in CRUD_OPS:
        return [dict(entry)]
    if op == "n" or "applyOps" not in entry["o"]:
        return []
    inherited = {key: entry[key] for key in _INHERITED if key in entry}
    result: list[Entry] = []
    for inner in entry["o"]["applyOps"]:
        result.extend(expand({**inner, **inherited}))
    return result


def document_id(entry: Mapping[str, Any]) -> Any:
    """The ``_id`` of the document a CRUD entry touches (``o2._id`` for updates, else ``o._id``)."""
    validate(entry)
    op = entry["op"]
    if op == "u":
        return entry["o2"]["_id"]
    if op in ("i", "d"):
        return entry["o"]["_id"]
    raise MalformedChange(f"oplog {op!r} entry on {entry['ns']} names no single document")

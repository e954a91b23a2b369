"""Transactions logged over several oplog entries, assembled before any operation is handed on.

A small transaction is one ``applyOps`` entry and :func:`oplog.expand` suffices. Two forms are not:

* a large transaction (over 16 MB of operations) logs ``applyOps`` entries with
  ``partialTxn: true`` and ends with an ``applyOps`` entry without it;
* a prepared transaction (a cross-shard transaction on a shard) logs its operations in
  ``applyOps`` with ``prepare: true`` (after any partial entries), then ``commitTransaction``
  or ``abortTransaction`` in a later entry.

:class:`TransactionAssembler` holds those operations per session and transaction number until
the transaction commits (they are released, stamped with the committing entry's ``ts``) or
aborts (they are dropped), so a handler never sees an aborted write or half a transaction.

While a transaction is open the resume point handed out for checkpoints stays *before* its
first entry: an observer restarted from that checkpoint reads the whole transaction again.
Operations of other transactions interleaved with the open one may then be handed over a
second time (delivery stays at least once); nothing is lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import bson

from . import oplog
from .errors import MalformedChange

__all__ = ["Assembled", "TransactionAssembler"]

Entry = dict[str, Any]


@dataclass(frozen=True)
class Assembled:
    """What one oplog entry releases.

    ``ops``: CRUD entries to hand on, in order (empty while a transaction is being collected).
    ``checkpoint``: the position a checkpoint may record once ``ops`` are handled, or None
    when it must not move (a transaction is open).
    """

    ops: list[Entry]
    checkpoint: Any


@dataclass
class _Open:
    ops: list[Entry] = field(default_factory=list)
    prepared: bool = False


@dataclass
class TransactionAssembler:
    """Feed every oplog entry in order to :meth:`feed`; it releases whole transactions only.

    Started in the middle of a transaction (a position between its entries), it cannot see the
    entries before that position: a commit without collected operations releases nothing.
    Checkpoints never stand there, since they do not move while a transaction is open.
    """

    _open: dict[bytes, _Open] = field(default_factory=dict)

    @property
    def open_transactions(self) -> int:
        return len(self._open)

    def reset(self) -> None:
        """Forget open transactions (history was lost; the replica is rebuilt from a snapshot)."""
        self._open.clear()

    def feed(self, entry: Mapping[str, Any]) -> Assembled:
        """The operations ``entry`` completes, and where a checkpoint may stand after them."""
        oplog.validate(entry)
        ops = self._released(entry)
        return Assembled(ops, None if self._open else entry["ts"])

    def _released(self, entry: Mapping[str, Any]) -> list[Entry]:
        o = entry["o"]
        if entry["op"] != "c" or not (
            {"applyOps", "commitTransaction", "abortTransaction"} & set(o)
        ):
            return oplog.expand(entry)
        key = _transaction_key(entry)
        if "applyOps" in o and not o.get("partialTxn") and not o.get("prepare"):
            pending = self._open.pop(key, None) if key is not None else None
            if pending is None:
                return oplog.expand(entry)
            return _stamped(pending.ops + oplog.expand(entry), entry)
        if key is None:
            raise MalformedChange(
                f"oplog transaction entry on {entry['ns']} has no lsid/txnNumber to group it by"
            )
        if "applyOps" in o:  # partial or prepared: collect, release later
            pending = self._open.setdefault(key, _Open())
            if pending.prepared:
                raise MalformedChange(f"operations logged after prepare on {entry['ns']}")
            pending.ops.extend(oplog.expand(entry))
            pending.prepared = bool(o.get("prepare"))
            return []
        if "commitTransaction" in o:
            pending = self._open.pop(key, None)
            return [] if pending is None else _stamped(pending.ops, entry)
        self._open.pop(key, None)  # abortTransaction: its operations never happened
        return []


def _transaction_key(entry: Mapping[str, Any]) -> bytes | None:
    lsid, number = entry.get("lsid"), entry.get("txnNumber")
    if not isinstance(lsid, Mapping) or number is None:
        return None
    return bson.encode({"lsid": lsid, "txnNumber": number})


def _stamped(ops: list[Entry], entry: Mapping[str, Any]) -> list[Entry]:
    """The operations as of the entry that committed them: its ts, t and wall."""
    stamp = {key: entry[key] for key in ("ts", "t", "wall") if key in entry}
    return [{**op, **stamp} for op in ops]

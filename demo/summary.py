"""The invariants the demo promises, judged on its records, and the exit code (pure: no I/O).

Everything judged is judged here, so the judgement can be tested with records that fail on
purpose. A record left ``None`` (its step did not finish) fails the invariants that needed it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from demo.records import DemoReport, Failover, PymoRecord, ms

__all__ = [
    "Invariant",
    "count_differences",
    "evaluate",
    "exit_code",
    "figures",
    "ms",
    "once_in_order",
]


@dataclass(frozen=True)
class Invariant:
    name: str
    holds: bool
    measured: str


def once_in_order(expected: Sequence[str], seen: Sequence[str]) -> str:
    """The difference between two id sequences, in numbers."""
    counts = Counter(seen)
    missing = sum(1 for i in set(expected) if i not in counts)
    duplicated = sum(n - 1 for n in counts.values() if n > 1)
    order = "in order" if list(dict.fromkeys(seen)) == list(expected) else "OUT OF ORDER"
    return (
        f"{len(expected)} published, {len(seen)} received, {missing} missing, "
        f"{duplicated} duplicated, {order}"
    )


def count_differences(
    replica: Iterable[Mapping[str, Any]], collection: Iterable[Mapping[str, Any]]
) -> int:
    """Documents (by ``_id``) present on one side only, or present on both but different."""
    left = {d["_id"]: dict(d) for d in replica}
    right = {d["_id"]: dict(d) for d in collection}
    return sum(1 for key in left.keys() | right.keys() if left.get(key) != right.get(key))


def _missing(name: str) -> Invariant:
    return Invariant(name, False, "not measured: the step did not finish")


def _pymo(record: PymoRecord | None) -> list[Invariant]:
    dead = "pymo: a dead seed list fails within its bound"
    healthy = "pymo: a healthy set returns a client"
    if record is None:
        return [_missing(dead), _missing(healthy)]
    times = (record.dead_sync, record.dead_async)
    dead_ok = all(t is not None and t <= record.bound for t in times)
    shown = ", ".join("no error" if t is None else ms(t) for t in times)
    ready = (record.healthy_sync, record.healthy_async)
    ready_ok = all(t is not None and t <= record.bound for t in ready)
    got = ", ".join("no client" if t is None else f"client in {ms(t)}" for t in ready)
    return [
        Invariant(dead, dead_ok, f"sync, async: {shown} (bound {ms(record.bound)})"),
        Invariant(healthy, ready_ok, f"sync, async: {got}"),
    ]


def _mongo(report: DemoReport) -> list[Invariant]:
    schema = "mongomancy: create_all made the schema; a second run changed nothing"
    acked = "mongomancy: every write acknowledged through the failovers"
    lost = "mongomancy: no acknowledged write lost or duplicated"
    replica = "mongo_observer: the live replica equals the collection"
    found: list[Invariant] = []
    s = report.schema
    found.append(
        _missing(schema)
        if s is None
        else Invariant(
            schema,
            s.second_run_empty,
            f"{s.created}; second run: {'nothing to do' if s.second_run_empty else 'changed'}",
        )
    )
    w = report.writes
    if w is None:
        found += [_missing(acked), _missing(lost)]
    else:
        found.append(
            Invariant(
                acked,
                w.acknowledged_count == w.attempted,
                f"{w.attempted} attempted, {w.acknowledged_count} acknowledged",
            )
        )
        found.append(
            Invariant(
                lost,
                w.lost == 0 and w.duplicated == 0,
                f"{w.lost} lost, {w.duplicated} duplicated "
                f"({len(set(w.stored))} orders stored, {len(w.updates_stored)} paid)",
            )
        )
    r = report.replica
    found.append(
        _missing(replica)
        if r is None
        else Invariant(
            replica,
            r.differences == 0 and r.replica_size == r.collection_size,
            f"replica {r.replica_size}, collection {r.collection_size} documents, "
            f"{r.differences} differ ({r.changes_applied} live changes applied)",
        )
    )
    return found


def _eventstore(report: DemoReport) -> list[Invariant]:
    read = "photonpump: every published event read back once, in order"
    c = report.catch_up
    catch_up = "photonpump: catch-up subscription got every event exactly once"
    if c is not None:
        catch_up += " across the leader kill" if c.leader_killed else " (no leader kill)"
    persistent = "photonpump: persistent subscription acked every event"
    found: list[Invariant] = []
    r = report.read
    found.append(
        _missing(read)
        if r is None
        else Invariant(read, r.read_back == r.published, once_in_order(r.published, r.read_back))
    )
    found.append(
        _missing(catch_up)
        if c is None
        else Invariant(catch_up, c.received == c.published, once_in_order(c.published, c.received))
    )
    p = report.persistent
    if p is None:
        found.append(_missing(persistent))
    else:
        missing = len(set(p.published) - set(p.acked))
        redelivered = len(p.delivered) - len(set(p.delivered))
        found.append(
            Invariant(
                persistent,
                missing == 0,
                f"{len(p.published)} published, {len(set(p.acked))} acked, {missing} never "
                f"acked, {redelivered} redelivered (at least once: reported, not failed)",
            )
        )
    return found


def _failovers(report: DemoReport) -> Invariant:
    name = "failover times measured"
    parts: list[tuple[Iterable[Failover], int] | None] = [
        None
        if report.writes is None
        else (report.writes.failovers, report.writes.planned_failovers),
        None
        if report.catch_up is None
        else (report.catch_up.failovers, report.catch_up.planned_failovers),
    ]
    if any(part is None for part in parts):
        return _missing(name)
    shown: list[str] = []
    holds = True
    for failovers, planned in (part for part in parts if part is not None):
        listed = list(failovers)
        holds &= len(listed) == planned
        for f in listed:
            if f.skipped is not None:
                shown.append(f"{f.system}: not performed ({f.skipped})")
            else:
                holds &= f.resumed is not None
                shown.append(f"{f.system}: {ms(f.resumed)}")
    return Invariant(name, holds, "; ".join(shown) or "no fault planned")


def evaluate(report: DemoReport) -> list[Invariant]:
    """Every invariant the demo promises, judged on what was measured."""
    found = [*_pymo(report.pymo), *_mongo(report), *_eventstore(report), _failovers(report)]
    found.append(
        Invariant(
            "every step ran to completion",
            not report.errors,
            "; ".join(report.errors) or "all steps completed",
        )
    )
    if report.leaks is not None:
        found.append(
            Invariant(
                "nothing left running (tasks, threads)",
                not report.leaks,
                "; ".join(report.leaks) or "no task or thread left",
            )
        )
    return found


def exit_code(invariants: Sequence[Invariant]) -> int:
    """0 only when there is something to judge and all of it holds."""
    return 0 if invariants and all(i.holds for i in invariants) else 1


def figures(report: DemoReport) -> list[tuple[str, str]]:
    """The numbers a reader wants at the end: writes, events, failover times."""
    rows: list[tuple[str, str]] = []
    w = report.writes
    if w is not None:
        rows.append(
            (
                "MongoDB writes",
                f"attempted {w.attempted}, acknowledged {w.acknowledged_count}, "
                f"lost {w.lost}, duplicated {w.duplicated}",
            )
        )
    for label, published, received in _streams(report):
        dup = len(received) - len(set(received))
        rows.append(
            (
                f"EventStore events ({label})",
                f"published {len(published)}, received {len(received)}, duplicated {dup}",
            )
        )
    failovers = [
        *(w.failovers if w else ()),
        *(report.catch_up.failovers if report.catch_up else ()),
    ]
    for n, f in enumerate(failovers, 1):
        rows.append((f"failover {n}", f.describe()))
    return rows


def _streams(report: DemoReport) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    found = []
    if report.read is not None:
        found.append(("read back", report.read.published, report.read.read_back))
    if report.catch_up is not None:
        found.append(("catch-up", report.catch_up.published, report.catch_up.received))
    if report.persistent is not None:
        found.append(("persistent", report.persistent.published, report.persistent.delivered))
    return found

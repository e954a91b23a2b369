"""What the demo measured: plain records the steps fill and :mod:`demo.summary` judges.

Frozen facts (ids written and read, timings), never verdicts, so the judgement can be tested
with records made by hand. A step that did not finish leaves its record ``None``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = [
    "CatchUpRecord",
    "DemoReport",
    "Failover",
    "PersistentRecord",
    "PymoRecord",
    "ReadRecord",
    "ReplicaRecord",
    "SchemaRecord",
    "WritesRecord",
    "ms",
]


def ms(seconds: float | None) -> str:
    """Seconds as whole milliseconds for people; a dash when nothing was measured."""
    return "—" if seconds is None else f"{seconds * 1000:.0f} ms"


@dataclass(frozen=True)
class Failover:
    """One fault and how long the client took to get past it, in seconds from the fault."""

    system: str  # "MongoDB" or "EventStore"
    fault: str  # what was done, e.g. "killed primary 127.0.0.1:40001"
    detected: float | None = None  # until the client saw the new primary/leader (its hooks)
    resumed: float | None = None  # until the first acknowledged write after the fault
    skipped: str | None = None  # why the fault could not be performed (a real server refused)

    def describe(self) -> str:
        if self.skipped is not None:
            return f"{self.system}: {self.fault} not performed ({self.skipped})"
        role = "leader" if self.system == "EventStore" else "primary"
        return (
            f"{self.system}: {self.fault}: new {role} seen after {ms(self.detected)}, "
            f"first acknowledged write after {ms(self.resumed)}"
        )


@dataclass(frozen=True)
class PymoRecord:
    bound: float  # the fail-fast bound given to pymo, seconds
    dead_sync: float | None  # seconds until the error on the dead seed list; None: no error
    dead_async: float | None
    healthy_sync: float | None  # seconds until a client from the healthy set; None: none
    healthy_async: float | None


@dataclass(frozen=True)
class SchemaRecord:
    created: str  # what the first create_all reported
    second_run_empty: bool  # the second create_all found nothing to do


@dataclass(frozen=True)
class WritesRecord:
    attempted: int  # inserts and updates attempted
    acknowledged: tuple[int, ...]  # order numbers whose insert was acknowledged
    stored: tuple[int, ...]  # order number of every document in the collection at the end
    updates_attempted: int
    updates_acknowledged: tuple[int, ...]  # order numbers whose "paid" update was acknowledged
    updates_stored: tuple[int, ...]  # order numbers stored as paid
    failovers: tuple[Failover, ...] = ()
    planned_failovers: int = 0

    @property
    def acknowledged_count(self) -> int:
        return len(self.acknowledged) + len(self.updates_acknowledged)

    @property
    def lost(self) -> int:
        stored, paid = set(self.stored), set(self.updates_stored)
        return sum(1 for n in self.acknowledged if n not in stored) + sum(
            1 for n in self.updates_acknowledged if n not in paid
        )

    @property
    def duplicated(self) -> int:
        return sum(count - 1 for count in Counter(self.stored).values() if count > 1)


@dataclass(frozen=True)
class ReplicaRecord:
    replica_size: int
    collection_size: int
    differences: int  # documents missing from either side or different
    changes_applied: int  # changes the replica announced to its subscribers


@dataclass(frozen=True)
class ReadRecord:
    published: tuple[str, ...]  # event ids in publishing order
    read_back: tuple[str, ...]


@dataclass(frozen=True)
class CatchUpRecord:
    published: tuple[str, ...]
    received: tuple[str, ...]
    leader_killed: bool
    failovers: tuple[Failover, ...] = ()
    planned_failovers: int = 0


@dataclass(frozen=True)
class PersistentRecord:
    published: tuple[str, ...]
    delivered: tuple[str, ...]  # every delivery, redeliveries included
    acked: tuple[str, ...]


@dataclass
class DemoReport:
    pymo: PymoRecord | None = None
    schema: SchemaRecord | None = None
    writes: WritesRecord | None = None
    replica: ReplicaRecord | None = None
    read: ReadRecord | None = None
    catch_up: CatchUpRecord | None = None
    persistent: PersistentRecord | None = None
    errors: list[str] = field(default_factory=list)  # "step: what went wrong"
    leaks: list[str] | None = None  # what was left running; None: not checked

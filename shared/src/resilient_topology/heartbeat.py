"""Heartbeat bookkeeping as a reducer: :class:`HeartbeatTracker`.

Each check of a server is reported as ``started``, then ``succeeded`` or ``failed``; every call
returns a new tracker and leaves the old one untouched, so drivers can update it under a lock and
share snapshots freely. The tracker also remembers the seed list it was built with and answers
the question fail-fast clients ask first: what happened to each seed? Heartbeats from hosts
discovered later are recorded too, but never count as a seed's answer.

Round-trip times follow the SDAM spec: an exponentially weighted moving average (alpha 0.2, the
first sample taken as is), restarted after a failed check, and fed only by non-awaited checks,
because an awaited (streaming) check's duration includes the time the server chose to wait.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal, TypeAlias, TypeGuard

from ._types import ServerType
from .address import Address
from .errors import ConfigurationError, InvalidAddress, describe_error

__all__ = [
    "RTT_ALPHA",
    "HeartbeatTracker",
    "ReplyKind",
    "RttStats",
    "SeedOutcome",
    "SeedStatus",
    "ServerHeartbeat",
    "moving_average_rtt",
]

RTT_ALPHA = 0.2
"""Weight of the newest sample in the moving average, as the SDAM spec sets it."""

ReplyKind: TypeAlias = ServerType | str
"""A summary of a successful reply: a server type, or any label the caller chooses."""

SeedStatus: TypeAlias = Literal["pending", "succeeded", "failed"]


def moving_average_rtt(previous: float | None, sample: float, alpha: float = RTT_ALPHA) -> float:
    """The next moving-average round-trip time; the first sample (``previous is None``) is kept.

    The result is clamped between ``previous`` and ``sample``, so rounding can never carry the
    average outside the range of the samples it summarises.
    """
    _check_seconds("RTT sample", sample)
    if not _is_number(alpha) or not 0 < alpha <= 1:
        raise ConfigurationError(f"alpha must be in (0, 1], got {alpha!r}")
    if previous is None:
        return float(sample)
    _check_seconds("previous RTT average", previous)
    average = alpha * sample + (1 - alpha) * previous
    return min(max(average, min(previous, sample)), max(previous, sample))


@dataclass(frozen=True, slots=True)
class RttStats:
    """Round-trip times of one server since its last failed check, in seconds."""

    last: float | None = None
    average: float | None = None
    min: float | None = None
    max: float | None = None
    samples: int = 0

    def add(self, sample: float) -> RttStats:
        """The statistics with one more sample."""
        return RttStats(
            last=sample,
            average=moving_average_rtt(self.average, sample),
            min=sample if self.min is None else min(self.min, sample),
            max=sample if self.max is None else max(self.max, sample),
            samples=self.samples + 1,
        )


@dataclass(frozen=True, slots=True)
class ServerHeartbeat:
    """What the checks of one server have shown so far.

    ``last_error`` keeps the text of the most recent failure even after later successes;
    ``last_outcome`` says which of the two happened last. ``last_duration`` is the length of the
    last completed check, awaited or not.
    """

    address: Address
    last_started_at: float | None = None
    last_succeeded_at: float | None = None
    last_failed_at: float | None = None
    last_error: str | None = None
    last_outcome: Literal["succeeded", "failed"] | None = None
    last_duration: float | None = None
    last_reply_kind: ReplyKind | None = None
    awaited: bool = False
    in_progress: bool = False
    consecutive_failures: int = 0
    rtt: RttStats = field(default_factory=RttStats)

    @property
    def answered(self) -> bool:
        """True once any check of this server has completed, successfully or not."""
        return self.last_outcome is not None


@dataclass(frozen=True, slots=True)
class SeedOutcome:
    """What became of one seed: no answer yet, or the result of its latest completed check."""

    address: Address
    status: SeedStatus
    reply_kind: ReplyKind | None = None
    error: str | None = None
    at: float | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatTracker:
    """Per-server heartbeat records, plus the seed list they are measured against."""

    seeds: tuple[Address, ...] = ()
    servers: Mapping[Address, ServerHeartbeat] = field(default_factory=lambda: MappingProxyType({}))

    def __hash__(self) -> int:
        return hash((self.seeds, frozenset(self.servers.items())))

    @classmethod
    def for_seeds(cls, seeds: Iterable[Address]) -> HeartbeatTracker:
        """A tracker expecting answers from ``seeds`` (duplicates dropped, order kept)."""
        unique = tuple(dict.fromkeys(_check_address(seed) for seed in seeds))
        if not unique:
            raise ConfigurationError("at least one seed address is needed")
        return cls(seeds=unique)

    # --- transitions --------------------------------------------------------------------------

    def started(self, address: Address, now: float, awaited: bool = False) -> HeartbeatTracker:
        """A check of ``address`` began at ``now``."""
        record = self._record(address)
        _check_time(now)
        return self._with(replace(record, last_started_at=now, awaited=awaited, in_progress=True))

    def succeeded(
        self,
        address: Address,
        now: float,
        rtt: float | None,
        awaited: bool = False,
        reply_kind: ReplyKind | None = None,
    ) -> HeartbeatTracker:
        """A check of ``address`` answered at ``now`` after ``rtt`` seconds.

        Awaited checks do not feed the RTT statistics (see the module docstring); pass ``None``
        for ``rtt`` when no duration was measured.
        """
        record = self._record(address)
        _check_time(now)
        if rtt is not None:
            _check_seconds("rtt", rtt)
        stats = record.rtt if awaited or rtt is None else record.rtt.add(rtt)
        return self._with(
            replace(
                record,
                last_succeeded_at=now,
                last_outcome="succeeded",
                last_duration=rtt,
                last_reply_kind=reply_kind,
                awaited=awaited,
                in_progress=False,
                consecutive_failures=0,
                rtt=stats,
            )
        )

    def failed(
        self,
        address: Address,
        now: float,
        error: BaseException | str,
        duration: float | None = None,
        awaited: bool = False,
    ) -> HeartbeatTracker:
        """A check of ``address`` failed at ``now`` with ``error``.

        Without ``duration``, the time since the check started is used when it is known. The RTT
        statistics restart, as the spec resets the round-trip time of a server gone Unknown.
        """
        record = self._record(address)
        _check_time(now)
        if duration is None and record.in_progress and record.last_started_at is not None:
            duration = max(0.0, now - record.last_started_at)
        elif duration is not None:
            _check_seconds("duration", duration)
        return self._with(
            replace(
                record,
                last_failed_at=now,
                last_error=describe_error(error),
                last_outcome="failed",
                last_duration=duration,
                awaited=awaited,
                in_progress=False,
                consecutive_failures=record.consecutive_failures + 1,
                rtt=RttStats(),
            )
        )

    def forget(self, address: Address) -> HeartbeatTracker:
        """Drop the record of a server no longer monitored; seeds' records are kept for reports."""
        _check_address(address)
        if address in self.seeds or address not in self.servers:
            return self
        servers = {a: r for a, r in self.servers.items() if a != address}
        return replace(self, servers=MappingProxyType(servers))

    # --- queries ------------------------------------------------------------------------------

    def get(self, address: Address) -> ServerHeartbeat | None:
        return self.servers.get(address)

    def average_rtt(self, address: Address) -> float | None:
        """The moving-average RTT to give a server description; ``None`` with no sample yet."""
        record = self.servers.get(address)
        return None if record is None else record.rtt.average

    def seed_outcomes(self) -> Mapping[Address, SeedOutcome]:
        """Every seed's outcome, in seed order."""
        return MappingProxyType({seed: self._outcome(seed) for seed in self.seeds})

    def answered_seeds(self) -> tuple[Address, ...]:
        """Seeds with at least one completed check, successful or not."""
        return tuple(s for s in self.seeds if self._status(s) != "pending")

    def pending_seeds(self) -> tuple[Address, ...]:
        """Seeds with no completed check yet."""
        return tuple(s for s in self.seeds if self._status(s) == "pending")

    def failed_seeds(self) -> tuple[Address, ...]:
        """Seeds whose latest completed check failed."""
        return tuple(s for s in self.seeds if self._status(s) == "failed")

    def succeeded_seeds(self) -> tuple[Address, ...]:
        """Seeds whose latest completed check succeeded."""
        return tuple(s for s in self.seeds if self._status(s) == "succeeded")

    def all_seeds_answered(self) -> bool:
        """True when there are seeds and every one has completed a check."""
        return bool(self.seeds) and not self.pending_seeds()

    def any_seed_succeeded(self) -> bool:
        """True when some seed's latest completed check succeeded."""
        return bool(self.succeeded_seeds())

    # --- helpers ------------------------------------------------------------------------------

    def _record(self, address: Address) -> ServerHeartbeat:
        _check_address(address)
        record = self.servers.get(address)
        return ServerHeartbeat(address) if record is None else record

    def _with(self, record: ServerHeartbeat) -> HeartbeatTracker:
        servers = dict(self.servers)
        servers[record.address] = record
        return replace(self, servers=MappingProxyType(servers))

    def _status(self, seed: Address) -> SeedStatus:
        record = self.servers.get(seed)
        return "pending" if record is None or record.last_outcome is None else record.last_outcome

    def _outcome(self, seed: Address) -> SeedOutcome:
        record = self.servers.get(seed)
        if record is None or record.last_outcome is None:
            return SeedOutcome(seed, "pending")
        if record.last_outcome == "succeeded":
            return SeedOutcome(
                seed, "succeeded", reply_kind=record.last_reply_kind, at=record.last_succeeded_at
            )
        return SeedOutcome(seed, "failed", error=record.last_error, at=record.last_failed_at)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_seconds(name: str, value: object) -> None:
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise ConfigurationError(f"{name} must be a finite, non-negative number, got {value!r}")


def _check_time(now: object) -> None:
    if not _is_number(now) or not math.isfinite(now):
        raise ConfigurationError(f"now must be a finite number, got {now!r}")


def _check_address(address: object) -> Address:
    # Strings are refused: their default port depends on the store (MongoDB or EventStore).
    if not isinstance(address, Address):
        raise InvalidAddress(
            f"expected an Address, got {type(address).__name__} {address!r}; "
            "build one with Address.of or parse_address and the store's default port"
        )
    return address

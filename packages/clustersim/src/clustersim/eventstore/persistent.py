"""Persistent subscription groups: the pure state machine behind the simulated server.

The wire layer owns sockets and the clock; this module owns delivery, acks, naks, retries and
parking (simulators.md §9). Every call takes ``now`` in seconds and every effect is a return
value, so tests drive it instantly and deterministically.

* ``start_from=-1`` delivers only events appended after creation; ``n >= 0`` from event ``n`` on.
* A *retry* is any return of an in-flight event (nak Retry/Unknown/Stop, timeout, disconnect,
  update). It adds one to the retry count; past ``max_retry_count`` the event is parked instead.
* Retries wait in event-number order (like the server's buffer) and go out before new events,
  so first deliveries are always in event-number order.
* Acks and naks only affect in-flight events, whoever holds them; other ids are ignored.
* ``Pinned`` behaves like ``RoundRobin``: the server pins by the original stream of linked
  events, which on one stream without links would send everything to one consumer.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

from ..errors import ClustersimError, SimulatorConfigurationError

__all__ = [
    "STRATEGIES",
    "Candidate",
    "Connected",
    "CreateResult",
    "DeleteOutcome",
    "DeleteResult",
    "Delivery",
    "DropReason",
    "Group",
    "GroupSettings",
    "InvalidGroupSettings",
    "NakAction",
    "NakOutcome",
    "PersistentSubscriptionError",
    "Refused",
    "Registry",
    "UpdateOutcome",
    "UpdateResult",
]

STRATEGIES: Final = frozenset({"RoundRobin", "DispatchToSingle", "Pinned"})
_NEVER: Final = math.inf


class InvalidGroupSettings(SimulatorConfigurationError):
    """Group settings no server would accept (a negative count, an unknown strategy, ...)."""


class PersistentSubscriptionError(ClustersimError, ValueError):
    """A call the driver should never make: events out of order, a consumer connected twice."""


class NakAction(IntEnum):
    """The wire values of ``PersistentSubscriptionNakEvents.action`` (eventstore-tcp.md §4)."""

    Unknown = 0
    Park = 1
    Retry = 2
    Skip = 3
    Stop = 4


class DropReason(IntEnum):
    """The wire values of ``SubscriptionDropped.reason``, so the driver can send them as is."""

    Unsubscribed = 0
    AccessDenied = 1
    NotFound = 2
    PersistentSubscriptionDeleted = 3
    SubscriberMaxCountReached = 4


class CreateResult(IntEnum):
    """Wire values of ``CreatePersistentSubscriptionResult`` that the registry can produce."""

    Success = 0
    AlreadyExists = 1


class UpdateResult(IntEnum):
    """Wire values of ``UpdatePersistentSubscriptionResult`` that the registry can produce."""

    Success = 0
    DoesNotExist = 1


class DeleteResult(IntEnum):
    """Wire values of ``DeletePersistentSubscriptionResult`` that the registry can produce."""

    Success = 0
    DoesNotExist = 1


@dataclass(frozen=True, slots=True)
class GroupSettings:
    """The settings the group honours; buffer, batch and checkpoint sizes have no effect here.

    ``message_timeout`` is in seconds (the wire carries milliseconds); 0 means never.
    ``subscriber_max_count`` 0 means unlimited. Defaults follow the server's.
    """

    resolve_link_tos: bool = False
    start_from: int = -1
    message_timeout: float = 30.0
    max_retry_count: int = 10
    strategy: str = "RoundRobin"
    subscriber_max_count: int = 0

    def __post_init__(self) -> None:
        timeout = self.message_timeout
        checks = (
            ("start_from", self.start_from >= -1, "-1 (live end) or an event number >= 0"),
            ("message_timeout", math.isfinite(timeout) and timeout >= 0, "finite seconds >= 0"),
            ("max_retry_count", self.max_retry_count >= 0, ">= 0"),
            ("subscriber_max_count", self.subscriber_max_count >= 0, ">= 0 (0 = unlimited)"),
            ("strategy", self.strategy in STRATEGIES, f"one of {sorted(STRATEGIES)}"),
        )
        for name, ok, rule in checks:
            if not ok:
                raise InvalidGroupSettings(f"{name} must be {rule}, got {getattr(self, name)!r}")


@dataclass(frozen=True, slots=True)
class Candidate:
    """An event of the group's stream; ``payload`` is the caller's and comes back untouched."""

    event_number: int
    event_id: bytes
    payload: object = None

    def __post_init__(self) -> None:
        if self.event_number < 0:
            raise PersistentSubscriptionError(f"event_number must be >= 0, got {self.event_number}")
        if len(self.event_id) != 16:
            raise PersistentSubscriptionError(
                f"event_id must be 16 bytes, got {len(self.event_id)}"
            )


@dataclass(frozen=True, slots=True)
class Delivery:
    """Push ``candidate`` to ``consumer_id``; ``retry_count`` is 0 on the first delivery."""

    consumer_id: Hashable
    candidate: Candidate
    retry_count: int


@dataclass(frozen=True, slots=True)
class Connected:
    """What the confirmation needs; ``last_event_number`` is -1 for a stream with no events."""

    subscription_id: str
    last_event_number: int


@dataclass(frozen=True, slots=True)
class Refused:
    """The connect was refused: send ``SubscriptionDropped(reason)``."""

    reason: DropReason


@dataclass(frozen=True, slots=True)
class NakOutcome:
    """``drop_consumer`` (after a Stop): end that consumer's subscription on the wire."""

    drop_consumer: bool


@dataclass(frozen=True, slots=True)
class UpdateOutcome:
    """The server disconnects every subscriber on update; ``dropped`` lists them."""

    result: UpdateResult
    dropped: tuple[Hashable, ...] = ()


@dataclass(frozen=True, slots=True)
class DeleteOutcome:
    """The consumers in ``dropped`` get ``SubscriptionDropped(reason)``."""

    result: DeleteResult
    dropped: tuple[Hashable, ...] = ()
    reason: DropReason = DropReason.PersistentSubscriptionDeleted


@dataclass(slots=True)
class _Consumer:
    allowed: int
    joined: int
    served: int = -1
    held: set[bytes] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Queued:
    candidate: Candidate
    retry_count: int


@dataclass(frozen=True, slots=True)
class _Flight:
    consumer_id: Hashable
    candidate: Candidate
    retry_count: int
    deadline: float


def _number(entry: _Queued | _Flight) -> int:
    return entry.candidate.event_number


class Group:
    """One persistent subscription group of one stream."""

    def __init__(
        self, stream: str, name: str, settings: GroupSettings, existing: Sequence[Candidate] = ()
    ) -> None:
        self._stream = stream
        self._name = name
        self._settings = settings
        self._last = -1
        start = settings.start_from
        self._live_from = (
            start if start >= 0 else (existing[-1].event_number + 1 if existing else 0)
        )
        self._pending: deque[Candidate] = deque()
        self._retry: list[_Queued] = []
        self._flights: dict[bytes, _Flight] = {}
        self._consumers: dict[Hashable, _Consumer] = {}
        self._parked: list[Candidate] = []
        self._ticks = 0
        self.append(existing)

    # --- introspection ----------------------------------------------------------------------

    @property
    def stream(self) -> str:
        return self._stream

    @property
    def name(self) -> str:
        return self._name

    @property
    def subscription_id(self) -> str:
        """``"<stream>::<group>"``: the id acks and naks carry."""
        return f"{self._stream}::{self._name}"

    @property
    def settings(self) -> GroupSettings:
        return self._settings

    @property
    def last_event_number(self) -> int:
        """The highest event number appended, -1 when none."""
        return self._last

    @property
    def consumers(self) -> tuple[Hashable, ...]:
        """Connected consumers in connection order."""
        return tuple(self._consumers)

    @property
    def in_flight(self) -> dict[Hashable, int]:
        """Unacked deliveries per connected consumer."""
        return {cid: len(c.held) for cid, c in self._consumers.items()}

    @property
    def in_flight_by_id(self) -> dict[bytes, Hashable]:
        """Which consumer holds each in-flight event."""
        return {eid: f.consumer_id for eid, f in self._flights.items()}

    @property
    def queued(self) -> list[Candidate]:
        """Events waiting for a consumer, in the order they will go out (retries first)."""
        return [q.candidate for q in self._retry] + list(self._pending)

    @property
    def parked(self) -> list[Candidate]:
        """Parked events in park order."""
        return list(self._parked)

    # --- inputs -----------------------------------------------------------------------------

    def append(self, events: Iterable[Candidate]) -> None:
        """Feed events written to the stream; those at or after the start point become due."""
        batch = list(events)
        last = self._last
        for c in batch:
            if c.event_number <= last:
                raise PersistentSubscriptionError(
                    f"event {c.event_number} appended after event {last}: "
                    "events must arrive in increasing event-number order"
                )
            last = c.event_number
        self._last = last
        self._pending.extend(c for c in batch if c.event_number >= self._live_from)

    def connect(
        self, consumer_id: Hashable, allowed_in_flight: int, now: float
    ) -> Connected | Refused:
        """Add a consumer that may hold up to ``allowed_in_flight`` unacked events."""
        if consumer_id in self._consumers:
            raise PersistentSubscriptionError(f"consumer {consumer_id!r} is already connected")
        if allowed_in_flight < 0:
            raise PersistentSubscriptionError(
                f"allowed_in_flight must be >= 0, got {allowed_in_flight}"
            )
        limit = self._settings.subscriber_max_count
        if limit and len(self._consumers) >= limit:
            return Refused(DropReason.SubscriberMaxCountReached)
        self._ticks += 1
        self._consumers[consumer_id] = _Consumer(allowed_in_flight, joined=self._ticks)
        return Connected(self.subscription_id, self._last)

    def disconnect(self, consumer_id: Hashable, now: float) -> None:
        """Remove a consumer; its in-flight events are retried (unknown ids are a no-op)."""
        consumer = self._consumers.pop(consumer_id, None)
        if consumer is None:
            return
        for flight in sorted((self._flights.pop(e) for e in consumer.held), key=_number):
            self._retry_or_park(flight)

    def ack(self, consumer_id: Hashable, event_ids: Iterable[bytes], now: float) -> list[bytes]:
        """Mark in-flight events processed; returns the ids that were in flight."""
        return [eid for eid in event_ids if self._land(eid) is not None]

    def nak(
        self, consumer_id: Hashable, event_ids: Iterable[bytes], action: NakAction, now: float
    ) -> NakOutcome:
        """Apply ``action`` to the named in-flight events; Unknown is treated as Retry.

        Stop retries the named events, then disconnects the consumer (so its other in-flight
        events are retried too) and asks the caller to drop it.
        """
        for eid in event_ids:
            flight = self._land(eid)
            if flight is None:
                continue
            if action is NakAction.Park:
                self._parked.append(flight.candidate)
            elif action is not NakAction.Skip:
                self._retry_or_park(flight)
        if action is NakAction.Stop:
            self.disconnect(consumer_id, now)
            return NakOutcome(drop_consumer=True)
        return NakOutcome(drop_consumer=False)

    def update(self, settings: GroupSettings) -> tuple[Hashable, ...]:
        """Replace the settings and disconnect every consumer, as the server does.

        The group keeps its position (queued, parked, delivered): a changed ``start_from``
        only matters to a group created afresh.
        """
        dropped = tuple(self._consumers)
        for cid in dropped:
            self.disconnect(cid, 0.0)
        self._settings = settings
        return dropped

    # --- time and delivery ------------------------------------------------------------------

    def expire(self, now: float) -> None:
        """Retry (or park) every in-flight event whose timeout has passed."""
        late = sorted((f for f in self._flights.values() if f.deadline <= now), key=_number)
        for flight in late:
            self._land(flight.candidate.event_id)
            self._retry_or_park(flight)

    def next_deadline(self) -> float | None:
        """When the earliest in-flight event times out, so the driver knows when to wake."""
        earliest = min((f.deadline for f in self._flights.values()), default=_NEVER)
        return None if earliest == _NEVER else earliest

    def pump(self, now: float) -> list[Delivery]:
        """Expire, then hand out due events while some consumer has a free slot."""
        self.expire(now)
        timeout = self._settings.message_timeout
        deadline = now + timeout if timeout else _NEVER
        out: list[Delivery] = []
        while self._retry or self._pending:
            cid = self._pick()
            if cid is None:
                break
            entry = self._retry.pop(0) if self._retry else _Queued(self._pending.popleft(), 0)
            eid = entry.candidate.event_id
            self._flights[eid] = _Flight(cid, entry.candidate, entry.retry_count, deadline)
            self._consumers[cid].held.add(eid)
            out.append(Delivery(cid, entry.candidate, entry.retry_count))
        return out

    # --- internals --------------------------------------------------------------------------

    def _pick(self) -> Hashable | None:
        """The consumer for the next event: least recently served, or the first for Single."""
        free = [(cid, c) for cid, c in self._consumers.items() if len(c.held) < c.allowed]
        if not free:
            return None
        if self._settings.strategy == "DispatchToSingle":
            cid, consumer = min(free, key=lambda item: item[1].joined)
        else:
            cid, consumer = min(free, key=lambda item: (item[1].served, item[1].joined))
        self._ticks += 1
        consumer.served = self._ticks
        return cid

    def _land(self, event_id: bytes) -> _Flight | None:
        """Take an event out of flight, whoever holds it."""
        flight = self._flights.pop(event_id, None)
        if flight is not None:
            self._consumers[flight.consumer_id].held.discard(event_id)
        return flight

    def _retry_or_park(self, flight: _Flight) -> None:
        count = flight.retry_count + 1
        if count > self._settings.max_retry_count:
            self._parked.append(flight.candidate)
        else:
            bisect.insort(self._retry, _Queued(flight.candidate, count), key=_number)


class Registry:
    """The server's persistent subscription groups, keyed by ``(stream, group)``."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str], Group] = {}

    def create(
        self, stream: str, group: str, settings: GroupSettings, existing: Sequence[Candidate] = ()
    ) -> CreateResult:
        """Create a group; ``existing`` is the stream's events so far, in order."""
        key = (stream, group)
        if key in self._groups:
            return CreateResult.AlreadyExists
        self._groups[key] = Group(stream, group, settings, existing)
        return CreateResult.Success

    def update(self, stream: str, group: str, settings: GroupSettings) -> UpdateOutcome:
        found = self._groups.get((stream, group))
        if found is None:
            return UpdateOutcome(UpdateResult.DoesNotExist)
        return UpdateOutcome(UpdateResult.Success, found.update(settings))

    def delete(self, stream: str, group: str) -> DeleteOutcome:
        found = self._groups.pop((stream, group), None)
        if found is None:
            return DeleteOutcome(DeleteResult.DoesNotExist)
        return DeleteOutcome(DeleteResult.Success, found.consumers)

    def get(self, stream: str, group: str) -> Group | None:
        return self._groups.get((stream, group))

    def by_subscription_id(self, subscription_id: str) -> Group | None:
        """The group acks and naks name by ``"<stream>::<group>"``."""
        return next(
            (g for g in self._groups.values() if g.subscription_id == subscription_id), None
        )

    def all_groups(self) -> list[Group]:
        return list(self._groups.values())

    def groups_for(self, stream: str) -> list[Group]:
        """Groups to ``append`` to when events are written to ``stream``."""
        return [g for (s, _), g in self._groups.items() if s == stream]

"""What every node of a simulated cluster shares: the log, users and rules, roles, and fan-out.

Runs on the cluster's event loop only. Appends are announced synchronously to the listeners the
nodes registered (volatile subscriptions) and handed to the persistent subscription groups, whose
deliveries go to the consumer connections that registered a sender; a timer wakes the groups for
message timeouts.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from .log import EventLog, StoredEvent
from .persistent import Candidate, Delivery, Registry

__all__ = ["AccessRule", "ClusterState", "NodeRole"]

Listener = Callable[[list[StoredEvent]], None]
Sender = Callable[[Delivery], None]
Dropper = Callable[[int], None]  # SubscriptionDropReason value


@dataclass
class NodeRole:
    """One node as the cluster sees it."""

    index: int
    instance_id: uuid.UUID = field(default_factory=uuid.uuid4)
    alive: bool = False
    ready: bool = False  # False while starting: requests get NotHandled(NotReady)
    partitioned: bool = False
    read_only: bool = False
    tcp: tuple[str, int] = ("127.0.0.1", 0)
    http: tuple[str, int] = ("127.0.0.1", 0)


@dataclass(frozen=True)
class AccessRule:
    """Who may read and write a stream; ``None`` in a set stands for unauthenticated requests."""

    readers: frozenset[str | None]
    writers: frozenset[str | None]


class ClusterState:
    def __init__(self, nodes: int) -> None:
        self.log = EventLog()
        self.registry = Registry()
        self.users: dict[str, str] = {"admin": "changeit"}
        self.rules: dict[str, AccessRule] = {}
        self.roles = [NodeRole(i) for i in range(nodes)]
        self.leader: int | None = None
        self.epoch_number = -1
        self.epoch_id = uuid.uuid4()
        self._listeners: set[Listener] = set()
        self._senders: dict[Hashable, Sender] = {}
        self._droppers: dict[Hashable, Dropper] = {}
        self._timer: asyncio.TimerHandle | None = None

    # --- users and rules -----------------------------------------------------------------------

    def authenticate(self, username: str, password: str) -> bool:
        return self.users.get(username) == password

    def may_read(self, stream: str, user: str | None) -> bool:
        rule = self.rules.get(stream or "$all")
        if rule is None:
            return not stream.startswith("$$") or user == "admin"
        return user in rule.readers or user == "admin"

    def may_write(self, stream: str, user: str | None) -> bool:
        rule = self.rules.get(stream)
        if rule is None:
            return not stream.startswith("$") or user == "admin"
        return user in rule.writers or user == "admin"

    # --- roles ---------------------------------------------------------------------------------

    def elect(self, exclude: int | None = None) -> int | None:
        """Make the first reachable live node (not ``exclude``, not read-only) the leader."""
        candidates = [
            r.index
            for r in self.roles
            if r.alive and r.ready and not r.partitioned and not r.read_only and r.index != exclude
        ]
        if not candidates and exclude is not None:
            return self.elect()
        self.leader = candidates[0] if candidates else None
        if self.leader is not None:
            self.epoch_number += 1
            self.epoch_id = uuid.uuid4()
        return self.leader

    # --- fan-out -------------------------------------------------------------------------------

    def listen(self, listener: Listener) -> Callable[[], None]:
        self._listeners.add(listener)
        return lambda: self._listeners.discard(listener)

    def appended(self, events: list[StoredEvent]) -> None:
        """Tell volatile subscribers and persistent groups about newly written events."""
        if not events:
            return
        for listener in list(self._listeners):
            listener(events)
        by_stream: dict[str, list[StoredEvent]] = {}
        for event in events:
            by_stream.setdefault(event.stream, []).append(event)
        for stream, stream_events in by_stream.items():
            for group in self.registry.groups_for(stream):
                group.append([_candidate(e) for e in stream_events])
        self.pump()

    def existing_candidates(self, stream: str) -> list[Candidate]:
        return [_candidate(e) for e in self.log.stream_events(stream)]

    def register_consumer(self, consumer: Hashable, send: Sender, drop: Dropper) -> None:
        self._senders[consumer] = send
        self._droppers[consumer] = drop

    def unregister_consumer(self, consumer: Hashable) -> None:
        self._senders.pop(consumer, None)
        self._droppers.pop(consumer, None)

    def drop_consumers(self, consumers: list[Any], reason: int) -> None:
        for consumer in consumers:
            dropper = self._droppers.get(consumer)
            self.unregister_consumer(consumer)
            if dropper is not None:
                dropper(reason)

    def pump(self) -> None:
        """Hand out every due persistent delivery and arm the timer for the next timeout."""
        now = time.monotonic()
        deadline: float | None = None
        for group in self.registry.all_groups():
            for delivery in group.pump(now):
                send = self._senders.get(delivery.consumer_id)
                if send is not None:
                    send(delivery)
            next_deadline = group.next_deadline()
            if next_deadline is not None:
                deadline = next_deadline if deadline is None else min(deadline, next_deadline)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(deadline - now, 0.001), self.pump)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _candidate(event: StoredEvent) -> Candidate:
    return Candidate(event.event_number, event.event_id, event)

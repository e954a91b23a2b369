"""The monitoring state machine: check results and application errors in, state and work out.

:class:`TopologyState` pairs a :class:`TopologyDescription` with the bookkeeping the SDAM spec
needs beside it (connection-pool generations). Every entry point returns a :class:`Transition`:
the new state, the events to publish and the actions a driver must perform (start or stop a
monitor, check a server now, clear a pool). Drivers apply the transition under their lock and
perform the actions after releasing it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from ._types import ServerType, TopologyType
from .address import Address
from .errors import InvalidHelloReply
from .events import (
    SdamEvent,
    ServerClosed,
    ServerDescriptionChanged,
    ServerOpening,
    TopologyClosed,
    TopologyDescriptionChanged,
    TopologyOpening,
)
from .server import ServerDescription, TopologyVersion, topology_version_from
from .settings import TopologySettings
from .topology import TopologyDescription, reduce

__all__ = [
    "NODE_IS_RECOVERING_CODES",
    "NOT_WRITABLE_PRIMARY_CODES",
    "SHUTDOWN_CODES",
    "Action",
    "ApplicationError",
    "CheckNow",
    "ClearPool",
    "ErrorKind",
    "HandshakePhase",
    "SYSTEM_OVERLOADED_LABEL",
    "StartMonitoring",
    "StopMonitoring",
    "TopologyState",
    "Transition",
    "is_state_change_error",
]

NOT_WRITABLE_PRIMARY_CODES = frozenset({10107, 13435, 10058})
NODE_IS_RECOVERING_CODES = frozenset({11600, 11602, 13436, 189, 91})
SHUTDOWN_CODES = frozenset({11600, 91})
# Servers before 4.2 (wire version 8) drop every connection on a state change.
_POOL_SURVIVES_STATE_CHANGE_WIRE_VERSION = 8


@dataclass(frozen=True, slots=True)
class CheckNow:
    """Run a check of this server at once instead of waiting for the next heartbeat."""

    address: Address


@dataclass(frozen=True, slots=True)
class ClearPool:
    """Close this server's pooled connections; ``generation`` is the pool's new generation."""

    address: Address
    generation: int


@dataclass(frozen=True, slots=True)
class StartMonitoring:
    address: Address


@dataclass(frozen=True, slots=True)
class StopMonitoring:
    address: Address


Action = CheckNow | ClearPool | StartMonitoring | StopMonitoring


class ErrorKind(enum.Enum):
    NETWORK = "network"
    TIMEOUT = "timeout"
    COMMAND = "command"


class HandshakePhase(enum.Enum):
    """Where on a connection an error happened; the spec treats each phase differently.

    ``BEFORE`` is connection establishment and the initial hello; ``AUTHENTICATION`` the optional
    authentication step that follows (the spec files' "beforeHandshakeCompletes" does not tell
    the two apart, so callers that know they were authenticating say so); ``AFTER`` is use of an
    established connection.
    """

    BEFORE = "beforeHandshakeCompletes"
    AUTHENTICATION = "authentication"
    AFTER = "afterHandshakeCompletes"


# Errors the server labels this way mean "overloaded, back off": no topology change.
SYSTEM_OVERLOADED_LABEL = "SystemOverloadedError"


@dataclass(frozen=True, slots=True)
class ApplicationError:
    """An error an application operation met on a connection to ``address``.

    ``generation`` is the pool generation of the connection that failed (``None``: current);
    ``reply`` is the server's command reply for command errors.
    """

    address: Address
    kind: ErrorKind
    phase: HandshakePhase = HandshakePhase.AFTER
    generation: int | None = None
    max_wire_version: int | None = None
    reply: Mapping[str, Any] = field(default_factory=dict)
    labels: frozenset[str] = frozenset()

    @property
    def overloaded(self) -> bool:
        """The server or driver labelled the error as back-pressure from an overloaded server."""
        labels = self.reply.get("errorLabels")
        reply_labels = labels if isinstance(labels, list | tuple) else ()
        return SYSTEM_OVERLOADED_LABEL in self.labels or SYSTEM_OVERLOADED_LABEL in reply_labels

    @property
    def code(self) -> int | None:
        """The error code that decides the handling; a write-concern error's when ``ok`` is 1."""
        reply = self.reply
        source = reply if reply.get("ok") != 1 else reply.get("writeConcernError")
        if not isinstance(source, Mapping):
            return None
        code = source.get("code")
        return code if isinstance(code, int) and not isinstance(code, bool) else None

    @property
    def message(self) -> str:
        reply = self.reply
        source = reply if reply.get("ok") != 1 else reply.get("writeConcernError")
        text = source.get("errmsg") if isinstance(source, Mapping) else None
        return text if isinstance(text, str) else ""


def is_state_change_error(code: int | None, message: str) -> bool:
    """A "not writable primary" or "node is recovering" error; the code wins over the message."""
    if code is not None:
        return code in NOT_WRITABLE_PRIMARY_CODES or code in NODE_IS_RECOVERING_CODES
    lowered = message.lower()
    return "not master" in lowered or "node is recovering" in lowered


@dataclass(frozen=True, slots=True)
class Transition:
    state: TopologyState
    events: tuple[SdamEvent, ...] = ()
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True, slots=True)
class TopologyState:
    """A description plus the pool generation of each server it lists."""

    topology_id: str
    description: TopologyDescription
    pool_generations: Mapping[Address, int] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        settings: TopologySettings,
        topology_id: str,
        initial: TopologyDescription | None = None,
    ) -> Transition:
        """The state before any check, with the opening events and one monitor per seed.

        ``initial`` replaces the spec's starting description, for stores whose shape is known
        up front (an EventStore cluster is leader-based from the start).
        """
        if initial is None:
            initial = TopologyDescription.initial(settings)
        empty = replace(initial, topology_type=TopologyType.Unknown, servers=MappingProxyType({}))
        state = cls(topology_id, initial, MappingProxyType(dict.fromkeys(initial.servers, 0)))
        events: list[SdamEvent] = [
            TopologyOpening(topology_id),
            TopologyDescriptionChanged(topology_id, empty, initial),
        ]
        events += [ServerOpening(topology_id, a) for a in initial.servers]
        if settings.load_balanced:
            # A load balancer is never monitored: it is known as one from the start.
            balancer = state.apply(ServerDescription.load_balancer(settings.seeds[0]))
            return replace(balancer, events=(*events, *balancer.events))
        actions = tuple(StartMonitoring(a) for a in initial.servers)
        return Transition(state, tuple(events), actions)

    def close(self) -> Transition:
        events: list[SdamEvent] = [
            ServerClosed(self.topology_id, a) for a in self.description.servers
        ]
        events.append(TopologyClosed(self.topology_id))
        actions = tuple(StopMonitoring(a) for a in self.description.servers)
        return Transition(self, tuple(events), actions)

    def pool_generation(self, address: Address) -> int:
        return self.pool_generations.get(address, 0)

    # --- monitor results ----------------------------------------------------------------------

    def on_check_succeeded(
        self,
        address: Address,
        reply: Mapping[str, Any],
        *,
        round_trip_time: float | None,
        now: float,
    ) -> Transition:
        """A hello reply arrived; a reply that cannot be parsed counts as a failed check."""
        try:
            server = ServerDescription.from_hello(
                address, reply, round_trip_time=round_trip_time, now=now
            )
        except InvalidHelloReply as exc:
            return self.on_check_failed(address, exc, now=now)
        if server.error is not None:
            return self.on_check_failed(address, server.error, now=now)
        return self.apply(server)

    def on_check_failed(
        self, address: Address, error: str | BaseException, *, now: float
    ) -> Transition:
        """A check failed: the server becomes Unknown and its pool is cleared."""
        if address not in self.description.servers:
            return Transition(self)
        transition = self.apply(ServerDescription.unknown(address, error, now=now))
        return transition.state._clear_pool(address, transition)

    def apply(self, server: ServerDescription) -> Transition:
        """Feed one server description through the reducer and describe what changed."""
        previous = self.description
        new = reduce(previous, server)
        if new is previous:
            return Transition(self)
        return self.moved_to(new, (server.address,), reported=server)

    # --- application errors -------------------------------------------------------------------

    def on_application_error(self, error: ApplicationError) -> Transition:
        """Apply the SDAM spec's error handling to an error an operation met.

        In order: errors from a connection older than the last pool clear are stale; "not
        writable primary" / "node is recovering" errors mark the server Unknown (unless their
        topologyVersion is not newer) and ask for a check; a network error or timeout while
        connecting or in the initial hello changes nothing, nor does a timeout on an established
        connection; other network errors, failures while authenticating and failed handshakes
        mark the server Unknown and clear its pool. Errors labelled as overload back-pressure
        never change the topology.
        """
        address = error.address
        if address not in self.description.servers:
            return Transition(self)
        if error.generation is not None and error.generation < self.pool_generation(address):
            return Transition(self)  # the connection predates the last pool clear
        if error.kind is ErrorKind.COMMAND and is_state_change_error(error.code, error.message):
            return self._on_state_change_error(error)
        if error.overloaded or not _marks_unknown(error):
            return Transition(self)
        if self.description.topology_type is TopologyType.LoadBalanced:
            return self._clear_pool(address, Transition(self))  # the balancer stays known
        reason = error.message if error.kind is ErrorKind.COMMAND else ""
        unknown = ServerDescription.unknown(address, reason or f"{error.kind.value} error")
        transition = self.apply(unknown)
        return transition.state._clear_pool(address, transition)

    def _on_state_change_error(self, error: ApplicationError) -> Transition:
        address = error.address
        clears_pool = error.code in SHUTDOWN_CODES or (
            error.max_wire_version is not None
            and error.max_wire_version < _POOL_SURVIVES_STATE_CHANGE_WIRE_VERSION
        )
        if self.description.topology_type is TopologyType.LoadBalanced:
            transition = Transition(self)
            return self._clear_pool(address, transition) if clears_pool else transition
        current = self.description.servers[address]
        error_version = _reply_topology_version(error.reply, address)
        if error_version is not None and _not_newer(error_version, current.topology_version):
            return Transition(self)  # the server already told us about this change
        unknown = ServerDescription.unknown(
            address,
            error.message or f"state change error {error.code}",
            topology_version=error_version,
        )
        transition = self.apply(unknown)
        transition = replace(transition, actions=(*transition.actions, CheckNow(address)))
        return transition.state._clear_pool(address, transition) if clears_pool else transition

    # --- helpers ------------------------------------------------------------------------------

    def _clear_pool(self, address: Address, transition: Transition) -> Transition:
        if address not in self.description.servers:
            return transition
        generation = self.pool_generation(address) + 1
        generations = dict(self.pool_generations)
        generations[address] = generation
        state = replace(self, pool_generations=MappingProxyType(generations))
        return replace(
            transition, state=state, actions=(*transition.actions, ClearPool(address, generation))
        )

    def moved_to(
        self,
        new: TopologyDescription,
        checked: Iterable[Address] | None = None,
        *,
        reported: ServerDescription | None = None,
    ) -> Transition:
        """The transition to ``new``, however it was computed (the SDAM reducer, gossip, ...).

        Server-changed events are published for the ``checked`` servers (every server when
        ``None``), as the spec publishes them only for the server whose check produced them.
        For the server that ``reported``, the event carries the description as reported, even
        when the reducer then replaced or removed it (a wrong set name, a stale primary).
        """
        previous = self.description
        events: list[SdamEvent] = []
        for address in new.servers if checked is None else checked:
            before, after = previous.servers.get(address), new.servers.get(address)
            if reported is not None and reported.address == address:
                after = reported
            if before is not None and after is not None and before != after:
                events.append(ServerDescriptionChanged(self.topology_id, address, before, after))
        added = [a for a in new.servers if a not in previous.servers]
        removed = [a for a in previous.servers if a not in new.servers]
        events += [ServerOpening(self.topology_id, a) for a in added]
        events += [ServerClosed(self.topology_id, a) for a in removed]
        if previous != new:
            events.append(TopologyDescriptionChanged(self.topology_id, previous, new))
        generations = {a: self.pool_generations.get(a, 0) for a in new.servers}
        state = replace(self, description=new, pool_generations=MappingProxyType(generations))
        actions: list[Action] = [StopMonitoring(a) for a in removed]
        if new.topology_type is not TopologyType.LoadBalanced:
            actions += [StartMonitoring(a) for a in added]
        for address in new.servers if checked is None else checked:
            actions += _primary_hint(previous, new, address)
        return Transition(state, tuple(events), tuple(actions))


def _primary_hint(
    previous: TopologyDescription, new: TopologyDescription, address: Address
) -> list[Action]:
    """A member naming a primary we hold as Unknown: check that one now rather than later."""
    server = new.servers.get(address)
    if server is None or server.primary is None or new.primary is not None:
        return []
    hinted = new.servers.get(server.primary)
    if hinted is None or hinted.server_type not in (ServerType.Unknown, ServerType.PossiblePrimary):
        return []
    before = previous.servers.get(address)
    if before is not None and before.primary == server.primary:
        return []
    return [CheckNow(server.primary)]


def _marks_unknown(error: ApplicationError) -> bool:
    """Whether an error that is not a state change makes the server Unknown."""
    if error.kind is ErrorKind.COMMAND:
        # A command failing while the connection was being set up (authentication, say).
        return error.phase is not HandshakePhase.AFTER and error.reply.get("ok") != 1
    if error.phase is HandshakePhase.BEFORE:
        return False  # connecting or the initial hello: may be overload, not an outage
    if error.phase is HandshakePhase.AFTER:
        return error.kind is ErrorKind.NETWORK  # a timeout may be a slow operation
    return True  # the network failed while authenticating


def _reply_topology_version(reply: Mapping[str, Any], address: Address) -> TopologyVersion | None:
    value = reply.get("topologyVersion")
    if not isinstance(value, Mapping):
        return None
    try:
        return topology_version_from(value, address)
    except InvalidHelloReply:
        return None


def _not_newer(error_version: TopologyVersion, current: TopologyVersion | None) -> bool:
    """An error's topologyVersion at or below the server's current one is stale."""
    return (
        current is not None
        and current.process_id == error_version.process_id
        and error_version.counter <= current.counter
    )

"""Gossip in the core's vocabulary: member descriptions, the gossip reducer, cluster settings.

The rules are documented in :mod:`resilient_topology.eventstore`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from resilient_topology._types import ServerType, TopologyType
from resilient_topology.address import Address
from resilient_topology.errors import ConfigurationError, InvalidGossip
from resilient_topology.sdam import TopologyState, Transition
from resilient_topology.server import ServerDescription
from resilient_topology.settings import TopologySettings
from resilient_topology.topology import TopologyDescription

from ._gossip import (
    EVENTSTORE_HTTP_PORT,
    Gossip,
    GossipMember,
    NodeState,
    best_leader,
    parse_gossip,
    parse_gossip_json,
)
from ._selection import NodePreference

__all__ = [
    "NOT_LISTED_ERROR",
    "READ_ONLY_ROLE",
    "REPLACED_LEADER_ERROR",
    "STALE_GOSSIP_ERROR",
    "EventStoreClusterSettings",
    "apply_gossip_reply",
    "gossip_failed",
    "leader",
    "leader_changed",
    "member_description",
    "on_gossip_failure",
    "on_gossip_reply",
    "reduce_gossip",
]

STALE_GOSSIP_ERROR = "stale gossip"
REPLACED_LEADER_ERROR = "another alive leader in the same gossip has a newer epoch"
NOT_LISTED_ERROR = "not listed in the latest gossip"
READ_ONLY_ROLE = "read_only_replica"

_SERVER_TYPES = {
    NodeState.LEADER: ServerType.RSPrimary,
    NodeState.FOLLOWER: ServerType.RSSecondary,
    NodeState.READ_ONLY_REPLICA: ServerType.RSSecondary,
    NodeState.READ_ONLY_LEADERLESS: ServerType.RSSecondary,
    NodeState.CLONE: ServerType.RSOther,
}
_READ_ONLY_STATES = frozenset(
    {NodeState.READ_ONLY_REPLICA, NodeState.READ_ONLY_LEADERLESS, NodeState.PRE_READ_ONLY_REPLICA}
)


# --- one member ------------------------------------------------------------------------------


def member_description(
    member: GossipMember, *, now: float, round_trip_time: float | None = None
) -> ServerDescription:
    """The core's description of one gossip member, keyed by its HTTP address.

    Unusable members (dead, joining, leaving, unrecognised) are Unknown but keep their tags and
    endpoints, so callers can still see what the cluster said about them.
    """
    state = member.state
    server_type = (
        _SERVER_TYPES.get(state, ServerType.Unknown) if member.is_alive else ServerType.Unknown
    )
    tags = {"state": state.canonical_name}
    if member.is_read_only_replica or state in _READ_ONLY_STATES:
        tags["role"] = READ_ONLY_ROLE
    endpoints = {
        role: address
        for role, address in (
            ("tcp", member.tcp_address),
            ("secure_tcp", member.secure_tcp_address),
            ("http", member.http_address),
        )
        if address is not None
    }
    return ServerDescription(
        address=member.http_address,
        server_type=server_type,
        error=None if server_type is not ServerType.Unknown else _why_unusable(member),
        tags=MappingProxyType(tags),
        set_version=member.epoch_number if member.epoch_number >= 0 else None,
        endpoints=MappingProxyType(endpoints),
        round_trip_time=round_trip_time,
        last_update_time=now,
    )


def _why_unusable(member: GossipMember) -> str:
    if not member.is_alive:
        return f"node is not alive (last gossip state {member.raw_state!r})"
    if member.state is NodeState.UNRECOGNISED:
        return f"node state {member.raw_state!r} is not recognised"
    return f"node state {member.raw_state!r} serves no clients"


# --- the reducer -----------------------------------------------------------------------------


def reduce_gossip(
    description: TopologyDescription,
    source: Address,
    gossip: Gossip,
    *,
    now: float,
    round_trip_time: float | None = None,
) -> TopologyDescription:
    """The cluster after ``source`` answered ``gossip``; never mutates ``description``.

    ``round_trip_time`` is the fetch's, recorded on the source's own entry.
    """
    if source not in description.servers:
        return description  # a fetch that outlived the source's removal says nothing current
    members = _one_per_address(gossip.members)
    winner = best_leader(members.values())
    epoch = _view_epoch(members, winner)
    newest = description.max_set_version
    if newest is not None and epoch < newest:
        error = f"{STALE_GOSSIP_ERROR}: its view is of epoch {epoch}, older than epoch {newest}"
        servers = dict(description.servers)
        servers[source] = ServerDescription.unknown(source, error, now=now)
        return _rebuilt(description, servers, newest)
    servers = {}
    for address, member in members.items():
        rtt = round_trip_time if address == source else None
        server = member_description(member, now=now, round_trip_time=rtt)
        if server.server_type is ServerType.RSPrimary and member is not winner:
            server = replace(server, server_type=ServerType.Unknown, error=REPLACED_LEADER_ERROR)
        servers[address] = server
    for seed in description.settings.seeds:
        if seed not in servers:
            servers[seed] = ServerDescription.unknown(seed, NOT_LISTED_ERROR, now=now)
    if epoch >= 0 and (newest is None or epoch > newest):
        newest = epoch
    return _rebuilt(description, servers, newest)


def gossip_failed(
    description: TopologyDescription, source: Address, error: str | BaseException, *, now: float
) -> TopologyDescription:
    """The cluster after a fetch from ``source`` failed: only the source becomes Unknown.

    One unreachable node says nothing about the others; their next gossip will.
    """
    if source not in description.servers:
        return description
    servers = dict(description.servers)
    servers[source] = ServerDescription.unknown(source, error, now=now)
    return _rebuilt(description, servers, description.max_set_version)


def apply_gossip_reply(
    description: TopologyDescription,
    source: Address,
    reply: Mapping[str, Any] | str | bytes | bytearray,
    *,
    now: float,
    round_trip_time: float | None = None,
) -> TopologyDescription:
    """Parse and reduce a reply, decoded or raw; one that cannot be parsed counts as failed."""
    try:
        gossip = (
            parse_gossip_json(reply)
            if isinstance(reply, str | bytes | bytearray)
            else parse_gossip(reply)
        )
    except InvalidGossip as exc:
        return gossip_failed(description, source, exc, now=now)
    return reduce_gossip(description, source, gossip, now=now, round_trip_time=round_trip_time)


def leader(description: TopologyDescription) -> ServerDescription | None:
    """The leader the cluster view holds; the reducer keeps at most one."""
    return description.primary


def leader_changed(previous: TopologyDescription, new: TopologyDescription) -> bool:
    """True when the leader's address differs (appearing or vanishing counts): time to reconnect."""
    return _address_of(leader(previous)) != _address_of(leader(new))


def _address_of(server: ServerDescription | None) -> Address | None:
    return None if server is None else server.address


def _one_per_address(members: Iterable[GossipMember]) -> dict[Address, GossipMember]:
    """One member per HTTP address, in first-seen order.

    A restarted node can be listed twice for a while, its dead old instance beside the new one:
    the alive entry wins, then the newer epoch and writer checkpoint, then the first listed.
    """
    chosen: dict[Address, GossipMember] = {}
    for member in members:
        current = chosen.get(member.http_address)
        if current is None or _freshness(member) > _freshness(current):
            chosen[member.http_address] = member
    return chosen


def _freshness(member: GossipMember) -> tuple[bool, int, int]:
    return (member.is_alive, member.epoch_number, member.writer_checkpoint)


def _view_epoch(members: Mapping[Address, GossipMember], winner: GossipMember | None) -> int:
    """How recent a gossip's view is: its leader's epoch, else the newest epoch an alive member has.

    Followers replicate the epochs their leader writes, so no member of a current view is ahead of
    its leader; a leaderless view from a node cut off before the last election shows an old epoch.
    """
    if winner is not None:
        return winner.epoch_number
    return max((m.epoch_number for m in members.values() if m.is_alive), default=-1)


def _rebuilt(
    description: TopologyDescription, servers: dict[Address, ServerDescription], newest: int | None
) -> TopologyDescription:
    has_leader = any(s.server_type is ServerType.RSPrimary for s in servers.values())
    kind = TopologyType.ReplicaSetWithPrimary if has_leader else TopologyType.ReplicaSetNoPrimary
    return TopologyDescription(
        topology_type=kind,
        servers=MappingProxyType(servers),
        settings=description.settings,
        set_name=description.set_name,
        max_set_version=newest,
        max_election_id=description.max_election_id,
    )


# --- the monitor's seam ----------------------------------------------------------------------


def on_gossip_reply(
    state: TopologyState,
    address: Address,
    reply: Mapping[str, Any],
    round_trip_time: float,
    now: float,
) -> Transition:
    """:class:`~resilient_topology.drivers.monitor.AsyncMonitor`'s ``on_reply`` for gossip.

    One gossip can change every server, so change events are computed for all of them.
    """
    new = apply_gossip_reply(
        state.description, address, reply, now=now, round_trip_time=round_trip_time
    )
    return Transition(state) if new is state.description else state.moved_to(new)


def on_gossip_failure(
    state: TopologyState, address: Address, error: BaseException, now: float
) -> Transition:
    """:class:`~resilient_topology.drivers.monitor.AsyncMonitor`'s ``on_failure`` for gossip."""
    new = gossip_failed(state.description, address, error, now=now)
    return Transition(state) if new is state.description else state.moved_to(new, (address,))


# --- settings --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventStoreClusterSettings:
    """Where to fetch gossip from and which node clients want.

    ``seeds`` are HTTP (gossip) addresses. They are never forgotten: a seed the cluster stops
    listing stays as Unknown, so a later round can try it again.
    """

    seeds: tuple[Address, ...]
    node_preference: NodePreference = NodePreference.LEADER
    include_clones: bool = False

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ConfigurationError("at least one gossip seed is needed")
        if not all(isinstance(seed, Address) for seed in self.seeds):
            raise ConfigurationError(
                "seeds must be Address values; use EventStoreClusterSettings.of"
            )
        if not isinstance(self.node_preference, NodePreference):
            raise ConfigurationError(
                f"node_preference must be a NodePreference, got {self.node_preference!r}"
            )

    @classmethod
    def of(
        cls,
        seeds: str | Address | Iterable[str | Address],
        *,
        node_preference: NodePreference | str = NodePreference.LEADER,
        include_clones: bool = False,
    ) -> EventStoreClusterSettings:
        """Settings from ``"host"``, ``"host:port"`` or addresses; the port defaults to 2113."""
        items = [seeds] if isinstance(seeds, str | Address) else list(seeds)
        addresses = tuple(dict.fromkeys(Address.of(s, EVENTSTORE_HTTP_PORT) for s in items))
        try:
            preference = NodePreference(node_preference)
        except ValueError:
            raise ConfigurationError(f"unknown node preference {node_preference!r}") from None
        return cls(addresses, preference, include_clones)

    @property
    def topology_settings(self) -> TopologySettings:
        """Core settings over the seeds; no replica set name, as EventStore clusters have none."""
        return TopologySettings(self.seeds)

    def initial_description(self) -> TopologyDescription:
        """Every seed Unknown, in a cluster known to be leader-based but with no leader yet."""
        initial = TopologyDescription.initial(self.topology_settings)
        return replace(initial, topology_type=TopologyType.ReplicaSetNoPrimary)

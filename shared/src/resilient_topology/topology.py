"""The deployment as a whole: :class:`TopologyDescription` and the SDAM reducer.

:func:`reduce` takes the description before a check and the server description the check
produced, and returns the description after it, following the rules of the Server Discovery and
Monitoring spec. It never mutates its input and does no I/O, so callers can run it under a lock
and share the result freely between threads and tasks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from ._types import ServerType, TopologyType
from .address import Address
from .server import ServerDescription
from .settings import TopologySettings

__all__ = ["REPLACED_PRIMARY_ERROR", "STALE_PRIMARY_ERROR", "TopologyDescription", "reduce"]

STALE_PRIMARY_ERROR = "primary marked stale due to electionId/setVersion mismatch"
REPLACED_PRIMARY_ERROR = "primary marked stale due to discovery of newer primary"

# Servers at or above this wire version (MongoDB 6.0) order primaries by electionId first.
_ELECTION_ID_FIRST_WIRE_VERSION = 17


@dataclass(frozen=True, slots=True)
class TopologyDescription:
    """An immutable view of the whole deployment after some sequence of checks."""

    topology_type: TopologyType
    servers: Mapping[Address, ServerDescription]
    settings: TopologySettings = field(compare=False)
    set_name: str | None = None
    max_set_version: int | None = None
    max_election_id: bytes | None = None

    def __hash__(self) -> int:
        return hash((self.topology_type, self.set_name, tuple(self.servers)))

    @classmethod
    def initial(cls, settings: TopologySettings) -> TopologyDescription:
        """The description before any check: every seed Unknown."""
        servers = {a: ServerDescription.unknown(a) for a in settings.seeds}
        return cls(
            topology_type=settings.initial_topology_type,
            servers=MappingProxyType(servers),
            settings=settings,
            set_name=settings.replica_set_name,
        )

    # --- derived facts ------------------------------------------------------------------------

    def server_descriptions(self) -> Iterator[ServerDescription]:
        return iter(self.servers.values())

    @property
    def known_servers(self) -> tuple[ServerDescription, ...]:
        return tuple(s for s in self.servers.values() if s.is_known)

    @property
    def primary(self) -> ServerDescription | None:
        return next(
            (s for s in self.servers.values() if s.server_type is ServerType.RSPrimary), None
        )

    @property
    def compatibility_error(self) -> str | None:
        """Why this driver cannot talk to some known server, or ``None`` when it can."""
        low, high = self.settings.min_wire_version, self.settings.max_wire_version
        for server in self.servers.values():
            if not server.is_known or server.min_wire_version is None:
                continue
            if server.min_wire_version > high:
                return (
                    f"server {server.address} requires wire version {server.min_wire_version},"
                    f" but this driver only supports up to {high}"
                )
            if server.max_wire_version is not None and server.max_wire_version < low:
                return (
                    f"server {server.address} reports wire version {server.max_wire_version},"
                    f" but this driver requires at least {low}"
                )
        return None

    @property
    def is_compatible(self) -> bool:
        return self.compatibility_error is None

    @property
    def logical_session_timeout_minutes(self) -> int | None:
        """The smallest session timeout of the data-bearing servers; None if any lacks one."""
        if self.topology_type is TopologyType.LoadBalanced:
            return None
        timeouts = []
        for server in self.servers.values():
            if server.server_type.is_data_bearing:
                if server.logical_session_timeout_minutes is None:
                    return None
                timeouts.append(server.logical_session_timeout_minutes)
        return min(timeouts) if timeouts else None

    @property
    def has_writable_server(self) -> bool:
        return any(s.is_writable for s in self.servers.values())

    @property
    def has_readable_server(self) -> bool:
        return any(s.is_readable for s in self.servers.values())


def reduce(description: TopologyDescription, server: ServerDescription) -> TopologyDescription:
    """The topology after ``server``'s new description arrived (the SDAM spec's updateTopology)."""
    current = description.servers.get(server.address)
    if current is None:
        return description  # a reply from a server removed meanwhile
    if description.topology_type is TopologyType.LoadBalanced:
        if server.server_type is not ServerType.LoadBalancer:
            return description  # a load balancer is never checked; only its opening counts
        return replace(description, servers=MappingProxyType({server.address: server}))
    if _is_stale(current, server):
        return description
    draft = _Draft(description)
    draft.servers[server.address] = server
    _RULES[description.topology_type](draft, server)
    return draft.build()


def _is_stale(current: ServerDescription, new: ServerDescription) -> bool:
    """A reply older than what we hold (same process, lower counter) must not regress it."""
    if new.topology_version is None:
        return False
    return new.topology_version.is_older_than(current.topology_version)


class _Draft:
    """A mutable working copy used inside one reduction only."""

    def __init__(self, description: TopologyDescription) -> None:
        self.original = description
        self.topology_type = description.topology_type
        self.servers: dict[Address, ServerDescription] = dict(description.servers)
        self.set_name = description.set_name
        self.max_set_version = description.max_set_version
        self.max_election_id = description.max_election_id

    def build(self) -> TopologyDescription:
        return TopologyDescription(
            topology_type=self.topology_type,
            servers=MappingProxyType(self.servers),
            settings=self.original.settings,
            set_name=self.set_name,
            max_set_version=self.max_set_version,
            max_election_id=self.max_election_id,
        )

    def remove(self, address: Address) -> None:
        self.servers.pop(address, None)

    def add_missing(self, addresses: frozenset[Address]) -> None:
        for address in sorted(addresses, key=str):
            if address not in self.servers:
                self.servers[address] = ServerDescription.unknown(address)

    def check_if_has_primary(self) -> None:
        has_primary = any(s.server_type is ServerType.RSPrimary for s in self.servers.values())
        self.topology_type = (
            TopologyType.ReplicaSetWithPrimary if has_primary else TopologyType.ReplicaSetNoPrimary
        )


# --- rules per topology type ----------------------------------------------------------------


def _update_single(draft: _Draft, server: ServerDescription) -> None:
    expected = draft.original.settings.replica_set_name
    if expected is not None and server.is_known and server.set_name != expected:
        draft.servers[server.address] = server.to_unknown(
            f"replica set name {server.set_name!r} of {server.address} does not match {expected!r}"
        )


def _update_unknown(draft: _Draft, server: ServerDescription) -> None:
    kind = server.server_type
    if kind is ServerType.Standalone:
        if len(draft.original.settings.seeds) == 1:
            draft.topology_type = TopologyType.Single
        else:
            draft.remove(server.address)
    elif kind is ServerType.Mongos:
        draft.topology_type = TopologyType.Sharded
    elif kind is ServerType.RSPrimary:
        draft.topology_type = TopologyType.ReplicaSetWithPrimary
        _update_rs_from_primary(draft, server)
    elif kind in (ServerType.RSSecondary, ServerType.RSArbiter, ServerType.RSOther):
        draft.topology_type = TopologyType.ReplicaSetNoPrimary
        _update_rs_without_primary(draft, server)


def _update_sharded(draft: _Draft, server: ServerDescription) -> None:
    if server.server_type not in (ServerType.Unknown, ServerType.Mongos):
        draft.remove(server.address)


def _update_rs_no_primary(draft: _Draft, server: ServerDescription) -> None:
    kind = server.server_type
    if kind in (ServerType.Standalone, ServerType.Mongos):
        draft.remove(server.address)
    elif kind is ServerType.RSPrimary:
        draft.topology_type = TopologyType.ReplicaSetWithPrimary
        _update_rs_from_primary(draft, server)
    elif kind in (ServerType.RSSecondary, ServerType.RSArbiter, ServerType.RSOther):
        _update_rs_without_primary(draft, server)


def _update_rs_with_primary(draft: _Draft, server: ServerDescription) -> None:
    kind = server.server_type
    if kind in (ServerType.Standalone, ServerType.Mongos):
        draft.remove(server.address)
        draft.check_if_has_primary()
    elif kind is ServerType.RSPrimary:
        _update_rs_from_primary(draft, server)
    elif kind in (ServerType.RSSecondary, ServerType.RSArbiter, ServerType.RSOther):
        _update_rs_with_primary_from_member(draft, server)
    else:
        draft.check_if_has_primary()


def _update_rs_from_primary(draft: _Draft, server: ServerDescription) -> None:
    if draft.set_name is None:
        draft.set_name = server.set_name
    elif draft.set_name != server.set_name:
        draft.remove(server.address)
        draft.check_if_has_primary()
        return
    if _is_stale_primary(draft, server):
        draft.servers[server.address] = ServerDescription.unknown(
            server.address,
            STALE_PRIMARY_ERROR,
        )
        draft.check_if_has_primary()
        return
    for address, other in list(draft.servers.items()):
        if address != server.address and other.server_type is ServerType.RSPrimary:
            draft.servers[address] = ServerDescription.unknown(address, REPLACED_PRIMARY_ERROR)
    members = server.all_hosts
    draft.add_missing(members)
    for address in list(draft.servers):
        if address not in members:
            draft.remove(address)
    draft.check_if_has_primary()


def _is_stale_primary(draft: _Draft, server: ServerDescription) -> bool:
    """Apply the electionId/setVersion ordering; update the maxima when the primary is fresh."""
    election_id, set_version = server.election_id, server.set_version
    if (server.max_wire_version or 0) >= _ELECTION_ID_FIRST_WIRE_VERSION:
        seen = _order(draft.max_election_id, draft.max_set_version)
        if seen > _order(election_id, set_version):
            return True
        draft.max_election_id, draft.max_set_version = election_id, set_version
        return False
    if set_version is not None and election_id is not None:
        max_version, max_id = draft.max_set_version, draft.max_election_id
        if (
            max_version is not None
            and max_id is not None
            and (max_version > set_version or (max_version == set_version and max_id > election_id))
        ):
            return True
        draft.max_election_id = election_id
    if set_version is not None and (
        draft.max_set_version is None or set_version > draft.max_set_version
    ):
        draft.max_set_version = set_version
    return False


def _order(election_id: bytes | None, set_version: int | None) -> tuple[bool, bytes, bool, int]:
    return (
        election_id is not None,
        election_id or b"",
        set_version is not None,
        set_version or 0,
    )


def _update_rs_without_primary(draft: _Draft, server: ServerDescription) -> None:
    if draft.set_name is None:
        draft.set_name = server.set_name
    elif draft.set_name != server.set_name:
        draft.remove(server.address)
        return
    draft.add_missing(server.all_hosts)
    if server.primary is not None:
        hinted = draft.servers.get(server.primary)
        if hinted is not None and hinted.server_type is ServerType.Unknown:
            draft.servers[server.primary] = replace(hinted, server_type=ServerType.PossiblePrimary)
    if server.me is not None and server.me != server.address:
        draft.remove(server.address)


def _update_rs_with_primary_from_member(draft: _Draft, server: ServerDescription) -> None:
    if draft.set_name != server.set_name or (server.me is not None and server.me != server.address):
        draft.remove(server.address)
    draft.check_if_has_primary()


_RULES = {
    TopologyType.Single: _update_single,
    TopologyType.Unknown: _update_unknown,
    TopologyType.Sharded: _update_sharded,
    TopologyType.ReplicaSetNoPrimary: _update_rs_no_primary,
    TopologyType.ReplicaSetWithPrimary: _update_rs_with_primary,
}

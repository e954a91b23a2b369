"""Gossip documents: node states by name, members, and a parser that names what is wrong."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from resilient_topology.address import Address
from resilient_topology.errors import InvalidAddress, InvalidGossip

__all__ = [
    "EVENTSTORE_HTTP_PORT",
    "V5_STATE_NAMES",
    "V20_STATE_NAMES",
    "Gossip",
    "GossipMember",
    "NodeState",
    "best_leader",
    "parse_gossip",
    "parse_gossip_json",
]

EVENTSTORE_HTTP_PORT = 2113

# The names each server generation sends, in the servers' own order. The numbers behind them
# differ between versions (and transitional builds), so only the names are ever read.
V5_STATE_NAMES = (
    "Initializing",
    "Unknown",
    "PreReplica",
    "CatchingUp",
    "Clone",
    "Slave",
    "PreMaster",
    "Master",
    "Manager",
    "ShuttingDown",
    "Shutdown",
)
V20_STATE_NAMES = (
    "Initializing",
    "DiscoverLeader",
    "Unknown",
    "PreReplica",
    "CatchingUp",
    "Clone",
    "Follower",
    "PreLeader",
    "Leader",
    "Manager",
    "ShuttingDown",
    "Shutdown",
    "ReadOnlyLeaderless",
    "PreReadOnlyReplica",
    "ReadOnlyReplica",
    "ResigningLeader",
)


class NodeState(enum.Enum):
    """A node's state, its value the v20+ (canonical) name.

    v5 names are aliases: ``NodeState.MASTER is NodeState.LEADER``. A name neither vocabulary
    knows becomes :attr:`UNRECOGNISED`, which makes that one node ineligible and nothing more.
    """

    INITIALIZING = "Initializing"
    DISCOVER_LEADER = "DiscoverLeader"
    UNKNOWN = "Unknown"
    PRE_REPLICA = "PreReplica"
    CATCHING_UP = "CatchingUp"
    CLONE = "Clone"
    FOLLOWER = "Follower"
    PRE_LEADER = "PreLeader"
    LEADER = "Leader"
    MANAGER = "Manager"
    SHUTTING_DOWN = "ShuttingDown"
    SHUTDOWN = "Shutdown"
    READ_ONLY_LEADERLESS = "ReadOnlyLeaderless"
    PRE_READ_ONLY_REPLICA = "PreReadOnlyReplica"
    READ_ONLY_REPLICA = "ReadOnlyReplica"
    RESIGNING_LEADER = "ResigningLeader"
    UNRECOGNISED = "Unrecognised"
    # v5 spellings, deliberately aliases of the v20+ members.
    MASTER = "Leader"  # noqa: PIE796
    SLAVE = "Follower"  # noqa: PIE796
    PRE_MASTER = "PreLeader"  # noqa: PIE796

    @classmethod
    def from_name(cls, name: str) -> NodeState:
        """The state a gossip name stands for, ignoring case; never fails."""
        return _BY_NAME.get(name.casefold(), NodeState.UNRECOGNISED)

    @property
    def canonical_name(self) -> str:
        return self.value


_V5_RENAMES = {
    "Master": NodeState.LEADER,
    "Slave": NodeState.FOLLOWER,
    "PreMaster": NodeState.PRE_LEADER,
}
_BY_NAME = {
    name.casefold(): _V5_RENAMES.get(name) or NodeState(name)
    for name in (*V5_STATE_NAMES, *V20_STATE_NAMES)
}


@dataclass(frozen=True, slots=True)
class GossipMember:
    """One node as a gossip document lists it.

    ``raw_state`` is the name exactly as sent; ``state`` its meaning. Endpoints are ``None`` when
    the document leaves them out or gives port 0 (an interface the node does not offer). Numbers
    the document omits are -1, EventStore's own "none yet" value.
    """

    http_address: Address
    raw_state: str
    state: NodeState
    is_alive: bool
    tcp_address: Address | None = None
    secure_tcp_address: Address | None = None
    instance_id: str | None = None
    is_read_only_replica: bool = False
    epoch_number: int = -1
    epoch_position: int = -1
    writer_checkpoint: int = -1
    chaser_checkpoint: int = -1
    last_commit_position: int = -1
    node_priority: int = 0
    timestamp: str | None = None

    @property
    def is_leader(self) -> bool:
        """Alive and saying it leads; a dead node's last state is history."""
        return self.is_alive and self.state is NodeState.LEADER


@dataclass(frozen=True, slots=True)
class Gossip:
    """A parsed gossip document: its members in the order sent and, if given, who answered."""

    members: tuple[GossipMember, ...]
    server_address: Address | None = None

    @property
    def leader(self) -> GossipMember | None:
        return best_leader(self.members)


def best_leader(members: Iterable[GossipMember]) -> GossipMember | None:
    """The alive leader with the highest epoch, then the furthest writer checkpoint.

    Two alive leaders happen in a gossip taken during a partition or just after an election; the
    newer epoch is the one the cluster elected last. Among exact equals the first listed wins,
    so the choice is deterministic.
    """
    leaders = [m for m in members if m.is_leader]
    if not leaders:
        return None
    return max(leaders, key=lambda m: (m.epoch_number, m.writer_checkpoint))


# --- parsing ---------------------------------------------------------------------------------


def parse_gossip_json(text: str | bytes | bytearray) -> Gossip:
    """Parse the body of ``GET /gossip``; any JSON problem raises :class:`InvalidGossip`."""
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidGossip(f"gossip is not valid JSON: {exc}") from exc
    return parse_gossip(document)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_gossip(document: Mapping[str, Any]) -> Gossip:
    """Parse a decoded gossip document (v5 or v20+ field names, freely mixed).

    Raises :class:`InvalidGossip` naming the member index and field for anything malformed. An
    unknown state *name* is not malformed: that member gets :attr:`NodeState.UNRECOGNISED`.
    Fields the parser does not use (internal endpoints, ``esVersion``, ...) are ignored.
    """
    if not isinstance(document, Mapping):
        raise InvalidGossip(f"gossip should be a JSON object, got {type(document).__name__}")
    members = document.get("members")
    if isinstance(members, str | bytes) or not isinstance(members, list | tuple):
        raise InvalidGossip(f"gossip 'members' should be a list, got {type(members).__name__}")
    parsed = tuple(_parse_member(index, raw) for index, raw in enumerate(members))
    server = _Fields(document, "gossip").endpoint("serverIp", "serverPort")
    return Gossip(parsed, server)


def _parse_member(index: int, raw: object) -> GossipMember:
    where = f"gossip member {index}"
    if not isinstance(raw, Mapping):
        raise InvalidGossip(f"{where} should be a JSON object, got {type(raw).__name__}")
    fields = _Fields(raw, where)
    raw_state = fields.string("state")
    if raw_state is None:
        raise fields.bad("state", "a state name")
    tcp_host = fields.host("externalTcpIp")
    return GossipMember(
        http_address=fields.http_address(),
        raw_state=raw_state,
        state=NodeState.from_name(raw_state),
        is_alive=fields.boolean("isAlive", required=True),
        tcp_address=_address(tcp_host, fields.port("externalTcpPort")),
        secure_tcp_address=_address(tcp_host, fields.port("externalSecureTcpPort")),
        instance_id=fields.string("instanceId"),
        is_read_only_replica=fields.boolean("isReadOnlyReplica"),
        epoch_number=fields.integer("epochNumber", -1),
        epoch_position=fields.integer("epochPosition", -1),
        writer_checkpoint=fields.integer("writerCheckpoint", -1),
        chaser_checkpoint=fields.integer("chaserCheckpoint", -1),
        last_commit_position=fields.integer("lastCommitPosition", -1),
        node_priority=fields.integer("nodePriority", 0),
        timestamp=fields.string("timeStamp"),
    )


def _address(host: str | None, port: int | None) -> Address | None:
    return None if host is None or not port else Address(host, port)


# v20+ names first: a transitional document carrying both forms means the newer one.
_HTTP_FORMS = (("httpEndPointIp", "httpEndPointPort"), ("externalHttpIp", "externalHttpPort"))


class _Fields:
    """Typed access to one JSON object; each malformed field raises naming itself."""

    __slots__ = ("_raw", "_where")

    def __init__(self, raw: Mapping[Any, Any], where: str) -> None:
        self._raw = raw
        self._where = where

    def bad(self, key: str, expected: str, detail: str = "") -> InvalidGossip:
        got = detail or f"got {type(self._raw.get(key)).__name__}"
        return InvalidGossip(f"{self._where}: {key!r} should be {expected}, {got}")

    def string(self, key: str) -> str | None:
        value = self._raw.get(key)
        if value is None or isinstance(value, str):
            return value
        raise self.bad(key, "a string")

    def boolean(self, key: str, *, required: bool = False) -> bool:
        value = self._raw.get(key)
        if isinstance(value, bool):
            return value
        if value is None and not required:
            return False
        raise self.bad(key, "true or false")

    def integer(self, key: str, default: int) -> int:
        value = self._raw.get(key)
        if value is None:
            return default
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.bad(key, "an integer")
        return value

    def port(self, key: str) -> int | None:
        value = self._raw.get(key)
        if value is None:
            return None
        port = self.integer(key, 0)
        if not 0 <= port <= 65535:
            raise self.bad(key, "a port in 0-65535", f"got {port}")
        return port

    def host(self, key: str) -> str | None:
        text = self.string(key)
        if text is None:
            return None
        try:
            # The port only satisfies Address; the host is what is checked and normalised.
            return Address.of((text, EVENTSTORE_HTTP_PORT)).host
        except InvalidAddress as exc:
            raise self.bad(key, "an IP address or host name", str(exc)) from None

    def endpoint(self, host_key: str, port_key: str) -> Address | None:
        return _address(self.host(host_key), self.port(port_key))

    def http_address(self) -> Address:
        """The HTTP endpoint gossip and health checks use; without one a member is useless."""
        for host_key, port_key in _HTTP_FORMS:
            if self._raw.get(host_key) is None and self._raw.get(port_key) is None:
                continue
            host, port = self.host(host_key), self.port(port_key)
            if host is None:
                raise self.bad(host_key, "an IP address or host name")
            if not port:
                raise self.bad(port_key, "a port in 1-65535", f"got {port!r}")
            return Address(host, port)
        raise InvalidGossip(
            f"{self._where}: no HTTP endpoint: neither httpEndPointIp/httpEndPointPort (v20+)"
            " nor externalHttpIp/externalHttpPort (v5)"
        )

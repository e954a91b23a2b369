"""Gossip in photonpump's shapes: members, the original's selectors, and the HTTP probe.

The core parses gossip (:func:`resilient_topology.eventstore.parse_gossip`), so v5 and v20+
documents are read alike and an unknown state name makes only that node ineligible (R10). This
module turns its members into the original's :class:`DiscoveredNode` tuples, keeps the original's
selectors over them, and fetches documents over one shared :class:`aiohttp.ClientSession`, always
with a bounded timeout (the original used aiohttp's default of five minutes and a new session per
fetch).
"""

from __future__ import annotations

import enum
import json
import logging
import random as _random
from collections.abc import Callable, Iterable, Mapping, Sequence
from ssl import SSLContext
from typing import Any, Literal, NamedTuple, TypeAlias

import aiohttp

from resilient_topology.address import Address
from resilient_topology.errors import InvalidGossip
from resilient_topology.eventstore import GossipMember, parse_gossip
from resilient_topology.eventstore import NodeState as CoreNodeState

__all__ = [
    "DEFAULT_GOSSIP_TIMEOUT",
    "DiscoveredNode",
    "GossipProbe",
    "NodeService",
    "NodeState",
    "Scheme",
    "Selector",
    "fetch_new_gossip",
    "gossip_url",
    "prefer_master",
    "prefer_replica",
    "read_gossip",
    "select",
    "select_random",
]

logger = logging.getLogger("photonpump.discovery")

DEFAULT_GOSSIP_TIMEOUT = 2.0
"""Seconds one gossip fetch may take, connection included; the .NET client uses 1 to 5."""

Scheme: TypeAlias = Literal["http", "https"]


class NodeState(enum.Enum):
    """A node's state by name: v20+ names, with the v5 spellings as aliases.

    ``NodeState.Master is NodeState.Leader`` and ``NodeState["Slave"] is NodeState.Follower``, so
    code written against the original keeps working. The original numbered states (an
    ``IntEnum``), but the numbers differ between server versions, so only names mean anything
    here. A name no version defines is :attr:`Unrecognised`.
    """

    Initializing = "Initializing"
    DiscoverLeader = "DiscoverLeader"
    Unknown = "Unknown"
    PreReplica = "PreReplica"
    CatchingUp = "CatchingUp"
    Clone = "Clone"
    Follower = "Follower"
    PreLeader = "PreLeader"
    Leader = "Leader"
    Manager = "Manager"
    ShuttingDown = "ShuttingDown"
    Shutdown = "Shutdown"
    ReadOnlyLeaderless = "ReadOnlyLeaderless"
    PreReadOnlyReplica = "PreReadOnlyReplica"
    ReadOnlyReplica = "ReadOnlyReplica"
    ResigningLeader = "ResigningLeader"
    Unrecognised = "Unrecognised"
    # v5 spellings, deliberately aliases of the v20+ members.
    Master = "Leader"  # noqa: PIE796
    Slave = "Follower"  # noqa: PIE796
    PreMaster = "PreLeader"  # noqa: PIE796

    @classmethod
    def from_name(cls, name: str) -> NodeState:
        """The state a gossip name stands for (either vocabulary, any case); never fails."""
        return cls.from_core(CoreNodeState.from_name(name))

    @classmethod
    def from_core(cls, state: CoreNodeState) -> NodeState:
        return cls(state.value)

    @property
    def core(self) -> CoreNodeState:
        """The same state in the core's enum."""
        return CoreNodeState(self.value)


class NodeService(NamedTuple):
    """An endpoint: ``address`` and ``port``, and the node's TLS port when it has one."""

    address: str
    port: int
    secure_port: int | None = None


class DiscoveredNode(NamedTuple):
    """One gossip member, as the original's selectors receive it.

    Endpoints a document leaves out (or gives port 0) are ``None``; a node without
    ``external_tcp`` cannot be connected to and is never selected.
    """

    state: NodeState
    is_alive: bool
    internal_tcp: NodeService | None
    external_tcp: NodeService | None
    internal_http: NodeService | None
    external_http: NodeService | None


# --- reading documents ------------------------------------------------------------------------


def read_gossip(data: Mapping[str, Any] | str | bytes | None) -> list[DiscoveredNode]:
    """The members of a gossip document (decoded JSON, or its text), in the order sent.

    Reads v5 and v20+ field names. An unknown state name gives :attr:`NodeState.Unrecognised`
    for that member only; anything malformed raises
    :class:`~resilient_topology.errors.InvalidGossip` naming the member and field. An empty
    document (``None``, ``{}``) has no members, as in the original.
    """
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise InvalidGossip(f"gossip is not valid JSON: {exc}") from exc
    if not data:
        return []
    if not isinstance(data, Mapping):
        raise InvalidGossip(f"gossip should be a JSON object, got {type(data).__name__}")
    gossip = parse_gossip(data)
    raws: Sequence[Any] = data["members"]
    return [_node(member, raw) for member, raw in zip(gossip.members, raws, strict=True)]


def _node(member: GossipMember, raw: Mapping[str, Any]) -> DiscoveredNode:
    secure = member.secure_tcp_address
    tcp = member.tcp_address or secure
    internal_http = _service(raw, "internalHttpIp", "internalHttpPort") or _service(
        raw, "internalHttpEndPointIp", "internalHttpEndPointPort"
    )
    return DiscoveredNode(
        state=NodeState.from_core(member.state),
        is_alive=member.is_alive,
        internal_tcp=_service(raw, "internalTcpIp", "internalTcpPort", "internalSecureTcpPort"),
        external_tcp=None if tcp is None else _from_address(tcp, secure),
        internal_http=internal_http,
        external_http=_from_address(member.http_address),
    )


def _service(
    raw: Mapping[str, Any], ip_key: str, port_key: str, secure_key: str | None = None
) -> NodeService | None:
    """An endpoint the core does not read (internal ones); anything odd reads as absent."""
    host = raw.get(ip_key)
    secure = _port(raw.get(secure_key)) if secure_key else None
    port = _port(raw.get(port_key)) or secure  # a node may offer only TLS on an interface
    if not isinstance(host, str) or not host or port is None:
        return None
    return NodeService(host, port, secure)


def _port(value: object) -> int | None:
    return value if type(value) is int and 0 < value < 65536 else None


def _from_address(address: Address, secure: Address | None = None) -> NodeService:
    port = address.port
    assert port is not None  # gossip endpoints always carry a port
    return NodeService(address.host, port, None if secure is None else secure.port)


def as_address(node: NodeService) -> Address:
    """The core's (normalised) address of an endpoint."""
    return Address.of((node.address, node.port))


Selector: TypeAlias = Callable[[list[DiscoveredNode]], DiscoveredNode | None]
"""The original's selector: picks one of the eligible nodes, or ``None``."""


# --- selectors --------------------------------------------------------------------------------

_ELIGIBLE = frozenset(
    {NodeState.Leader, NodeState.Follower, NodeState.ReadOnlyReplica, NodeState.ReadOnlyLeaderless}
)
# prefer_master's order: the original took the highest v5 state number (Master, Slave, Clone).
_RANK = {
    NodeState.Leader: 3,
    NodeState.Follower: 2,
    NodeState.ReadOnlyReplica: 1,
    NodeState.ReadOnlyLeaderless: 1,
    NodeState.Clone: 0,
}


def prefer_master(nodes: Sequence[DiscoveredNode]) -> DiscoveredNode | None:
    """The leader if there is one, else a follower, a read-only replica, a clone.

    Deterministic, as in the original: of equals, the first listed wins.
    """
    if not nodes:
        return None
    return max(nodes, key=lambda node: _RANK.get(node.state, -1))


def prefer_replica(
    nodes: Sequence[DiscoveredNode], *, rng: _random.Random | None = None
) -> DiscoveredNode | None:
    """A random node that is not the leader, else the first leader (as the original did)."""
    replicas = [node for node in nodes if node.state is not NodeState.Leader]
    if replicas:
        return (rng or _random).choice(replicas)
    return nodes[0] if nodes else None


def select_random(
    nodes: Sequence[DiscoveredNode], *, rng: _random.Random | None = None
) -> DiscoveredNode | None:
    """Any of ``nodes``, uniformly (the original ``connect()``'s default)."""
    return (rng or _random).choice(nodes) if nodes else None


def select(
    gossip: Iterable[DiscoveredNode],
    selector: Selector | None = None,
    *,
    include_clones: bool = False,
) -> DiscoveredNode | None:
    """Apply ``selector`` (default :func:`prefer_master`) to the eligible members of ``gossip``.

    Eligible: alive, with an external TCP endpoint, and Leader, Follower, ReadOnlyReplica or
    ReadOnlyLeaderless (Clone too with ``include_clones``; the original always included it).
    An unrecognised state is never eligible, and never stops the others being chosen (R10).
    """
    states = _ELIGIBLE | {NodeState.Clone} if include_clones else _ELIGIBLE
    eligible = [
        node
        for node in gossip
        if node.is_alive and node.state in states and node.external_tcp is not None
    ]
    return (selector or prefer_master)(eligible) if eligible else None


# --- fetching documents -----------------------------------------------------------------------


def gossip_url(address: Address | NodeService, scheme: Scheme = "http") -> str:
    """Where a node serves gossip; ``format=json`` as the .NET client asks."""
    where = address if isinstance(address, Address) else as_address(address)
    return f"{scheme}://{where}/gossip?format=json"


async def _get_document(
    session: aiohttp.ClientSession,
    url: str,
    timeout: float,
    ssl: SSLContext | bool,
) -> Mapping[str, Any]:
    """GET one gossip document; raises on any transport, status or JSON problem."""
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout), ssl=ssl) as response:
        response.raise_for_status()
        document = await response.json(content_type=None)
    if not isinstance(document, Mapping):
        raise InvalidGossip(f"gossip should be a JSON object, got {type(document).__name__}")
    return document


async def fetch_new_gossip(
    session: aiohttp.ClientSession,
    seed: NodeService | None,
    *,
    timeout: float = DEFAULT_GOSSIP_TIMEOUT,
    scheme: Scheme = "http",
    ssl: SSLContext | bool = True,
) -> list[DiscoveredNode] | None:
    """The gossip ``seed`` serves, or ``None`` when it cannot be fetched or read (logged).

    As in the original, no seed gives an empty list. Unlike it, the fetch is bounded by
    ``timeout``; a caller's cancellation still propagates.
    """
    if not seed:
        return []
    url = gossip_url(seed, scheme)
    try:
        return read_gossip(await _get_document(session, url, timeout, ssl))
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        # ValueError covers undecodable JSON and InvalidGossip.
        logger.warning("could not read gossip from %s: %r", url, exc)
        return None


class GossipProbe:
    """The core monitor's :class:`~resilient_topology.drivers.monitor.Probe` for gossip.

    Each check is one GET on the shared session. The members of each document are kept by
    HTTP address (:attr:`members`), so selectors can be given the internal endpoints, which the
    core's descriptions do not carry.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        scheme: Scheme = "http",
        ssl: SSLContext | bool = True,
    ) -> None:
        self._session = session
        self._scheme = scheme
        self._ssl = ssl
        self.members: dict[Address, DiscoveredNode] = {}
        self.last_gossip: list[DiscoveredNode] = []

    async def check(self, address: Address, timeout: float) -> Mapping[str, Any]:
        document = await _get_document(
            self._session, gossip_url(address, self._scheme), timeout, self._ssl
        )
        nodes = read_gossip(document)  # also rejects what the monitor's rules would
        for node in nodes:
            if node.external_http is not None:
                self.members[as_address(node.external_http)] = node
        self.last_gossip = nodes
        return document

"""Finding the node to connect to: one fixed node, or an EventStore cluster through its gossip.

**The interface the connection layer uses** (:class:`Discoverer`)::

    async def discover(self) -> NodeService          # the external TCP endpoint to try next
    def record_success(self, node: NodeService) -> None
    def mark_failed(self, node: NodeService, error: BaseException | None = None) -> None
    async def close(self) -> None                    # idempotent

A *discovery episode* runs from the first ``discover()`` after a success (or ever) to the next
``record_success()``. Every ``mark_failed()`` and every discovery round that finds no node count
as one failed attempt of the episode. ``discover()`` itself waits out the backoff the
:class:`DiscoveryRetryPolicy` sets (capped exponential, with jitter; none before the first
attempt), so the caller should not add a delay of its own; it raises
:class:`~photonpump.exceptions.DiscoveryFailed` once the attempt or deadline budget is spent,
and the next call starts a new episode. It never hides a caller's cancellation, and raises
``DiscoveryFailed`` at once after ``close()``.

``mark_failed(node)`` says the connection to that TCP endpoint failed: cluster discovery asks
every node for fresh gossip, and avoids that endpoint for the rest of the episode while another
eligible node exists (R16). ``next_node()`` and ``record_failure()`` remain as the original's
names for ``discover()`` and ``mark_failed()``.

**Modes** (:func:`get_discoverer`): no ``discovery_host`` gives :class:`SingleNodeDiscovery`; an
IP address, a ``"host:port"`` or comma-separated list, or a sequence of seeds gives
:class:`ClusterDiscovery` over a :class:`StaticSeedFinder`; any other name gives
:class:`ClusterDiscovery` over a :class:`DnsSeedFinder`.

**Cluster discovery** runs the core's gossip monitor
(:class:`~resilient_topology.drivers.monitor.AsyncMonitor`), started by the first ``discover()``:
every seed and every member gossip names is asked for ``/gossip`` every ``gossip_interval``
seconds over one shared HTTP session, each fetch bounded by ``gossip_timeout``; the core's
reducer merges the answers (v5 and v20+ vocabularies, stale leaders ignored) and picks the node
with its node preference, or with one of the original's selectors over :class:`DiscoveredNode`
lists. ``hooks`` receive the monitor's ``LeaderChanged``, ``ServerChanged`` and
``TopologyChanged`` events (nodes are named by their HTTP address, the key of ``description``).
When every seed fails in a round, the seed finder is told, so a DNS name is resolved again.
Gossip goes over ``https`` with ``scheme="https"`` (v20+ secure clusters) and the ``ssl`` given.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random as _random
import time
from collections.abc import Sequence
from dataclasses import replace
from ssl import SSLContext
from typing import Protocol, Self

import aiohttp

from resilient_topology.address import Address
from resilient_topology.backoff import GiveUp, RetryState
from resilient_topology.drivers.monitor import MIN_CHECK_INTERVAL, AsyncMonitor
from resilient_topology.errors import ConfigurationError, ServerSelectionError
from resilient_topology.eventstore import (
    EventStoreClusterSettings,
    NodePreference,
    eligible_state,
    on_gossip_failure,
    on_gossip_reply,
    select_node,
)
from resilient_topology.heartbeat import HeartbeatTracker
from resilient_topology.hooks import HookRegistry
from resilient_topology.server import ServerDescription
from resilient_topology.topology import TopologyDescription

from ._dns import DnsSeedFinder, SeedFinder, StaticSeedFinder
from ._gossip_probe import (
    DEFAULT_GOSSIP_TIMEOUT,
    DiscoveredNode,
    GossipProbe,
    NodeService,
    NodeState,
    Scheme,
    Selector,
    as_address,
    fetch_new_gossip,
    gossip_url,
    prefer_master,
    prefer_replica,
    read_gossip,
    select,
    select_random,
)
from ._retry import KEEP_RETRYING, DiscoveryRetryPolicy, DiscoveryStats
from .exceptions import DiscoveryFailed

__all__ = [
    "DEFAULT_GOSSIP_INTERVAL",
    "DEFAULT_GOSSIP_TIMEOUT",
    "KEEP_RETRYING",
    "ClusterDiscovery",
    "DiscoveredNode",
    "Discoverer",
    "DiscoveryFailed",
    "DiscoveryRetryPolicy",
    "DiscoveryStats",
    "DnsSeedFinder",
    "NodePreference",
    "NodeService",
    "NodeState",
    "SeedFinder",
    "Selector",
    "SingleNodeDiscovery",
    "StaticSeedFinder",
    "fetch_new_gossip",
    "get_discoverer",
    "gossip_url",
    "prefer_master",
    "prefer_replica",
    "read_gossip",
    "select",
    "select_random",
]

logger = logging.getLogger("photonpump.discovery")

DEFAULT_GOSSIP_INTERVAL = 5.0
"""Seconds between two gossip fetches from one node while nothing asks for one sooner."""

# --- discoverers ------------------------------------------------------------------------------


class Discoverer(Protocol):
    """What the connection layer needs; see the module docstring for the contract."""

    async def discover(self) -> NodeService: ...

    def record_success(self, node: NodeService) -> None: ...

    def mark_failed(self, node: NodeService, error: BaseException | None = None) -> None: ...

    async def close(self) -> None: ...


def _now() -> float:
    """The running loop's clock (the monitor's), or the monotonic clock outside a loop."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


class _Discovery:
    """The episode bookkeeping and retry loop both discoverers share."""

    def __init__(self, retry_policy: DiscoveryRetryPolicy | None) -> None:
        self.retry_policy = retry_policy or DiscoveryRetryPolicy.recommended()
        self._episode: RetryState | None = None
        self._closing = asyncio.Event()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def discover(self) -> NodeService:
        while True:
            self._check_open()
            now = _now()
            episode = self._episode = self._episode_or_new(now)
            step = self.retry_policy.next_step(episode, now)
            if isinstance(step, GiveUp):
                self._episode = None  # the next call starts a new episode
                raise DiscoveryFailed(
                    f"discovery {step.message}", attempts=step.attempts, last_error=step.last_error
                ) from step.last_error
            await self._pause(step.delay)
            deadline = self.retry_policy.policy.deadline
            try:
                return await self._attempt(
                    None if deadline is None else episode.started_at + deadline
                )
            except ServerSelectionError as exc:
                logger.info("discovery attempt %d failed: %s", step.attempt, exc)
                self._episode = self._episode_or_new(now).failed(exc)

    async def next_node(self) -> NodeService:
        """The original's name for :meth:`discover`."""
        return await self.discover()

    def record_success(self, node: NodeService) -> None:
        """A connection to ``node`` succeeded: the episode is over."""
        self.retry_policy.record_success(node)
        self._episode = None

    def mark_failed(self, node: NodeService, error: BaseException | None = None) -> None:
        """The connection to ``node`` failed: one failed attempt of the episode."""
        self.retry_policy.record_failure(node)
        self._episode = self._episode_or_new(_now()).failed(
            error or ConnectionError(f"connection to {node} failed")
        )

    def record_failure(self, node: NodeService) -> None:
        """The original's name for :meth:`mark_failed`."""
        self.mark_failed(node)

    async def close(self) -> None:
        self._closed = True
        self._closing.set()

    async def _attempt(self, deadline: float | None) -> NodeService:
        """One try at finding a node; raises ``ServerSelectionError`` when there is none."""
        raise NotImplementedError

    async def _pause(self, delay: float) -> None:
        """Wait ``delay`` seconds, or until closed (then raise)."""
        if delay <= 0:
            return
        try:
            async with asyncio.timeout(delay):
                await self._closing.wait()
        except TimeoutError:
            return
        self._check_open()

    def _episode_or_new(self, now: float) -> RetryState:
        return RetryState.begin(now) if self._episode is None else self._episode

    def _check_open(self) -> None:
        if self._closed:
            raise DiscoveryFailed("the discoverer is closed")


class SingleNodeDiscovery(_Discovery):
    """Always the one given node; the retry policy paces and bounds the reconnects."""

    def __init__(self, node: NodeService, retry_policy: DiscoveryRetryPolicy | None = None) -> None:
        super().__init__(retry_policy)
        self.node = node

    async def _attempt(self, deadline: float | None) -> NodeService:
        return self.node


class ClusterDiscovery(_Discovery):
    """A cluster's nodes through gossip; see the module docstring.

    ``selector`` is one of the original's selectors (or any callable over
    :class:`DiscoveredNode` lists) or a core :class:`NodePreference`; the default is
    ``NodePreference.LEADER``. ``scheme="https"`` and ``ssl`` (an ``SSLContext``, or ``False``
    to skip verification) are for v20+ clusters serving gossip over TLS. A ``session`` passed in
    is used but not closed.
    """

    def __init__(
        self,
        seed_finder: SeedFinder,
        retry_policy: DiscoveryRetryPolicy | None = None,
        selector: Selector | NodePreference | None = None,
        *,
        include_clones: bool = False,
        gossip_timeout: float = DEFAULT_GOSSIP_TIMEOUT,
        gossip_interval: float = DEFAULT_GOSSIP_INTERVAL,
        scheme: Scheme = "http",
        ssl: SSLContext | bool = True,
        hooks: HookRegistry | None = None,
        session: aiohttp.ClientSession | None = None,
        rng: _random.Random | None = None,
    ) -> None:
        super().__init__(retry_policy)
        if not gossip_timeout > 0:
            raise ConfigurationError(f"gossip_timeout must be positive, got {gossip_timeout!r}")
        if not gossip_interval >= MIN_CHECK_INTERVAL:
            raise ConfigurationError(
                f"gossip_interval must be at least {MIN_CHECK_INTERVAL} s, got {gossip_interval!r}"
            )
        if scheme not in ("http", "https"):
            raise ConfigurationError(f"scheme must be 'http' or 'https', got {scheme!r}")
        self.seeds = seed_finder
        self.selector: Selector | None = None
        self.node_preference = NodePreference.LEADER
        if isinstance(selector, NodePreference):
            self.node_preference = selector
        else:
            self.selector = selector
        self.include_clones = include_clones
        self.hooks = hooks if hooks is not None else HookRegistry()
        self._gossip_timeout = gossip_timeout
        self._gossip_interval = gossip_interval
        # Long enough for every node to be checked, and a known one retried, once.
        self._round_timeout = 2 * gossip_timeout + MIN_CHECK_INTERVAL
        self._scheme = scheme
        self._ssl = ssl
        self._session = session
        self._owns_session = session is None
        self._rng = rng or _random.Random()
        self._monitor: AsyncMonitor | None = None
        self._probe: GossipProbe | None = None
        self._monitor_seeds: dict[Address, NodeService] = {}
        self._lock = asyncio.Lock()
        self._skipped: set[Address] = set()
        self._failed_at: float | None = None

    # --- what callers can look at -------------------------------------------------------------

    @property
    def description(self) -> TopologyDescription | None:
        """The cluster as the latest gossip describes it; ``None`` before the first discover."""
        return None if self._monitor is None else self._monitor.description

    @property
    def heartbeats(self) -> HeartbeatTracker | None:
        """The monitor's record of every gossip fetch; ``None`` before the first discover."""
        return None if self._monitor is None else self._monitor.heartbeats

    @property
    def last_gossip(self) -> list[DiscoveredNode]:
        """The members of the latest gossip document received."""
        return [] if self._probe is None else list(self._probe.last_gossip)

    # --- the interface ------------------------------------------------------------------------

    def record_success(self, node: NodeService) -> None:
        super().record_success(node)
        self._skipped.clear()
        self._failed_at = None

    def mark_failed(self, node: NodeService, error: BaseException | None = None) -> None:
        super().mark_failed(node, error)
        self._skipped.add(as_address(node))
        self._failed_at = _now()
        if self._monitor is not None:
            for address in self._monitor.description.servers:
                self._monitor.request_check(address)

    async def close(self) -> None:
        """Stop the monitor and close the session and resolver this object made. Idempotent."""
        if self._closed:
            return
        await super().close()
        monitor, self._monitor = self._monitor, None
        session, self._session = self._session, None
        try:
            if monitor is not None:
                await monitor.aclose()
        finally:
            try:
                if session is not None and self._owns_session:
                    await session.close()
            finally:
                closer = getattr(self.seeds, "close", None)  # the original's finders had none
                if closer is not None:
                    await closer()

    # --- one round ----------------------------------------------------------------------------

    async def _attempt(self, deadline: float | None) -> NodeService:
        monitor, started_now = await self._ensure_monitor()
        started = _now()
        if not started_now:
            for address in monitor.description.servers:
                monitor.request_check(address)
        limit = self._round_timeout
        if deadline is not None:
            limit = max(0.0, min(limit, deadline - started))
        try:
            description = await monitor.wait_for(
                lambda d: self._settled(d, started), limit, what="an eligible EventStore node"
            )
        except ServerSelectionError:
            self._check_open()
            description = monitor.description  # the round is over: use what is known
        self._check_open()
        node = self._choose(description)
        if node is not None:
            return node
        if self._exhausted(description, started):
            for seed in self._monitor_seeds.values():
                self.seeds.mark_failed(seed)
        raise ServerSelectionError(f"no eligible EventStore node: {_summary(description)}")

    async def _ensure_monitor(self) -> tuple[AsyncMonitor, bool]:
        """The running monitor, restarted when the seeds changed (a DNS name re-resolved)."""
        async with self._lock:
            try:
                seeds = await self.seeds.gossip_seeds()
            except Exception as exc:  # a seed source's failure is a failed attempt, not a crash
                raise ServerSelectionError(f"no gossip seed: {exc}") from exc
            by_address = {as_address(seed): seed for seed in seeds}
            if not by_address:
                raise ServerSelectionError("no gossip seed")
            self._check_open()
            old = self._monitor
            if old is not None and by_address.keys() == self._monitor_seeds.keys():
                return old, False
            # No await from the open check to the assignment: close() sees the new monitor.
            if self._session is None:
                self._session = aiohttp.ClientSession()
            cluster = EventStoreClusterSettings(
                tuple(by_address), self.node_preference, self.include_clones
            )
            probe = GossipProbe(self._session, scheme=self._scheme, ssl=self._ssl)
            monitor = AsyncMonitor(
                replace(cluster.topology_settings, heartbeat_frequency=self._gossip_interval),
                probe,
                topology_id="photonpump-discovery",
                check_timeout=self._gossip_timeout,
                on_reply=on_gossip_reply,
                on_failure=on_gossip_failure,
                hooks=self.hooks,
                initial=cluster.initial_description(),
            )
            monitor.start()
            self._monitor, self._probe = monitor, probe
            self._monitor_seeds = by_address
            if old is not None:
                await old.aclose()
            return monitor, True

    def _settled(self, description: TopologyDescription, started: float) -> bool:
        """Stop waiting: a usable node (in gossip newer than the last failure), or none left."""
        if self._closed:
            return True
        if self._candidates(description) and self._fresh(description):
            return True
        return self._exhausted(description, started)

    def _fresh(self, description: TopologyDescription) -> bool:
        failed_at = self._failed_at
        return failed_at is None or any(
            server.is_known and (server.last_update_time or float("-inf")) >= failed_at
            for server in description.servers.values()
        )

    @staticmethod
    def _exhausted(description: TopologyDescription, started: float) -> bool:
        """Every node was checked since ``started``, and none answered usefully."""
        return all(
            not server.is_known
            and server.last_update_time is not None
            and server.last_update_time >= started
            for server in description.servers.values()
        )

    def _candidates(self, description: TopologyDescription) -> list[ServerDescription]:
        return [
            server
            for server in description.servers.values()
            if eligible_state(server, include_clones=self.include_clones) is not None
            and _tcp_service(server) is not None
        ]

    def _choose(self, description: TopologyDescription) -> NodeService | None:
        candidates = self._candidates(description)
        # A failed endpoint is avoided while there is another; alone, it is tried again.
        preferred = [
            c for c in candidates if as_address(_require_tcp(c)) not in self._skipped
        ] or candidates
        if self.selector is None:
            chosen = select_node(
                preferred, self.node_preference, rng=self._rng, include_clones=self.include_clones
            )
            return None if chosen is None else _require_tcp(chosen)
        picked = (
            self.selector([self._discovered(server) for server in preferred]) if preferred else None
        )
        return None if picked is None else picked.external_tcp

    def _discovered(self, server: ServerDescription) -> DiscoveredNode:
        """A server description as the original's selectors see it."""
        known = None if self._probe is None else self._probe.members.get(server.address)
        http = NodeService(server.address.host, server.address.port or 0, None)
        return DiscoveredNode(
            state=NodeState.from_name(server.tags.get("state", "")),
            is_alive=server.is_known,
            internal_tcp=None if known is None else known.internal_tcp,
            external_tcp=_tcp_service(server),
            internal_http=None if known is None else known.internal_http,
            external_http=http,
        )


def _tcp_service(server: ServerDescription) -> NodeService | None:
    secure = server.endpoints.get("secure_tcp")
    tcp = server.endpoints.get("tcp") or secure
    if tcp is None or tcp.port is None:
        return None
    return NodeService(tcp.host, tcp.port, None if secure is None else secure.port)


def _require_tcp(server: ServerDescription) -> NodeService:
    service = _tcp_service(server)
    assert service is not None  # candidates are filtered on it
    return service


def _summary(description: TopologyDescription) -> str:
    parts = [
        f"{address} {server.error or server.tags.get('state', 'no usable state')}"
        for address, server in description.servers.items()
    ]
    return "; ".join(parts) or "no node known"


# --- the factory ------------------------------------------------------------------------------


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def get_discoverer(
    host: str | None,
    port: int,
    discovery_host: str | Sequence[str | NodeService] | None,
    discovery_port: int,
    selector: Selector | NodePreference | None = None,
    retry_policy: DiscoveryRetryPolicy | None = None,
    *,
    gossip_timeout: float = DEFAULT_GOSSIP_TIMEOUT,
    gossip_interval: float = DEFAULT_GOSSIP_INTERVAL,
    scheme: Scheme = "http",
    ssl: SSLContext | bool = True,
    hooks: HookRegistry | None = None,
) -> SingleNodeDiscovery | ClusterDiscovery:
    """The discoverer the original's ``connect()`` arguments ask for (see the module docstring).

    No I/O happens here and no running loop is needed; the default retry policy is
    :meth:`DiscoveryRetryPolicy.recommended` (the original retried a single node forever).
    """
    policy = retry_policy or DiscoveryRetryPolicy.recommended()
    if discovery_host is None:
        return SingleNodeDiscovery(NodeService(host or "localhost", port, None), policy)
    finder: SeedFinder
    if not isinstance(discovery_host, str):
        finder = StaticSeedFinder(discovery_host, default_port=discovery_port)
    elif _is_ip(discovery_host):
        finder = StaticSeedFinder([NodeService(discovery_host, discovery_port, None)])
    elif "," in discovery_host or ":" in discovery_host:
        seeds = [part.strip() for part in discovery_host.split(",") if part.strip()]
        finder = StaticSeedFinder(seeds, default_port=discovery_port)
    else:
        finder = DnsSeedFinder(discovery_host, None, discovery_port)
    return ClusterDiscovery(
        finder,
        policy,
        selector,
        gossip_timeout=gossip_timeout,
        gossip_interval=gossip_interval,
        scheme=scheme,
        ssl=ssl,
        hooks=hooks,
    )

"""The Python API: ``Cluster``, a simulated EventStore cluster of 1 to 5 nodes, with faults.

Used with ``with``, the nodes run on an event loop in a background thread, so synchronous tests
and programs can use them; used with ``async with``, on the caller's loop. Every node has a TCP
port (the client protocol) and an HTTP port (``GET /gossip``). All nodes share one log (instant
replication). When the leader dies, is partitioned or steps down, there is no leader for
``election_delay`` seconds, then the first reachable live node leads with a new epoch.
"""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime
from typing import Any, Literal

from .._hosting import LoopHost
from ..errors import SimulatorConfigurationError
from .gossip import GossipServer, MemberView, gossip_document
from .node import Node
from .state import AccessRule, ClusterState

__all__ = ["MAX_NODES", "Cluster"]

MAX_NODES = 5


class Cluster(LoopHost):
    """A simulated EventStore cluster on loopback."""

    _thread_name = "clustersim-eventstore"

    def __init__(
        self,
        nodes: int = 3,
        *,
        gossip: Literal["v5", "v20"] = "v5",
        tcp_ports: list[int] | None = None,
        http_ports: list[int] | None = None,
        election_delay: float = 0.0,
        startup_delay: float = 0.0,
        heartbeat_interval: float = 2.0,
        heartbeat_timeout: float = 1.0,
        read_only_replicas: int = 0,
        max_frame_size: int = 64 * 1024 * 1024,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__()
        if not 1 <= nodes <= MAX_NODES:
            raise SimulatorConfigurationError(f"a cluster has 1 to {MAX_NODES} nodes, not {nodes}")
        if gossip not in ("v5", "v20"):
            raise SimulatorConfigurationError(f"gossip must be 'v5' or 'v20', not {gossip!r}")
        if read_only_replicas and (gossip == "v5" or read_only_replicas >= nodes):
            raise SimulatorConfigurationError(
                "read-only replicas need v20 gossip and at least one other node"
            )
        for name, ports in (("tcp_ports", tcp_ports), ("http_ports", http_ports)):
            if ports is not None and len(ports) != nodes:
                raise SimulatorConfigurationError(f"give one port per node in {name}, or none")
        self.nodes = nodes
        self.vocabulary = gossip
        self.election_delay = election_delay
        self.startup_delay = startup_delay
        self._tcp_ports = tcp_ports or [0] * nodes
        self._http_ports = http_ports or [0] * nodes
        self._heartbeat = (heartbeat_interval, heartbeat_timeout)
        self._read_only = read_only_replicas
        self._max_frame_size = max_frame_size
        self._tls = tls  # a server context: every node's TCP port speaks TLS (secure TCP)
        self._state: ClusterState | None = None
        self._nodes: list[Node] = []
        self._gossip: list[GossipServer] = []
        self._election: asyncio.TimerHandle | None = None
        self._ready_timers: dict[int, asyncio.TimerHandle] = {}

    # --- lifecycle -----------------------------------------------------------------------------

    async def _start(self) -> None:
        state = self._state = ClusterState(self.nodes)
        for index in range(self.nodes):
            state.roles[index].read_only = index >= self.nodes - self._read_only
            node = Node(
                state,
                index,
                port=self._tcp_ports[index],
                heartbeat_interval=self._heartbeat[0],
                heartbeat_timeout=self._heartbeat[1],
                max_frame_size=self._max_frame_size,
                ssl_context=self._tls,
            )
            gossip = GossipServer(self._provider(index), port=self._http_ports[index])
            self._nodes.append(node)
            self._gossip.append(gossip)
        try:
            for index in range(self.nodes):
                await self._bring_up(index, ready=True)
        except OSError as exc:
            await self._stop()
            raise SimulatorConfigurationError(f"cannot start the cluster: {exc}") from exc
        state.elect()

    async def _bring_up(self, index: int, *, ready: bool) -> None:
        state = self.state
        await self._nodes[index].start()
        await self._gossip[index].start()
        role = state.roles[index]
        role.tcp = ("127.0.0.1", self._nodes[index].port)
        role.http = self._gossip[index].address
        role.alive, role.ready = True, ready

    async def _stop(self) -> None:
        for timer in [self._election, *self._ready_timers.values()]:
            if timer is not None:
                timer.cancel()
        self._election = None
        self._ready_timers.clear()
        for node in self._nodes:
            await node.stop()
        for gossip in self._gossip:
            await gossip.stop()
        self._nodes, self._gossip = [], []
        if self._state is not None:
            self._state.close()

    @property
    def state(self) -> ClusterState:
        if self._state is None:
            raise SimulatorConfigurationError("the cluster is not running")
        return self._state

    # --- what clients need ---------------------------------------------------------------------

    @property
    def tcp_addresses(self) -> list[str]:
        return [f"{r.tcp[0]}:{r.tcp[1]}" for r in self.state.roles]

    @property
    def gossip_seeds(self) -> list[str]:
        return [f"{r.http[0]}:{r.http[1]}" for r in self.state.roles]

    @property
    def leader(self) -> int | None:
        return self.state.leader

    def node(self, index: int) -> Node:
        return self._nodes[self._check(index)]

    # --- gossip --------------------------------------------------------------------------------

    def _provider(self, index: int) -> Any:
        def provide() -> dict[str, Any] | None:
            state = self.state
            role = state.roles[index]
            if not role.alive or role.partitioned:
                return None
            views = [self._view(r.index, seen_from=index) for r in state.roles]
            return gossip_document(views, vocabulary=self.vocabulary, server=role.http)

        return provide

    def _view(self, index: int, *, seen_from: int) -> MemberView:
        state = self.state
        role = state.roles[index]
        alive = role.alive and not (role.partitioned and index != seen_from)
        if not role.ready:
            name = "Initializing"
        elif state.leader == index:
            name = "Leader"
        elif role.read_only:
            name = "ReadOnlyReplica"
        elif state.leader is None:
            name = "Unknown"
        else:
            name = "Follower"
        checkpoint = state.log.last_position + 1
        return MemberView(
            instance_id=role.instance_id,
            state=name,
            is_alive=alive,
            tcp=role.tcp,
            http=role.http,
            epoch_number=max(state.epoch_number, 0),
            epoch_id=state.epoch_id,
            writer_checkpoint=checkpoint,
            chaser_checkpoint=checkpoint,
            last_commit_position=max(state.log.last_position, 0),
            timestamp=datetime.now(UTC),
        )

    # --- faults --------------------------------------------------------------------------------

    def _check(self, index: int) -> int:
        self._require_loop()
        if not 0 <= index < self.nodes:
            raise SimulatorConfigurationError(f"no node {index} in a {self.nodes}-node cluster")
        return index

    def _leader_lost(self, old: int) -> None:
        state = self.state
        state.leader = None
        if self._election is not None:
            self._election.cancel()

        def hold() -> None:
            self._election = None
            if state.leader is None:
                state.elect(exclude=old)

        if self.election_delay > 0:
            self._election = self._require_loop().call_later(self.election_delay, hold)
        else:
            hold()

    async def akill(self, index: int) -> None:
        """Stop node ``index`` like a killed process: listeners and connections closed."""
        self._check(index)
        role = self.state.roles[index]
        role.alive = role.ready = False
        if self.state.leader == index:
            self._leader_lost(index)
        await self._nodes[index].stop()
        await self._gossip[index].stop()

    def kill(self, index: int) -> None:
        self._on_loop(self.akill(index))

    async def arestart(self, index: int) -> None:
        """Bring node ``index`` back on its ports, ``NotReady`` for ``startup_delay`` seconds."""
        self._check(index)
        if self.state.roles[index].alive:
            return
        await self._bring_up(index, ready=self.startup_delay <= 0)
        if self.startup_delay > 0:

            def ready() -> None:
                self._ready_timers.pop(index, None)
                self.state.roles[index].ready = True
                self._elect_if_leaderless()

            loop = self._require_loop()
            self._ready_timers[index] = loop.call_later(self.startup_delay, ready)
        self._elect_if_leaderless()

    def restart(self, index: int) -> None:
        self._on_loop(self.arestart(index))

    def _elect_if_leaderless(self) -> None:
        if self.state.leader is None and self._election is None:
            self.state.elect()

    def step_down(self) -> int | None:
        """The leader resigns; another node leads after ``election_delay``. Returns the old one."""

        def work() -> int | None:
            old = self.state.leader
            if old is not None:
                self._leader_lost(old)
            return old

        result: int | None = self._call(work)
        return result

    async def apartition(self, index: int) -> None:
        """Cut node ``index`` off: its connections drop, it accepts none and gossips nothing."""
        self._check(index)
        self.state.roles[index].partitioned = True
        if self.state.leader == index:
            self._leader_lost(index)
        await self._nodes[index].drop_connections()

    def partition(self, index: int) -> None:
        self._on_loop(self.apartition(index))

    def heal(self, index: int) -> None:
        self._check(index)

        def work() -> None:
            self.state.roles[index].partitioned = False
            self._elect_if_leaderless()

        self._call(work)

    def slow(self, index: int, ms: float) -> None:
        """Delay every reply of node ``index`` (and its gossip) by ``ms`` milliseconds."""
        self._check(index)

        def work() -> None:
            self._nodes[index].delay = ms / 1000
            self._gossip[index].delay = ms / 1000

        self._call(work)

    async def adrop_connections(self, index: int | None = None) -> None:
        """Close client connections of node ``index`` (every node when None); they may reconnect."""
        targets = self._nodes if index is None else [self._nodes[self._check(index)]]
        for node in targets:
            await node.drop_connections()

    def drop_connections(self, index: int | None = None) -> None:
        self._on_loop(self.adrop_connections(index))

    def stop_heartbeats(self, index: int | None = None, *, stopped: bool = True) -> None:
        """Node(s) neither answer nor send heartbeats (``stopped=False`` restores them)."""
        targets = self._nodes if index is None else [self._nodes[self._check(index)]]

        def work() -> None:
            for node in targets:
                node.answer_heartbeats = node.send_heartbeats = not stopped

        self._call(work)

    def set_not_ready(self, index: int, not_ready: bool = True) -> None:
        self._call(setattr, self._nodes[self._check(index)], "not_ready", not_ready)

    def set_too_busy(self, index: int, too_busy: bool = True) -> None:
        self._call(setattr, self._nodes[self._check(index)], "too_busy", too_busy)

    # --- users ---------------------------------------------------------------------------------

    def add_user(self, username: str, password: str) -> None:
        self._call(self.state.users.__setitem__, username, password)

    def restrict(self, stream: str, *, readers: set[str | None], writers: set[str | None]) -> None:
        """Only these users (None: unauthenticated) may read / write ``stream`` (admin always)."""
        rule = AccessRule(frozenset(readers), frozenset(writers))
        self._call(self.state.rules.__setitem__, stream, rule)

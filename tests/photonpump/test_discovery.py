"""Discovery: gossip in both vocabularies, selectors, failover, seeds, DNS, budgets, lifecycle.

Real sockets throughout: clusters from clustersim, a loopback DNS server, an aiohttp server for
hand-written documents. Every wait is bounded; no test asserts on timing.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiodns
import aiohttp
import pytest
from aiohttp import web
from clustersim.eventstore import Cluster
from photonpump import discovery
from photonpump.discovery import (
    KEEP_RETRYING,
    ClusterDiscovery,
    DiscoveredNode,
    DiscoveryFailed,
    DiscoveryRetryPolicy,
    DnsSeedFinder,
    NodePreference,
    NodeService,
    NodeState,
    SingleNodeDiscovery,
    StaticSeedFinder,
    fetch_new_gossip,
    get_discoverer,
    gossip_url,
    prefer_master,
    prefer_replica,
    read_gossip,
    select,
    select_random,
)

from resilient_topology import Address, LeaderChanged, RetryState
from resilient_topology.errors import ConfigurationError, InvalidGossip, ServerSelectionError
from resilient_topology.eventstore import GossipMember, eligible_state
from resilient_topology.eventstore import NodeState as CoreNodeState

from ._dns_server import DnsServer

BOUND = 10.0  # seconds any single wait in these tests may take before the test fails


def fast_policy(
    retries: int = KEEP_RETRYING, deadline: float | None = 20.0
) -> DiscoveryRetryPolicy:
    return DiscoveryRetryPolicy(retries, 0.01, 0, 2.0, 0.05, deadline=deadline)


def cluster_discovery(seeds: Any, selector: Any = None, **options: Any) -> ClusterDiscovery:
    finder = seeds if not isinstance(seeds, list) else StaticSeedFinder(seeds)
    options.setdefault("retry_policy", fast_policy())
    return ClusterDiscovery(
        finder, selector=selector, gossip_timeout=0.5, gossip_interval=0.5, **options
    )


def tcp(es: Cluster, index: int) -> NodeService:
    host, port = es.tcp_addresses[index].rsplit(":", 1)
    return NodeService(host, int(port), None)


def http(es: Cluster, index: int) -> Address:
    return Address.of(es.gossip_seeds[index])


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def eventually(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(BOUND):
        while not predicate():  # noqa: ASYNC110 - the predicates read plain state
            await asyncio.sleep(0.02)


# --- documents, states and selectors (no I/O) --------------------------------------------------


def member(state: str, index: int, *, v20: bool = True, alive: bool = True) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "state": state,
        "isAlive": alive,
        "internalTcpIp": f"10.0.0.{index}",
        "internalTcpPort": 1112,
        "externalTcpIp": f"192.168.0.{index}",
        "externalTcpPort": 1113,
        "externalSecureTcpPort": 0,
        "epochNumber": 7,
    }
    if v20:
        raw |= {"httpEndPointIp": f"192.168.0.{index}", "httpEndPointPort": 2113}
    else:
        raw |= {
            "internalHttpIp": f"10.0.0.{index}",
            "internalHttpPort": 2112,
            "externalHttpIp": f"192.168.0.{index}",
            "externalHttpPort": 2113,
        }
    return raw


def test_node_state_has_every_core_name_and_the_v5_aliases() -> None:
    assert {s.value for s in NodeState} == {s.value for s in CoreNodeState}
    assert NodeState["Master"] is NodeState.Leader
    assert NodeState("Leader").name == "Leader"
    assert NodeState["Slave"] is NodeState.Follower
    assert NodeState.from_name("premaster") is NodeState.PreLeader
    assert NodeState.from_name("Tentative") is NodeState.Unrecognised


@pytest.mark.parametrize("v20", [False, True], ids=["v5", "v20"])
def test_read_gossip_reads_both_vocabularies(v20: bool) -> None:
    leader, follower = ("Leader", "Follower") if v20 else ("Master", "Slave")
    document = {"members": [member(leader, 1, v20=v20), member(follower, 2, v20=v20)]}
    nodes = read_gossip(document)
    assert [n.state for n in nodes] == [NodeState.Leader, NodeState.Follower]
    assert nodes[0].external_tcp == NodeService("192.168.0.1", 1113, None)
    assert nodes[0].internal_tcp == NodeService("10.0.0.1", 1112, None)
    assert nodes[0].external_http == NodeService("192.168.0.1", 2113, None)
    assert nodes[0].internal_http == (None if v20 else NodeService("10.0.0.1", 2112, None))
    assert select(nodes) == nodes[0]
    assert read_gossip(None) == []
    assert read_gossip({}) == []


def test_an_unknown_state_makes_only_that_node_ineligible() -> None:
    """R10: the original raised KeyError on any name it did not know and stopped connecting."""
    document = {
        "members": [
            member("Tentative", 1),
            member("Follower", 2),
            member("ReadOnlyReplica", 3),
            member("Leader", 4),
        ]
    }
    nodes = read_gossip(document)
    assert nodes[0].state is NodeState.Unrecognised
    assert select(nodes) == nodes[3]
    for _ in range(20):
        chosen = select(nodes, select_random)
        assert chosen is not None
        assert chosen.state is not NodeState.Unrecognised
    alone = read_gossip({"members": [member("Tentative", 1)]})
    assert select(alone) is None


def test_malformed_gossip_names_what_is_wrong() -> None:
    with pytest.raises(InvalidGossip, match="isAlive"):
        read_gossip({"members": [{**member("Leader", 1), "isAlive": "yes"}]})
    with pytest.raises(InvalidGossip, match="JSON"):
        read_gossip("{not json")


@pytest.mark.parametrize("state", [s for s in CoreNodeState if s is not CoreNodeState.UNRECOGNISED])
def test_select_eligibility_agrees_with_the_core(state: CoreNodeState) -> None:
    raw = member(state.value, 1)
    core_member = GossipMember(
        http_address=Address("192.168.0.1", 2113),
        raw_state=state.value,
        state=state,
        is_alive=True,
        tcp_address=Address("192.168.0.1", 1113),
    )
    for clones in (False, True):
        expected = eligible_state(core_member, include_clones=clones) is not None
        assert (select(read_gossip({"members": [raw]}), include_clones=clones) is not None) is (
            expected
        )


def test_selectors_keep_the_originals_behaviour() -> None:
    leader, f1, f2, clone = (
        DiscoveredNode(state, True, None, NodeService(f"h{i}", 1113), None, None)
        for i, state in enumerate(
            [NodeState.Leader, NodeState.Follower, NodeState.Follower, NodeState.Clone]
        )
    )
    assert prefer_master([f1, clone, leader, f2]) is leader
    assert prefer_master([f2, f1, clone]) is f2  # first of equals, deterministically
    rng = random.Random(1)
    assert {prefer_replica([leader, f1, f2], rng=rng) for _ in range(50)} == {f1, f2}
    assert prefer_replica([leader]) is leader
    assert {select_random([leader, f1, f2], rng=rng) for _ in range(50)} == {leader, f1, f2}
    for selector in (prefer_master, prefer_replica, select_random):
        assert selector([]) is None
    assert select([clone]) is None
    assert select([clone], include_clones=True) is clone


# --- the retry policy (pure) ------------------------------------------------------------------


def test_backoff_is_exponential_and_honours_its_cap() -> None:
    """R16: the original grew 0.75 s per failure, forever; here max_interval is enforced."""
    highest = DiscoveryRetryPolicy(KEEP_RETRYING, 0.5, 0.5, 1.5, 4.0, random=lambda: 1.0)
    delays = [highest.delay(n) for n in range(60)]
    assert delays[0] == 0.0
    assert delays[1:4] == [0.5, 0.75, 1.125]
    assert all(a <= b for a, b in itertools.pairwise(delays))
    assert max(delays) == 4.0
    assert delays[-1] == 4.0
    lowest = DiscoveryRetryPolicy(KEEP_RETRYING, 0.5, 0.5, 1.5, 4.0, random=lambda: 0.0)
    assert {lowest.delay(n) for n in range(60)} == {0.0}
    spread = DiscoveryRetryPolicy(KEEP_RETRYING, 0.5, 0.5, 1.5, 4.0, random=random.random)
    assert all(0.0 <= spread.delay(n) <= 4.0 for n in range(1000))
    none = DiscoveryRetryPolicy(3, 0.5, 0, 1.5, 4.0)
    assert [none.delay(n) for n in range(1, 4)] == [0.5, 0.75, 1.125]


def test_policy_budgets_attempts_and_deadline() -> None:
    policy = DiscoveryRetryPolicy(3, 0.5, 0, 2.0, 10.0, deadline=5.0)
    state = RetryState.begin(100.0)
    steps = []
    for _ in range(4):
        steps.append(policy.next_step(state, 100.0))
        state = state.failed(OSError("refused"))
    assert [type(s).__name__ for s in steps] == ["Retry", "Retry", "Retry", "GiveUp"]
    late = policy.next_step(RetryState.begin(100.0).failed(), 105.0)
    assert type(late).__name__ == "GiveUp"
    forever = DiscoveryRetryPolicy(KEEP_RETRYING, 0.5, 0, 2.0, 10.0)
    assert forever.policy.max_attempts is None
    assert forever.policy.deadline is None
    bad: Any
    for bad in (0, -2, True, 1.5):
        with pytest.raises(ConfigurationError):
            DiscoveryRetryPolicy(bad)
    with pytest.raises(ConfigurationError):
        DiscoveryRetryPolicy(3, retry_interval=5, max_interval=1)


def test_policy_keeps_the_originals_per_node_stats() -> None:
    policy = DiscoveryRetryPolicy(2)
    node = NodeService("es", 1113)
    policy.record_failure(node)
    assert policy.should_retry(node)
    policy.record_failure(node)
    assert not policy.should_retry(node)
    policy.record_success(node)
    assert policy.stats[node] == discovery.DiscoveryStats(node, 3, 1, 2, 0)


async def test_static_seeds_are_never_dropped() -> None:
    """R16: the original removed a failed static seed for good."""
    seeds = [NodeService("a", 2113), NodeService("b", 2113)]
    finder = StaticSeedFinder(seeds, rng=random.Random(3))
    seen = []
    for _ in range(6):
        seed = await finder.next()
        assert seed is not None
        seen.append(seed)
        finder.mark_failed(seed)
    assert set(seen[:2]) == set(seen[2:4]) == set(seen[4:]) == set(seeds)
    assert await finder.gossip_seeds() == seeds


def test_get_discoverer_picks_the_originals_modes_without_io() -> None:
    """No running loop here: building a discoverer must start nothing (R20)."""
    single = get_discoverer(None, 1113, None, 2113)
    assert isinstance(single, SingleNodeDiscovery)
    assert single.node == NodeService("localhost", 1113, None)
    static = get_discoverer(None, 1113, "10.1.2.3", 2114)
    assert isinstance(static, ClusterDiscovery)
    assert isinstance(static.seeds, StaticSeedFinder)
    assert static.seeds.seeds == [NodeService("10.1.2.3", 2114, None)]
    listed = get_discoverer(None, 1113, "es1:2115,es2", 2113, selector=prefer_master)
    assert isinstance(listed, ClusterDiscovery)
    assert isinstance(listed.seeds, StaticSeedFinder)
    assert listed.seeds.seeds == [NodeService("es1", 2115), NodeService("es2", 2113)]
    assert listed.selector is prefer_master
    dns = get_discoverer(None, 1113, "eventstore.test", 2113, selector=NodePreference.FOLLOWER)
    assert isinstance(dns, ClusterDiscovery)
    assert isinstance(dns.seeds, DnsSeedFinder)
    assert dns.seeds.resolver is None  # made on first use, on the running loop
    assert gossip_url(Address("es1", 2113), "https") == "https://es1:2113/gossip?format=json"
    with pytest.raises(ConfigurationError):
        ClusterDiscovery(StaticSeedFinder(["es1"]), scheme="ftp")  # type: ignore[arg-type]
    assert dns.node_preference is NodePreference.FOLLOWER
    assert dns.selector is None


# --- a cluster over real sockets ----------------------------------------------------------------


@pytest.fixture
async def cluster3() -> AsyncIterator[Cluster]:
    async with Cluster(3, gossip="v5") as es:
        yield es


@pytest.mark.parametrize("vocabulary", ["v5", "v20"])
async def test_discover_returns_the_leaders_tcp_endpoint(vocabulary: Any) -> None:
    async with Cluster(3, gossip=vocabulary) as es, cluster_discovery(es.gossip_seeds) as finder:
        assert es.leader is not None
        assert await finder.discover() == tcp(es, es.leader)
        assert {n.state for n in finder.last_gossip} == {NodeState.Leader, NodeState.Follower}


async def test_original_selectors_over_a_cluster(cluster3: Cluster) -> None:
    es = cluster3
    leader = es.leader
    assert leader is not None
    everyone = {tcp(es, i) for i in range(3)}
    async with cluster_discovery(es.gossip_seeds, prefer_master) as finder:
        assert await finder.discover() == tcp(es, leader)
    async with cluster_discovery(es.gossip_seeds, prefer_replica) as finder:
        assert await finder.discover() in everyone - {tcp(es, leader)}
    async with cluster_discovery(es.gossip_seeds, select_random) as finder:
        assert {await finder.discover() for _ in range(3)} <= everyone


async def test_node_preferences_over_a_v20_cluster_with_a_read_only_replica() -> None:
    async with Cluster(3, gossip="v20", read_only_replicas=1) as es:
        assert es.leader == 0
        expected = {
            NodePreference.LEADER: tcp(es, 0),
            NodePreference.FOLLOWER: tcp(es, 1),
            NodePreference.READ_ONLY_REPLICA: tcp(es, 2),
        }
        for preference, node in expected.items():
            async with cluster_discovery(es.gossip_seeds, preference) as finder:
                assert await finder.discover() == node, preference
        async with cluster_discovery(es.gossip_seeds, NodePreference.RANDOM) as finder:
            assert await finder.discover() in expected.values()


async def test_a_leader_kill_is_followed_and_reported_to_hooks(cluster3: Cluster) -> None:
    es = cluster3
    old = es.leader
    assert old is not None
    async with cluster_discovery(es.gossip_seeds) as finder:
        moves: list[LeaderChanged] = []
        finder.hooks.register(LeaderChanged, moves.append)
        first = await finder.discover()
        assert first == tcp(es, old)
        finder.record_success(first)
        await es.akill(old)
        finder.mark_failed(first, ConnectionResetError("killed"))
        new = es.leader
        assert new is not None
        assert new != old
        assert await finder.discover() == tcp(es, new)
        await eventually(lambda: bool(moves) and moves[-1].new == http(es, new))
        assert moves[0].previous is None
        assert moves[0].new == http(es, old)


async def test_a_slow_node_does_not_hold_discovery_up(cluster3: Cluster) -> None:
    es = cluster3
    assert es.leader is not None
    es.slow(es.leader, 30_000)
    async with cluster_discovery(es.gossip_seeds) as finder:
        assert await finder.discover() == tcp(es, es.leader)


async def test_mark_failed_skips_that_node_while_another_is_eligible(cluster3: Cluster) -> None:
    es = cluster3
    leader = es.leader
    assert leader is not None
    followers = {tcp(es, i) for i in range(3) if i != leader}
    async with cluster_discovery(es.gossip_seeds, NodePreference.FOLLOWER) as finder:
        first = await finder.discover()
        assert first in followers
        finder.mark_failed(first)
        second = await finder.discover()
        assert second in followers - {first}
        finder.mark_failed(second)
        # Both followers failed: the preference falls back to the leader.
        assert await finder.discover() == tcp(es, leader)
        finder.record_success(tcp(es, leader))
        assert await finder.discover() in followers  # a success forgives the failures


async def test_a_node_alone_is_tried_again_after_it_failed() -> None:
    async with Cluster(1) as es, cluster_discovery(es.gossip_seeds) as finder:
        node = await finder.discover()
        finder.mark_failed(node)
        assert await finder.discover() == node


async def test_a_failed_seed_is_tried_again_in_a_later_round() -> None:
    """R16: the original dropped a seed after three failures and then stopped for good."""
    async with Cluster(1) as es, cluster_discovery(es.gossip_seeds) as finder:
        await es.akill(0)
        task = asyncio.create_task(finder.discover())
        seed = http(es, 0)

        def failed_twice() -> bool:
            beats = finder.heartbeats
            record = None if beats is None else beats.get(seed)
            return record is not None and record.consecutive_failures >= 2

        await eventually(failed_twice)
        assert not task.done()
        await es.arestart(0)
        async with asyncio.timeout(BOUND):
            assert await task == tcp(es, 0)


async def test_fetch_new_gossip_is_bounded_and_never_raises_for_a_dead_seed(
    cluster3: Cluster,
) -> None:
    es = cluster3
    async with aiohttp.ClientSession() as session:
        seed = NodeService("127.0.0.1", http(es, 0).port or 0)
        nodes = await fetch_new_gossip(session, seed, timeout=1.0)
        assert nodes is not None
        assert len(nodes) == 3
        assert await fetch_new_gossip(session, NodeService("127.0.0.1", dead_port())) is None
        assert await fetch_new_gossip(session, None) == []


# --- gossip served by hand (R10 end to end) ----------------------------------------------------


@pytest.fixture
async def served_gossip() -> AsyncIterator[tuple[dict[str, Any], Address]]:
    document: dict[str, Any] = {"members": []}

    async def handle(request: web.Request) -> web.Response:
        return web.json_response(document)

    app = web.Application()
    app.router.add_get("/gossip", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield document, Address(host, port)
    finally:
        await runner.cleanup()


async def test_discovery_survives_an_unknown_state_in_served_gossip(
    served_gossip: tuple[dict[str, Any], Address],
) -> None:
    document, address = served_gossip
    mine = member("Leader", 1) | {
        "httpEndPointIp": address.host,
        "httpEndPointPort": address.port,
        "externalTcpIp": "127.0.0.1",
        "externalTcpPort": 4444,
    }
    other = member("SomethingNew", 2) | {"httpEndPointIp": "127.0.0.1", "httpEndPointPort": 1}
    document["members"] = [other, mine]
    for preference in (NodePreference.LEADER, NodePreference.FOLLOWER):
        async with cluster_discovery([str(address)], preference) as finder:
            assert await finder.discover() == NodeService("127.0.0.1", 4444, None)


# --- DNS --------------------------------------------------------------------------------------


async def test_dns_seeds_rotate_through_every_address_and_are_resolved_again() -> None:
    """R16: the original always returned the first address and never rotated."""
    addresses = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    async with DnsServer({"es.test": list(addresses)}) as dns:
        resolver = aiodns.DNSResolver(nameservers=[dns.nameserver], timeout=1.0)
        try:
            finder = DnsSeedFinder("es.test", resolver, 2113)
            first = [await finder.next() for _ in range(3)]
            assert {s.address for s in first if s is not None} == set(addresses)
            assert await finder.next() == first[0]  # round robin, not always the first
            assert finder.resolutions == 1
            finder.mark_failed(first[0])  # type: ignore[arg-type]
            assert first[0] not in [await finder.next() for _ in range(4)]
            for seed in first:
                finder.mark_failed(seed)  # type: ignore[arg-type]
            dns.records["es.test"] = ["127.0.0.5"]
            assert await finder.next() == NodeService("127.0.0.5", 2113, None)
            assert finder.resolutions == 2
            assert len(dns.queries) == 2
            dns.records.clear()
            for seed in finder.seeds:
                finder.mark_failed(seed)
            assert await finder.next() is None  # NXDOMAIN: no seed, no exception
        finally:
            await resolver.close()


async def test_dns_cluster_discovery_resolves_again_when_every_address_failed(
    cluster3: Cluster,
) -> None:
    es = cluster3
    assert es.leader is not None
    port = http(es, 0).port
    assert port is not None
    # Only 127.0.0.1 serves gossip on that port; the other loopback addresses refuse.
    async with DnsServer({"es.test": ["127.0.0.2", "127.0.0.3"]}) as dns:
        resolver = aiodns.DNSResolver(nameservers=[dns.nameserver], timeout=1.0)
        finder = DnsSeedFinder("es.test", resolver, port)
        try:
            async with cluster_discovery(finder) as discoverer:
                task = asyncio.create_task(discoverer.discover())
                await eventually(lambda: finder.resolutions >= 2)
                assert not task.done()
                dns.records["es.test"] = ["127.0.0.2", "127.0.0.3", "127.0.0.1"]
                async with asyncio.timeout(BOUND):
                    assert await task == tcp(es, es.leader)
                assert {Address("127.0.0.1", port), Address("127.0.0.2", port)} <= set(
                    discoverer.heartbeats.servers if discoverer.heartbeats else ()
                )
        finally:
            await resolver.close()


# --- budgets, cancellation, lifecycle --------------------------------------------------------


async def test_single_node_budget_spent_raises_discovery_failed() -> None:
    node = NodeService("127.0.0.1", dead_port(), None)
    async with SingleNodeDiscovery(node, fast_policy(retries=3)) as finder:
        for _ in range(3):
            assert await finder.discover() == node
            finder.mark_failed(node, ConnectionRefusedError("refused"))
        with pytest.raises(DiscoveryFailed) as caught:
            await finder.discover()
        assert caught.value.attempts == 3
        assert isinstance(caught.value.last_error, ConnectionRefusedError)
        assert await finder.discover() == node  # a new episode starts after giving up


async def test_keep_retrying_is_an_explicit_choice() -> None:
    node = NodeService("127.0.0.1", dead_port(), None)
    async with SingleNodeDiscovery(node, fast_policy(deadline=None)) as finder:
        for _ in range(30):
            assert await finder.discover() == node
            finder.mark_failed(node)


async def test_cluster_budget_spent_raises_discovery_failed() -> None:
    seeds = [f"127.0.0.1:{dead_port()}", f"127.0.0.1:{dead_port()}"]
    async with cluster_discovery(seeds, retry_policy=fast_policy(retries=2)) as finder:
        async with asyncio.timeout(BOUND):
            with pytest.raises(DiscoveryFailed) as caught:
                await finder.discover()
        assert isinstance(caught.value.last_error, ServerSelectionError)


async def test_cancellation_propagates_and_is_not_a_timeout() -> None:
    seeds = [f"127.0.0.1:{dead_port()}"]
    async with cluster_discovery(seeds, retry_policy=fast_policy(deadline=None)) as finder:
        task = asyncio.create_task(finder.discover())
        await eventually(lambda: finder.heartbeats is not None)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def monitor_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("resilient-topology-monitor")]


async def test_close_is_idempotent_and_leaves_nothing_running(cluster3: Cluster) -> None:
    finder = cluster_discovery(cluster3.gossip_seeds)
    await finder.discover()
    monitor, session = finder._monitor, finder._session
    assert monitor is not None
    assert session is not None
    assert monitor_tasks()
    await finder.close()
    await finder.close()
    assert finder.closed
    assert monitor.closed
    assert session.closed
    assert not monitor_tasks()
    with pytest.raises(DiscoveryFailed, match="closed"):
        await finder.discover()


async def test_close_ends_a_pending_discover() -> None:
    finder = cluster_discovery([f"127.0.0.1:{dead_port()}"], retry_policy=fast_policy())
    task = asyncio.create_task(finder.discover())
    await eventually(lambda: finder.heartbeats is not None)
    await finder.close()
    async with asyncio.timeout(BOUND):
        with pytest.raises(DiscoveryFailed, match="closed"):
            await task
    assert not monitor_tasks()

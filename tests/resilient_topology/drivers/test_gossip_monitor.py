"""The core's monitor driven by gossip rules, as photonpump runs it: discovery and a leader kill."""

from __future__ import annotations

from typing import Any

from resilient_topology import Address, HookRegistry, LeaderChanged, TopologyType
from resilient_topology.drivers.monitor import AsyncMonitor
from resilient_topology.eventstore import (
    EventStoreClusterSettings,
    on_gossip_failure,
    on_gossip_reply,
)
from resilient_topology.testing import ScriptedProbe

NODES = {name: Address(name, 2113) for name in ("es1", "es2", "es3")}


def member(name: str, state: str, epoch: int, *, alive: bool = True) -> dict[str, Any]:
    return {
        "instanceId": f"id-{name}",
        "state": state,
        "isAlive": alive,
        "externalTcpIp": name,
        "externalTcpPort": 1113,
        "httpEndPointIp": name,
        "httpEndPointPort": 2113,
        "epochNumber": epoch,
        "writerCheckpoint": 100,
    }


def gossip(*members: dict[str, Any]) -> dict[str, Any]:
    return {"members": list(members)}


async def test_gossip_monitor_follows_a_leader_kill() -> None:
    first = gossip(
        member("es1", "Leader", 3), member("es2", "Follower", 3), member("es3", "Follower", 3)
    )
    second = gossip(
        member("es1", "Leader", 3, alive=False),
        member("es2", "Leader", 4),
        member("es3", "Follower", 4),
    )
    probe = ScriptedProbe({address: [first] for address in NODES.values()})
    cluster = EventStoreClusterSettings.of(["es1"])
    moves: list[LeaderChanged] = []
    hooks = HookRegistry()
    hooks.register(LeaderChanged, moves.append)
    monitor = AsyncMonitor(
        cluster.topology_settings,
        probe,
        initial=cluster.initial_description(),
        on_reply=on_gossip_reply,
        on_failure=on_gossip_failure,
        hooks=hooks,
    )
    async with monitor:
        found = await monitor.wait_for(lambda d: d.primary is not None, timeout=5)
        assert found.primary is not None
        assert found.primary.address == NODES["es1"]
        assert found.primary.endpoints["tcp"] == Address("es1", 1113)
        assert set(found.servers) == set(NODES.values())
        probe.script(NODES["es1"], ConnectionRefusedError("es1 killed"))
        for name in ("es2", "es3"):
            probe.script(NODES[name], second)
            monitor.request_check(NODES[name])
        after = await monitor.wait_for(
            lambda d: d.primary is not None and d.primary.address == NODES["es2"], timeout=5
        )
        assert after.topology_type is TopologyType.ReplicaSetWithPrimary
    assert [(m.previous, m.new) for m in moves][:1] == [(None, NODES["es1"])]
    assert moves[-1].new == NODES["es2"]

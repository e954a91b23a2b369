"""The core's asyncio monitor driven by a scripted probe: discovery, failover, close."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from resilient_topology import (
    Address,
    ConfigurationError,
    ServerSelectionTimeout,
    ServerType,
    TopologySettings,
    TopologyType,
)
from resilient_topology.drivers.monitor import AsyncMonitor
from resilient_topology.events import SdamEvent, ServerHeartbeatFailed, TopologyClosed
from resilient_topology.hooks import HookRegistry, PrimaryChanged
from resilient_topology.testing import ScriptedProbe

A, B = Address("a", 27017), Address("b", 27017)


def member(primary: bool, **extra: Any) -> dict[str, Any]:
    return {
        "ok": 1,
        "setName": "rs",
        "isWritablePrimary": primary,
        "secondary": not primary,
        "hosts": ["a:27017", "b:27017"],
        "maxWireVersion": 21,
        **extra,
    }


def settings(**options: Any) -> TopologySettings:
    return TopologySettings.of(
        ["a", "b"], replica_set_name="rs", heartbeat_frequency=0.5, **options
    )


async def test_discovers_primary_and_waits_for_it() -> None:
    probe = ScriptedProbe({A: [member(True)], B: [member(False)]})
    async with AsyncMonitor(settings(), probe) as monitor:
        description = await monitor.wait_for(lambda d: d.primary is not None, timeout=5)
        assert description.primary is not None
        assert description.primary.address == A
        assert description.topology_type is TopologyType.ReplicaSetWithPrimary
        await monitor.wait_for(
            lambda d: d.servers[B].server_type is ServerType.RSSecondary, timeout=5
        )
        assert monitor.heartbeats.average_rtt(A) is not None


async def test_follows_a_failover_and_reports_events() -> None:
    seen: list[SdamEvent] = []
    probe = ScriptedProbe(
        {A: [member(True, electionId=b"\x00" * 11 + b"\x01")], B: [member(False)]}
    )
    monitor = AsyncMonitor(settings(), probe, listeners=(seen.append,))
    async with monitor:
        await monitor.wait_for(lambda d: d.primary is not None, timeout=5)
        probe.script(A, ConnectionRefusedError("a died"))
        probe.script(B, member(True, electionId=b"\x00" * 11 + b"\x02"))
        monitor.request_check(A)
        monitor.request_check(B)
        after = await monitor.wait_for(
            lambda d: d.primary is not None and d.primary.address == B, timeout=5
        )
        assert after.servers[A].server_type is ServerType.Unknown
    assert any(isinstance(e, ServerHeartbeatFailed) for e in seen)
    assert isinstance(seen[-1], TopologyClosed)
    assert monitor.closed


async def test_selection_wait_times_out_with_a_typed_error() -> None:
    async with AsyncMonitor(settings(), ScriptedProbe()) as monitor:
        with pytest.raises(ServerSelectionTimeout) as info:
            await monitor.wait_for(lambda d: d.primary is not None, timeout=0.2)
        assert isinstance(info.value, TimeoutError)


async def test_caller_cancellation_is_not_a_timeout() -> None:
    async with AsyncMonitor(settings(), ScriptedProbe()) as monitor:
        task = asyncio.create_task(monitor.wait_for(lambda d: d.primary is not None, timeout=30))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_close_is_idempotent_and_leaves_no_tasks() -> None:
    monitor = AsyncMonitor(settings(), ScriptedProbe({A: [member(True)]}))
    async with monitor:
        await monitor.wait_for(lambda d: d.primary is not None, timeout=5)
    await monitor.aclose()
    names = {t.get_name() for t in asyncio.all_tasks()}
    assert not any(n.startswith("resilient-topology-monitor") for n in names)
    with pytest.raises(ServerSelectionTimeout):
        await monitor.wait_for(lambda d: False, timeout=1)


async def test_hung_probe_is_bounded_by_check_timeout() -> None:
    class HangingProbe:
        async def check(self, address: Address, timeout: float) -> dict[str, Any]:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    seen: list[SdamEvent] = []
    monitor = AsyncMonitor(settings(), HangingProbe(), check_timeout=0.05, listeners=(seen.append,))
    async with monitor:
        await monitor.wait_for(lambda d: any(s.error for s in d.servers.values()), timeout=5)
    assert any(isinstance(e, ServerHeartbeatFailed) for e in seen)


async def test_a_failing_listener_does_not_stop_monitoring() -> None:
    def broken(event: SdamEvent) -> None:
        raise RuntimeError("listener bug")

    probe = ScriptedProbe({A: [member(True)], B: [member(False)]})
    async with AsyncMonitor(settings(), probe, listeners=(broken,)) as monitor:
        await monitor.wait_for(lambda d: d.primary is not None, timeout=5)


async def test_start_twice_is_refused() -> None:
    async with AsyncMonitor(settings(), ScriptedProbe()) as monitor:
        with pytest.raises(ConfigurationError):
            monitor.start()


async def test_hooks_hear_the_primary_move() -> None:
    moves: list[PrimaryChanged] = []
    hooks = HookRegistry()

    async def on_primary(event: PrimaryChanged) -> None:
        moves.append(event)

    hooks.register(PrimaryChanged, on_primary)
    probe = ScriptedProbe(
        {A: [member(True, electionId=b"\x00" * 11 + b"\x01")], B: [member(False)]}
    )
    async with AsyncMonitor(settings(), probe, hooks=hooks) as monitor:
        await monitor.wait_for(lambda d: d.primary is not None, timeout=5)
        probe.script(A, ConnectionRefusedError("a died"))
        probe.script(B, member(True, electionId=b"\x00" * 11 + b"\x02"))
        monitor.request_check(A)
        monitor.request_check(B)
        await monitor.wait_for(
            lambda d: d.primary is not None and d.primary.address == B, timeout=5
        )
    assert moves[0].previous is None
    assert moves[0].new == A
    assert moves[-1].new == B

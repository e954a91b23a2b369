"""Fixtures for photonpump's API tests: a simulated cluster and clients connected to it.

Real sockets on loopback: ``cluster`` is a three-node ``clustersim`` EventStore cluster on the
test's own event loop. ``gossip_client`` finds the leader through gossip (the original's
``prefer_master`` selector); ``tcp_client`` connects to the leader's TCP address directly;
``client`` runs a test once with each. Every client is closed before its cluster stops, and every
wait in these tests is bounded by ``BOUND``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import photonpump
import pytest
from clustersim.eventstore import Cluster
from photonpump import Client, NewEvent, connect, discovery
from photonpump.messages import OperationResult

__all__ = ["BOUND", "collect", "eventually", "host_port", "leader_address", "new_client"]

BOUND = 10.0  # seconds any single wait may take before the test fails


def host_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def leader_address(es: Cluster) -> tuple[str, int]:
    assert es.leader is not None, "the cluster has no leader"
    return host_port(es.tcp_addresses[es.leader])


def new_client(es: Cluster, via: str = "gossip", **options: Any) -> Client:
    """A client (not started) for ``es``: through gossip seeds, or the leader's TCP address."""
    options.setdefault("request_timeout", BOUND)
    if via == "gossip":
        seeds = ",".join(es.gossip_seeds)  # "host:port,host:port": static seeds
        return connect(discovery_host=seeds, selector=discovery.prefer_master, **options)
    host, port = leader_address(es)
    return connect(host, port, **options)


async def collect(events: Any, count: int, timeout: float = BOUND) -> list[Any]:
    """The next ``count`` items of an async iterator, within ``timeout`` seconds."""
    found: list[Any] = []
    async with asyncio.timeout(timeout):
        while len(found) < count:
            found.append(await anext(events))
    return found


async def eventually(
    check: Callable[[], object], timeout: float = BOUND, step: float = 0.01
) -> Any:
    """Poll ``check`` (a function, or a coroutine function) until it gives something truthy."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(step)


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    async with Cluster(3) as es:
        yield es


@pytest.fixture
async def gossip_client(cluster: Cluster) -> AsyncIterator[Client]:
    async with new_client(cluster, "gossip") as client:
        yield client


@pytest.fixture
async def tcp_client(cluster: Cluster) -> AsyncIterator[Client]:
    async with new_client(cluster, "tcp") as client:
        yield client


@pytest.fixture(params=["gossip", "tcp"])
def client(request: pytest.FixtureRequest) -> Client:
    """Each test once with ``gossip_client`` and once with ``tcp_client``."""
    chosen: Client = request.getfixturevalue(f"{request.param}_client")
    return chosen


async def fill(client: Client, stream: str, count: int) -> None:
    """Publish ``count`` events numbered 0.. in one request, and check the write result."""
    result = await client.publish(
        stream, [NewEvent("Counted", data={"n": n}) for n in range(count)]
    )
    assert result.result == OperationResult.Success
    assert result.last_event_number == count - 1


def numbers(events: list[photonpump.Event]) -> list[int]:
    return [event.event_number for event in events]


async def drain(events: AsyncIterator[photonpump.Event]) -> list[photonpump.Event]:
    async with asyncio.timeout(BOUND):
        return [event async for event in events]

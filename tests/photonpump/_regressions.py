"""Shared pieces of the regression tests (R1-R19): clients, bounded waits, fake replies."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import photonpump
from clustersim.eventstore import Cluster
from photonpump import Client, Event
from photonpump.discovery import DiscoveryRetryPolicy

from resilient_topology.address import Address
from resilient_topology.eventstore.framing import (
    TcpCommand,
)
from resilient_topology.eventstore.proto import messages_pb2 as pb

from ._fake_node import FakeNode

C = TcpCommand
T = TypeVar("T")
BOUND = 10.0  # seconds any single wait in these tests may take before the test fails


# --- helpers ----------------------------------------------------------------------------------


def policy(retries: int = 100) -> DiscoveryRetryPolicy:
    """Fast reconnects: 10 ms doubling to 50 ms, ``retries`` attempts, within BOUND seconds."""
    return DiscoveryRetryPolicy(retries, 0.01, 0, 2.0, 0.05, deadline=BOUND)


def client_to(host: str, port: int, **options: Any) -> Client:
    options.setdefault("request_timeout", BOUND / 2)
    options.setdefault("retry_policy", policy())
    return photonpump.connect(host, port, **options)


def node_client(es: Cluster, index: int, **options: Any) -> Client:
    address = Address.of(es.tcp_addresses[index])
    assert address.port is not None
    return client_to(address.host, address.port, **options)


def fake_client(node: FakeNode, **options: Any) -> Client:
    return client_to(node.host, node.port, **options)


async def eventually(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(BOUND):
        while not predicate():  # noqa: ASYNC110 - the predicates read plain state
            await asyncio.sleep(0.01)


async def bounded(awaitable: Awaitable[T]) -> T:
    async with asyncio.timeout(BOUND):
        return await awaitable


async def take(iterator: AsyncIterator[Event], count: int) -> list[Event]:
    async with asyncio.timeout(BOUND):
        return [await anext(iterator) for _ in range(count)]


async def first(iterator: AsyncIterator[Event]) -> Event:
    return await anext(iterator)


async def publish(client: Client, stream: str, count: int, start: int = 0) -> list[uuid.UUID]:
    ids = []
    for n in range(start, start + count):
        event_id = uuid.uuid4()
        result = await bounded(client.publish_event(stream, "counted", {"n": n}, id=event_id))
        assert result.succeeded
        ids.append(event_id)
    return ids


def record(stream: str, number: int) -> pb.EventRecord:
    return pb.EventRecord(
        event_stream_id=stream,
        event_number=number,
        event_id=uuid.UUID(int=number + 1).bytes_le,
        event_type="faked",
        data_content_type=1,
        metadata_content_type=0,
        data=b'{"n": %d}' % number,
        created_epoch=0,
    )


def written(result_number: int) -> pb.WriteEventsCompleted:
    return pb.WriteEventsCompleted(
        result=pb.Success, first_event_number=result_number, last_event_number=result_number
    )

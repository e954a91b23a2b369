"""The EventStore client the demo steps use, and small bounded helpers around it."""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections.abc import Callable
from typing import Any

from photonpump import Client, Credential, ExpectedVersion
from photonpump.discovery import DiscoveryRetryPolicy, NodePreference, get_discoverer

from demo.plan import EventStoreTarget

__all__ = ["BOUND", "delete_streams", "new_client", "publish", "until"]

BOUND = 10.0  # seconds any single EventStore wait may take
CLEANUP_BOUND = 3.0  # seconds per stream deletion at the end (a dead cluster must not stall)
DEFAULT_CREDENTIAL = ("admin", "changeit")  # EventStore's out-of-the-box administrator


def new_client(target: EventStoreTarget, seeds: list[str]) -> Client:
    """A client finding the leader through gossip (or one node over TCP), fast to retry."""
    policy = DiscoveryRetryPolicy(
        retries_per_node=200, retry_interval=0.05, jitter=0, max_interval=0.5, deadline=BOUND
    )
    context = ssl.create_default_context() if target.tls else None
    if target.kind == "tcp":
        host, port = target.addresses[0]
        discoverer: Any = get_discoverer(host, port, None, 0, retry_policy=policy)
    else:
        discoverer = get_discoverer(
            None,
            0,
            seeds,
            2113,
            NodePreference.LEADER,
            policy,
            gossip_timeout=0.5,
            gossip_interval=0.5,
            scheme="https" if target.tls else "http",
            ssl=context or True,
        )
    user, password = target.username, target.password
    if user is None or password is None:
        user, password = DEFAULT_CREDENTIAL
    return Client(
        discoverer,
        credential=Credential(user, password),
        request_timeout=BOUND,
        ssl_context=context,
    )


async def publish(client: Client, stream: str, count: int, ids: list[str]) -> None:
    """Publish ``count`` events one by one, appending each acknowledged id to ``ids``.

    The ids are chosen here, so a write the client re-sends after a reconnect is recognised by
    the server (idempotent by event id) instead of being stored twice.
    """
    for _ in range(count):
        event_id = uuid.uuid4()
        body = {"n": len(ids)}
        async with asyncio.timeout(BOUND):
            result = await client.publish_event(stream, "counted", body, id=event_id)
        if not result.succeeded:
            raise RuntimeError(f"publish to {stream} failed: {result.result.name} {result.message}")
        ids.append(str(event_id))


async def until(done: Callable[[], bool]) -> None:
    """Poll ``done()`` until true or BOUND passes (then the record shows what was missing)."""
    deadline = time.monotonic() + BOUND
    while not done() and time.monotonic() < deadline:  # noqa: ASYNC110 - plain state, no event
        await asyncio.sleep(0.01)


async def delete_streams(client: Client, streams: list[str]) -> None:
    """Soft-delete the demo's streams, so a real server keeps no demo data in sight."""
    for stream in streams:
        try:
            async with asyncio.timeout(CLEANUP_BOUND):
                await client.delete_stream(stream, ExpectedVersion.Any)
        except Exception:  # a stream never written, or a closed client: nothing to undo
            continue

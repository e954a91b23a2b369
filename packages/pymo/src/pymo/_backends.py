"""The steps where the sync and async clients differ in shape: starting and closing the monitors.

``_async/factory.py`` calls the ``async_`` functions; its generated twin calls the plain ones
(see ``scripts/unasync.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from pymongo import AsyncMongoClient, MongoClient

__all__ = ["async_close_client", "async_open_client", "close_client", "open_client"]

# How long closing a failed async client waits for pymongo's monitors to finish opening sockets.
CONNECT_SETTLE_BOUND = 1.0
_SETTLE_POLL = 0.005


async def async_open_client(client: AsyncMongoClient[Any]) -> None:
    """An async client starts monitoring only when asked, without blocking the loop."""
    await client.aconnect()


def open_client(client: MongoClient[Any]) -> None:
    """Nothing to do: ``connect=True`` (forced by pymo) started the monitors in the constructor."""


async def async_close_client(client: AsyncMongoClient[Any]) -> None:
    """Close a client pymo will not hand out, leaving no socket behind.

    ``AsyncMongoClient.close()`` cancels the monitor tasks, and a task cancelled while its pool is
    opening a socket drops that socket unclosed (pymongo's PYTHON-5867). The round-trip monitor
    starts such a connect right after the first replies, which is exactly when pymo decides a
    failure; and ``close()`` awaits between servers, so a monitor not yet stopped can start
    another. Hence: wait, within a bound, until no pool is opening a connection, then stop every
    monitor in the same loop step (no await in between), and only then close.
    """
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONNECT_SETTLE_BOUND
        # Polling: pymongo signals nothing when a pool finishes opening a connection.
        while _opening_connections(client) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(_SETTLE_POLL)
        _stop_monitors(client)
    finally:
        await client.close()


def close_client(client: MongoClient[Any]) -> None:
    """Close a client pymo will not hand out; monitor threads are stopped, not cancelled."""
    client.close()


def _opening_connections(client: AsyncMongoClient[Any] | MongoClient[Any]) -> bool:
    """Whether any of the client's pools is opening a socket (pymongo internals, read defensively).

    Pools count connections being opened in ``_pending``; if a pymongo release renames any of
    these attributes, this answers False and closing proceeds at once, as without pymo.
    """
    return any(getattr(pool, "_pending", 0) for pool in _pools(client))


def _stop_monitors(client: AsyncMongoClient[Any]) -> None:
    """Cancel every server monitor and its round-trip monitor now, without awaiting anything."""
    for monitor in _monitors(client):
        stop = getattr(monitor, "gc_safe_close", None)
        if callable(stop):
            stop()


def _servers(client: AsyncMongoClient[Any] | MongoClient[Any]) -> list[Any]:
    servers = getattr(getattr(client, "_topology", None), "_servers", None) or {}
    return list(servers.values())


def _monitors(client: AsyncMongoClient[Any] | MongoClient[Any]) -> Iterator[Any]:
    for server in _servers(client):
        monitor = getattr(server, "_monitor", None)
        if monitor is not None:
            yield monitor


def _pools(client: AsyncMongoClient[Any] | MongoClient[Any]) -> Iterator[Any]:
    for server in _servers(client):
        monitor = getattr(server, "_monitor", None)
        round_trip = getattr(monitor, "_rtt_monitor", None)
        for owner in (server, monitor, round_trip):
            pool = getattr(owner, "_pool", None)
            if pool is not None:
                yield pool

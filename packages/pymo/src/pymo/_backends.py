"""The one step where the sync and async clients differ in shape: starting the monitors.

``_async/factory.py`` calls :func:`async_open_client`; its generated twin calls
:func:`open_client` (see ``scripts/unasync.py``).
"""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient, MongoClient

__all__ = ["async_open_client", "open_client"]


async def async_open_client(client: AsyncMongoClient[Any]) -> None:
    """An async client starts monitoring only when asked, without blocking the loop."""
    await client.aconnect()


def open_client(client: MongoClient[Any]) -> None:
    """Nothing to do: ``connect=True`` (forced by pymo) started the monitors in the constructor."""

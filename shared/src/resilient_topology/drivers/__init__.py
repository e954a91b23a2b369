"""Drivers of the core: the only modules that touch asyncio, threads or clocks.

``_async`` is written by hand; ``_sync`` is generated from it by ``scripts/unasync.py``.
``_backends`` holds the few primitives whose sync and async forms differ in shape.
The monitor (``drivers.monitor``) is asyncio only: a sync program uses pymongo's monitor.
"""

from __future__ import annotations

from ._async.waiter import AsyncTopologyWaiter
from ._sync.waiter import TopologyWaiter

__all__ = ["AsyncTopologyWaiter", "TopologyWaiter"]

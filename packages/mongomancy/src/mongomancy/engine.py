"""The retrying engines: ``Engine`` (pymongo.MongoClient) and ``AsyncEngine`` (AsyncMongoClient).

``Engine`` is generated from ``AsyncEngine`` by ``scripts/unasync.py``; see the package README.
"""

from __future__ import annotations

from ._async.cursor import AsyncRetryingCursor
from ._async.engine import AsyncEngine
from ._sync.cursor import RetryingCursor
from ._sync.engine import Engine
from .hooks import PrimarySwitch

__all__ = ["AsyncEngine", "AsyncRetryingCursor", "Engine", "PrimarySwitch", "RetryingCursor"]

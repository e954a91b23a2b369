"""The data-definition layer: ``Database``/``AsyncDatabase``, ``Collection``/``AsyncCollection``.

The sync classes are generated from the async ones by ``scripts/unasync.py``.
"""

from __future__ import annotations

from ._async.schema import AsyncCollection, AsyncDatabase, AsyncExecutor
from ._sync.schema import Collection, Database, Executor
from .drift import CreateAllReport, IndexDrift

__all__ = [
    "AsyncCollection",
    "AsyncDatabase",
    "AsyncExecutor",
    "Collection",
    "CreateAllReport",
    "Database",
    "Executor",
    "IndexDrift",
]

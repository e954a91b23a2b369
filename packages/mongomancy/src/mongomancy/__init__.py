"""mongomancy: a pymongo engine that retries through primary switches, with reconnect hooks and
a data-definition layer (collections, indexes and default documents created safely).

    from mongomancy import Engine, Database, CollectionDefinition, Index

Async code uses ``AsyncEngine`` and ``AsyncDatabase`` with the same API.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import engine, errors, mongo_errors, schema, types
from .drift import CreateAllReport, IndexDrift
from .engine import AsyncEngine, AsyncRetryingCursor, Engine, PrimarySwitch, RetryingCursor
from .schema import AsyncCollection, AsyncDatabase, AsyncExecutor, Collection, Database, Executor
from .types import ASCENDING, DESCENDING, CollectionDefinition, Document, Index

try:
    __version__ = version("mongomancy")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = [
    "__version__",
    "ASCENDING",
    "DESCENDING",
    "AsyncCollection",
    "AsyncDatabase",
    "AsyncEngine",
    "AsyncExecutor",
    "AsyncRetryingCursor",
    "Collection",
    "CollectionDefinition",
    "CreateAllReport",
    "Database",
    "Document",
    "Engine",
    "Executor",
    "Index",
    "IndexDrift",
    "PrimarySwitch",
    "RetryingCursor",
    "engine",
    "errors",
    "mongo_errors",
    "schema",
    "types",
]

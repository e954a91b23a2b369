"""mongo_observer: live observers over the MongoDB oplog and change streams, and in-memory
replicas of collections that follow them.

    replica = ReactiveCollection(collection)
    observer = await Observer.init_async(operation_handler=replica, source=collection)
    await replica.resync()          # snapshot after the position was captured
    await observer.observe_changes()
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import errors, oplog, updates
from .checkpoints import CheckpointStore, CollectionCheckpointStore, MemoryCheckpointStore
from .handlers import OperationHandler, ShouldStopObservation
from .observer import Observer
from .reactive import (
    Change,
    ChangeCallback,
    QuerySupportMissing,
    ReactiveCollection,
    ReactivePartialCollection,
)

try:
    __version__ = version("mongo-observer")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = [
    "__version__",
    "Change",
    "ChangeCallback",
    "CheckpointStore",
    "CollectionCheckpointStore",
    "MemoryCheckpointStore",
    "Observer",
    "OperationHandler",
    "QuerySupportMissing",
    "ReactiveCollection",
    "ReactivePartialCollection",
    "ShouldStopObservation",
    "errors",
    "oplog",
    "updates",
]

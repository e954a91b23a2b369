"""Where an observer keeps its position so that a restarted one continues where it stopped.

A position is opaque to the store: a ``bson.Timestamp`` in oplog mode, a resume token (a
document) in change-stream mode. The observer saves it only after the operation it belongs to was
handled, so a store never claims more than was delivered (at-least-once).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["CheckpointStore", "CollectionCheckpointStore", "MemoryCheckpointStore"]


@runtime_checkable
class CheckpointStore(Protocol):
    """Loads and saves one observer's position."""

    async def load(self) -> Any | None:
        """The saved position, or ``None`` if nothing was saved yet."""
        ...

    async def save(self, position: Any) -> None:
        """Replace the saved position."""
        ...


class MemoryCheckpointStore:
    """A position kept in memory: for tests and for observers restarted within one process."""

    def __init__(self, position: Any | None = None) -> None:
        self.position = position
        self.saves = 0

    async def load(self) -> Any | None:
        return self.position

    async def save(self, position: Any) -> None:
        self.position = position
        self.saves += 1


class CollectionCheckpointStore:
    """A position kept in the document ``{_id: key, position: ...}`` of a MongoDB collection.

    ``collection`` is a pymongo ``AsyncCollection`` (or a motor collection). Several observers
    can share one collection with different keys.
    """

    def __init__(self, collection: Any, key: str) -> None:
        self.collection = collection
        self.key = key

    async def load(self) -> Any | None:
        document = await self.collection.find_one({"_id": self.key})
        return None if document is None else document.get("position")

    async def save(self, position: Any) -> None:
        await self.collection.update_one(
            {"_id": self.key}, {"$set": {"position": position}}, upsert=True
        )

"""The lease lock that lets one ``create_all`` at a time run against a database.

The original waited up to 55 s on a lock left behind by a crashed process and then forced it.
Here the lock is a document with an owner and an expiry: a holder that dies simply stops
renewing, and the next caller takes over as soon as the lease has run out.

    {_id: "create_all:<db>", owner: <uuid4 hex>, expires_at: <UTC datetime>}

Taking it is one ``find_one_and_update`` with ``upsert=True`` whose filter matches only a free
or expired lock: if someone else holds it, the upsert collides with their ``_id`` and the server
answers ``DuplicateKeyError``. Leases are measured by the callers' clocks, so they must agree to
well within ``lease`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pymongo.errors

from .._backends import async_local_lock, async_sleep
from ..errors import LockTimeout

if TYPE_CHECKING:
    from .schema import AsyncCollection

__all__ = ["LOCK_COLLECTION", "AsyncCreateAllLock"]

LOCK_COLLECTION = "mongomancy_lock"

_log = logging.getLogger("mongomancy.lock")


class AsyncCreateAllLock:
    """Async context manager: a process-local lock, then the distributed lease lock.

    The local lock makes the threads (tasks) of one process queue up without polling the
    server; the lease lock serializes processes. Both are released on exit, the lease only if
    this attempt still owns it.
    """

    def __init__(
        self,
        collection: AsyncCollection,
        key: str,
        *,
        wait_step: float = 0.25,
        max_wait: float = 60.0,
        lease: float = 30.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.collection = collection
        self.lock_id = f"create_all:{key}"
        self.wait_step = max(0.0, wait_step)
        self.max_wait = max(0.0, max_wait)
        self.lease = max(0.001, lease)
        self.logger = logger or _log
        self.owner: str | None = None
        self._local: asyncio.Lock | threading.Lock | None = None

    def _expiry(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.lease)

    async def _try_take(self, owner: str) -> bool:
        now = datetime.now(UTC)
        free = {"_id": self.lock_id, "$or": [{"owner": None}, {"expires_at": {"$lt": now}}]}
        update = {"$set": {"owner": owner, "expires_at": self._expiry(now)}}
        try:
            await self.collection.find_one_and_update(free, update, upsert=True)
            return True
        except pymongo.errors.DuplicateKeyError:
            # Held by someone else, or our own upsert was retried after an ambiguous success.
            held = await self.collection.find_one({"_id": self.lock_id}, {"owner": 1})
            return held is not None and held.get("owner") == owner

    async def acquire(self) -> None:
        """Take the lease, polling every ``wait_step`` (with jitter) for up to ``max_wait``."""
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + self.max_wait
        while not await self._try_take(owner):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeout(
                    f"{self.lock_id}: lock held by another owner for over {self.max_wait} s"
                )
            await async_sleep(min(remaining, self.wait_step * random.uniform(0.5, 1.5)))
        self.owner = owner

    async def renew(self) -> bool:
        """Push the expiry back; False (and a warning) if the lease was lost meanwhile."""
        if self.owner is None:
            return False
        result: Any = await self.collection.update_one(
            {"_id": self.lock_id, "owner": self.owner},
            {"$set": {"expires_at": self._expiry(datetime.now(UTC))}},
        )
        if result.matched_count:
            return True
        self.logger.warning("%s: lease expired and was taken over by another owner", self.lock_id)
        return False

    async def release(self) -> None:
        """Give the lease back, only if this attempt still owns it."""
        owner, self.owner = self.owner, None
        if owner is not None:
            await self.collection.delete_one({"_id": self.lock_id, "owner": owner})

    async def __aenter__(self) -> AsyncCreateAllLock:
        local = async_local_lock(self.lock_id)
        await local.acquire()
        self._local = local
        try:
            await self.acquire()
        except BaseException:
            self._local = None
            local.release()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.release()
        finally:
            local, self._local = self._local, None
            if local is not None:
                local.release()

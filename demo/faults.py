"""How a MongoDB primary is taken away: killed in the simulator, or stepped down on a real set.

Both have the same two calls, so the write loop is the same against either; the plan picks one
(:attr:`demo.plan.MongoTarget.fault`). Nothing here can kill a node of a real deployment.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from clustersim.mongo import ReplicaSet
from pymongo.errors import ConnectionFailure, OperationFailure
from pymongo.server_type import SERVER_TYPE

__all__ = ["KillPrimary", "MongoFaults", "StepDownPrimary", "primary_of"]

PRIMARY_BOUND = 10.0  # seconds to wait for a primary before a fault, and for a step-down reply
STEP_DOWN_SECONDS = 10  # replSetStepDown: the old primary may not be re-elected for this long


def primary_of(client: Any) -> str | None:
    """The primary in a pymongo client's topology description (no I/O)."""
    servers = client.topology_description.server_descriptions().values()
    found = [s.address for s in servers if s.server_type == SERVER_TYPE.RSPrimary]
    return f"{found[0][0]}:{found[0][1]}" if found else None


class MongoFaults(Protocol):
    async def inject(self) -> tuple[str, str | None]:
        """Take the primary away; what was done, and why not when it could not be."""
        ...

    async def recover(self) -> str | None:
        """Undo what can be undone (restart a killed member); what was done, if anything."""
        ...


class KillPrimary:
    """The simulator's primary crashes (listener and connections closed); restarted later."""

    def __init__(self, rs: ReplicaSet) -> None:
        self.rs = rs
        self.down: list[int] = []

    async def inject(self) -> tuple[str, str | None]:
        async with asyncio.timeout(PRIMARY_BOUND):
            while self.rs.primary is None:  # noqa: ASYNC110 - the simulator's state, no event
                await asyncio.sleep(0.01)
        primary = self.rs.primary
        await self.rs.akill(primary)
        self.down.append(primary)
        return f"killed primary {self.rs.addresses[primary]}", None

    async def recover(self) -> str | None:
        if not self.down:
            return None
        member = self.down.pop(0)
        await self.rs.arestart(member)
        return f"restarted {self.rs.addresses[member]} (it rejoins as a secondary)"


class StepDownPrimary:
    """``replSetStepDown`` through the driver: what a real deployment allows a client to do."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def inject(self) -> tuple[str, str | None]:
        before = primary_of(self.client) or "the primary"
        try:
            async with asyncio.timeout(PRIMARY_BOUND):
                await self.client.admin.command(
                    "replSetStepDown", STEP_DOWN_SECONDS, secondaryCatchUpPeriodSecs=5
                )
        except ConnectionFailure:
            pass  # servers before 4.2 close every connection when they step down: done
        except OperationFailure as exc:  # e.g. a one-member set: no electable secondary
            reason = str((exc.details or {}).get("errmsg", exc))[:120]
            return f"replSetStepDown on {before}", f"the server refused: {reason}"
        return f"stepped down primary {before} (replSetStepDown {STEP_DOWN_SECONDS} s)", None

    async def recover(self) -> str | None:
        return None  # a stepped-down member becomes electable again by itself

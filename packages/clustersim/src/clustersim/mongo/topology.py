"""Who is primary, and what each member says about it: the simulated replica set's roles.

This is bookkeeping only (no I/O): the member servers ask it what to put in a hello reply and
tell it about faults. Every role change bumps every member's ``topologyVersion`` counter, which is
what lets a streaming driver notice a new primary within a millisecond; a restart gives that
member a new ``processId``. ``electionId`` carries the term, so it only ever grows.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bson import Int64, ObjectId

from ..errors import SimulatorConfigurationError

__all__ = ["MAX_WIRE_VERSION", "Member", "MonitoringMode", "Role", "Roles"]

MAX_WIRE_VERSION = 21
LOGICAL_SESSION_TIMEOUT_MINUTES = 30
MAX_MEMBERS = 7


class MonitoringMode(enum.Enum):
    """Streaming: hello carries topologyVersion and can be awaited. Polling: neither."""

    STREAMING = "streaming"
    POLLING = "polling"


class Role(enum.Enum):
    PRIMARY = "primary"
    SECONDARY = "secondary"
    DOWN = "down"


@dataclass
class Member:
    """One member: where it listens and how it is doing."""

    index: int
    host: str
    port: int
    alive: bool = True
    partitioned: bool = False
    delay: float = 0.0  # seconds added before every reply ("slow")
    process_id: ObjectId = field(default_factory=ObjectId)
    counter: int = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class Roles:
    """The set's membership, primary, term and configuration version."""

    def __init__(
        self,
        name: str,
        members: list[Member],
        *,
        mode: MonitoringMode = MonitoringMode.STREAMING,
        standalone: bool = False,
        router: bool = False,
    ) -> None:
        if not 1 <= len(members) <= MAX_MEMBERS:
            raise SimulatorConfigurationError(f"a replica set has 1 to {MAX_MEMBERS} members")
        self.name = name
        self.members = members
        self.mode = mode
        self.standalone = standalone
        self.router = router
        self.term = 0
        self.set_version = 1
        self.primary: int | None = None
        self.last_write: datetime = datetime.now(UTC)

    # --- changes ------------------------------------------------------------------------------

    def elect(self, index: int) -> None:
        """Make ``index`` primary in a new term."""
        member = self.members[index]
        if not member.alive:
            raise SimulatorConfigurationError(f"member {index} is down and cannot be elected")
        self.term += 1
        self.primary = index
        self._changed()

    def step_down(self) -> int | None:
        """The primary becomes a secondary; returns the old primary's index."""
        old = self.primary
        self.primary = None
        self._changed()
        return old

    def kill(self, index: int) -> None:
        member = self.members[index]
        member.alive = False
        if self.primary == index:
            self.primary = None
        self._changed()

    def restart(self, index: int) -> None:
        member = self.members[index]
        member.alive = True
        member.partitioned = False
        member.process_id = ObjectId()
        member.counter = 0
        self._changed()

    def next_primary(self, exclude: int | None = None) -> int | None:
        """The member an election would pick: the first live, reachable one after ``exclude``."""
        count = len(self.members)
        start = 0 if exclude is None else exclude + 1
        for offset in range(count):
            index = (start + offset) % count
            member = self.members[index]
            if index != exclude and member.alive and not member.partitioned:
                return index
        if exclude is not None and self.members[exclude].alive:
            return exclude
        return None

    def _changed(self) -> None:
        for member in self.members:
            member.counter += 1

    # --- what members say ---------------------------------------------------------------------

    def role(self, index: int) -> Role:
        if not self.members[index].alive:
            return Role.DOWN
        return Role.PRIMARY if self.primary == index else Role.SECONDARY

    def is_writable(self, index: int) -> bool:
        return self.standalone or self.router or self.primary == index

    def topology_version(self, index: int) -> dict[str, Any]:
        member = self.members[index]
        return {"processId": member.process_id, "counter": Int64(member.counter)}

    def hello(self, index: int, *, legacy: bool) -> dict[str, Any]:
        """The reply to hello (``legacy``: isMaster) from member ``index``."""
        writable = self.is_writable(index)
        reply: dict[str, Any] = {"helloOk": True}
        reply["ismaster" if legacy else "isWritablePrimary"] = writable
        if self.router:
            reply["msg"] = "isdbgrid"
        elif not self.standalone:
            reply.update(self._replica_set_fields(index, writable))
        if self.mode is MonitoringMode.STREAMING:
            reply["topologyVersion"] = self.topology_version(index)
        reply.update(
            {
                "maxBsonObjectSize": 16 * 1024 * 1024,
                "maxMessageSizeBytes": 48_000_000,
                "maxWriteBatchSize": 100_000,
                "localTime": datetime.now(UTC),
                "logicalSessionTimeoutMinutes": LOGICAL_SESSION_TIMEOUT_MINUTES,
                "connectionId": os.getpid(),
                "minWireVersion": 0,
                "maxWireVersion": MAX_WIRE_VERSION,
                "readOnly": False,
                "ok": 1.0,
            }
        )
        return reply

    def _replica_set_fields(self, index: int, writable: bool) -> dict[str, Any]:
        hosts = [m.address for m in self.members]
        fields: dict[str, Any] = {
            "topologyVersion": self.topology_version(index),
            "hosts": hosts,
            "setName": self.name,
            "setVersion": self.set_version,
            "secondary": not writable,
            "me": self.members[index].address,
            "lastWrite": {"lastWriteDate": self.last_write},
        }
        if self.primary is not None:
            fields["primary"] = self.members[self.primary].address
        if writable:
            fields["electionId"] = ObjectId(b"\x7f\xff\xff\xff" + self.term.to_bytes(8, "big"))
        if self.mode is MonitoringMode.POLLING:
            del fields["topologyVersion"]
        return fields

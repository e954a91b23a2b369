"""The state every member of a simulated deployment shares, and the command pipeline.

Members share one store, one cursor table, one retryable-write table and one set of failpoints:
replication is perfect and instant (see the fidelity table in the README for what that cannot
show). What differs per member is its role, which decides what it may answer.
"""

from __future__ import annotations

import asyncio
import copy
import os
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bson import Binary, Int64, Timestamp

from . import oplog, tailing
from .changestreams import CommandFailure
from .commands import HANDLERS, READS, WRITES
from .commands._store_ops import Change
from .commands.base import CommandContext, CommandError
from .cursors import Cursor, CursorTable
from .failpoints import FailPoints
from .store import Store
from .topology import MonitoringMode, Roles

__all__ = ["Deployment", "Outcome"]

_ALWAYS_ALLOWED = frozenset(
    {
        "hello",
        "ismaster",
        "ping",
        "buildinfo",
        "endsessions",
        "killcursors",
        "configurefailpoint",
        "replsetgetstatus",
        "replsetstepdown",
        "getparameter",
        "serverstatus",
        "getlog",
        "connectionstatus",
    }
)
_RETRYABLE = frozenset({"insert", "update", "delete", "findandmodify"})
# Real servers drop a session's records with the session; a bound keeps long runs flat.
RETRYABLE_WRITES_KEPT = 100_000


class Outcome:
    """A command's reply, or an instruction to drop the connection without one."""

    __slots__ = ("close", "reply")

    def __init__(self, reply: dict[str, Any] | None, *, close: bool = False) -> None:
        self.reply = reply
        self.close = close


class Deployment:
    """Roles, storage and the command pipeline of one simulated deployment."""

    def __init__(self, roles: Roles, *, oplog_entries: int = oplog.DEFAULT_MAX_ENTRIES) -> None:
        self.roles = roles
        self.store = Store()
        self.cursors = CursorTable()
        self.failpoints = FailPoints()
        self.retryable: dict[tuple[bytes, int], dict[str, Any]] = {}
        self._writes: set[asyncio.Future[dict[str, Any]]] = set()
        self.election_delay = 0.0
        self._roles_changed = asyncio.Event()
        self._cluster_seconds = 0
        self._cluster_increment = 0
        self._election: asyncio.TimerHandle | None = None
        self._uuids: dict[str, Binary] = {}
        self.oplog = oplog.Oplog(oplog_entries)
        self.oplog_clock = oplog.OplogClock(time.time)
        self._oplog_grew = asyncio.Event()

    # --- time ---------------------------------------------------------------------------------

    def cluster_time(self) -> Timestamp:
        """A strictly increasing cluster time."""
        now = int(time.time())
        if now > self._cluster_seconds:
            self._cluster_seconds, self._cluster_increment = now, 1
        else:
            self._cluster_increment += 1
        return Timestamp(self._cluster_seconds, self._cluster_increment)

    # --- roles --------------------------------------------------------------------------------

    def notify_roles_changed(self) -> None:
        """Wake every awaitable hello: the members' topology versions moved."""
        changed, self._roles_changed = self._roles_changed, asyncio.Event()
        changed.set()

    async def wait_roles_changed(self, timeout: float) -> None:
        event = self._roles_changed
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return

    def schedule_election(self, exclude: int | None) -> None:
        """Elect a new primary after the election delay (a window with no primary)."""
        if self._election is not None:
            self._election.cancel()
            self._election = None
        if self.election_delay <= 0:
            # No window: elect before returning, so `rs.primary` right after a step-down or a
            # kill already names the new primary (the README's example relies on it).
            self._hold_election(exclude)
            return
        loop = asyncio.get_running_loop()
        self._election = loop.call_later(self.election_delay, self._hold_election, exclude)

    def _hold_election(self, exclude: int | None) -> None:
        self._election = None
        if self.roles.primary is not None:
            return
        winner = self.roles.next_primary(exclude)
        if winner is not None:
            self.roles.elect(winner)
            self.notify_roles_changed()

    def step_down(self) -> int | None:
        """The primary steps down; another member is elected after the election delay."""
        old = self.roles.step_down()
        self.notify_roles_changed()
        self.schedule_election(exclude=old)
        return old

    def cancel_election(self) -> None:
        if self._election is not None:
            self._election.cancel()
            self._election = None

    async def finish_writes(self) -> None:
        """Let retryable writes whose connection died finish (and be recorded) before closing."""
        if self._writes:
            await asyncio.wait(list(self._writes), timeout=10.0)

    def close(self) -> None:
        self.cancel_election()
        self.cursors.clear()
        self.store.close()

    # --- the change log (oplog and change streams) ---------------------------------------------

    def collection_uuid(self, namespace: str) -> Binary:
        uuid = self._uuids.get(namespace)
        if uuid is None:
            uuid = self._uuids[namespace] = Binary(os.urandom(16), 4)
        return uuid

    def record(self, changes: Sequence[Change]) -> None:
        """Log document changes in the oplog, after the store applied them."""
        term = self.roles.term
        for change in changes:
            ns, ui = change.namespace, self.collection_uuid(change.namespace)
            if change.op == "i" and change.after is not None:
                entry = oplog.insert_entry(self.oplog_clock.tick(), term, ns, ui, change.after)
            elif change.op == "d" and change.before is not None:
                entry = oplog.delete_entry(
                    self.oplog_clock.tick(), term, ns, ui, change.before["_id"]
                )
            elif change.before is not None and change.after is not None:
                if change.replacement:
                    body: dict[str, Any] = {"replacement": change.after}
                else:
                    diff = oplog.update_diff(change.before, change.after)
                    if not diff:
                        continue
                    body = {"diff": diff}
                entry = oplog.update_entry(
                    self.oplog_clock.tick(), term, ns, ui, change.before["_id"], **body
                )
            else:
                continue
            self.oplog.append(entry)
        if changes:
            self._logged()

    def record_command(self, database: str, command: Mapping[str, Any]) -> None:
        """Log a catalogue change (create, drop, dropDatabase)."""
        name = command.get("create") or command.get("drop")
        ui = self.collection_uuid(f"{database}.{name}") if isinstance(name, str) else None
        entry = oplog.command_entry(
            self.oplog_clock.tick(), self.roles.term, database, command, ui=ui
        )
        self.oplog.append(entry)
        self._logged()

    def inject_oplog_entry(self, **fields: Any) -> dict[str, Any]:
        """Log an entry the simulator never writes itself, e.g. a prepared transaction's parts.

        ``fields`` are the entry's own (``op``, ``ns``, ``o``, ``lsid``, ...); ``ts``, ``t``,
        ``v`` and ``wall`` are stamped as for any other entry. The data is not changed: this
        exercises oplog readers with shapes only a sharded or very large deployment produces.
        Returns the logged entry. Call it on the deployment's loop.
        """
        entry = oplog.make_entry(self.oplog_clock.tick(), self.roles.term, None, **fields)
        self.oplog.append(entry)
        self._logged()
        return entry

    def _logged(self) -> None:
        self.roles.last_write = datetime.now(UTC)
        grew, self._oplog_grew = self._oplog_grew, asyncio.Event()
        grew.set()

    async def await_data(
        self, cursor: Cursor, size: int | None, wait: float
    ) -> list[dict[str, Any]]:
        """Wait up to ``wait`` seconds for a tailable cursor to have something new."""
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            grew = self._oplog_grew
            await cursor.fill()
            batch = cursor.take(size)
            remaining = deadline - asyncio.get_running_loop().time()
            if batch or remaining <= 0 or not cursor.tailable:
                return batch
            try:
                async with asyncio.timeout(remaining):
                    await grew.wait()
            except TimeoutError:
                pass

    async def open_tailable(self, context: CommandContext) -> dict[str, Any]:
        return await tailing.open_oplog_cursor(self, context)

    async def open_change_stream(
        self, context: CommandContext, pipeline: list[Any]
    ) -> dict[str, Any]:
        return await tailing.open_change_stream(self, context, pipeline)

    # --- the command pipeline -----------------------------------------------------------------

    async def execute(self, context: CommandContext) -> Outcome:
        name = context.name
        handler = HANDLERS.get(name)
        if handler is None:
            error = CommandError(
                59, "CommandNotFound", f"no such command: '{next(iter(context.command))}'"
            )
            return Outcome(self.finish(error.reply()))
        failure = (
            self.failpoints.take(name, context.app_name) if name != "configurefailpoint" else None
        )
        if failure is not None:
            block = failure.get("blockTimeMS") if failure.get("blockConnection") else None
            if block:
                await asyncio.sleep(float(block) / 1000)
            if failure.get("closeConnection"):
                return Outcome(None, close=True)
            if "errorCode" in failure:
                return Outcome(self.finish(self._failpoint_error(context, failure)))
        try:
            self._check_role(context)
            reply = await self._run(context, handler)
        except CommandError as error:
            reply = error.reply()
        except CommandFailure as exc:
            reply = exc.reply()
        if failure is not None and "writeConcernError" in failure and reply.get("ok") == 1:
            wce = dict(failure["writeConcernError"])
            reply["writeConcernError"] = {k: v for k, v in wce.items() if k != "errorLabels"}
            if wce.get("errorLabels"):
                reply["errorLabels"] = list(wce["errorLabels"])
        return Outcome(self.finish(reply))

    async def _run(self, context: CommandContext, handler: Any) -> dict[str, Any]:
        key = self._retry_key(context)
        if key is None:
            reply: dict[str, Any] = await handler(context)
            return reply
        if key in self.retryable:
            return copy.deepcopy(self.retryable[key])
        # A retryable write and its record are one step: if the connection dies (a killed
        # member cancels this coroutine) after the store applied the write, the record must
        # still be kept, or the driver's retry would apply it twice. The write runs as its own
        # task, shielded from that cancellation, and is awaited on close.
        write = asyncio.ensure_future(self._write_and_record(context, handler, key))
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)
        return await asyncio.shield(write)

    async def _write_and_record(
        self, context: CommandContext, handler: Any, key: tuple[bytes, int]
    ) -> dict[str, Any]:
        reply: dict[str, Any] = await handler(context)
        if reply.get("ok") == 1:
            self.retryable[key] = copy.deepcopy(reply)
            if len(self.retryable) > RETRYABLE_WRITES_KEPT:
                del self.retryable[next(iter(self.retryable))]  # the oldest session's write
        return reply

    def _retry_key(self, context: CommandContext) -> tuple[bytes, int] | None:
        if context.name not in _RETRYABLE:
            return None
        lsid = context.command.get("lsid")
        txn = context.command.get("txnNumber")
        if not isinstance(lsid, Mapping) or not isinstance(txn, int):
            return None
        session = lsid.get("id")
        raw = bytes(session) if isinstance(session, Binary | bytes) else repr(session).encode()
        return (raw, int(txn))

    def _check_role(self, context: CommandContext) -> None:
        name = context.name
        if name in _ALWAYS_ALLOWED or self.roles.is_writable(context.member):
            return
        extra = self._topology_version_field(context.member)
        if name in WRITES:
            labels = (
                ["RetryableWriteError"]
                if "txnNumber" in context.command or name in _RETRYABLE
                else []
            )
            raise CommandError(
                10107, "NotWritablePrimary", "not primary", labels=labels, extra=extra
            )
        if name in READS and not _secondary_ok(context.command):
            raise CommandError(
                13435,
                "NotPrimaryNoSecondaryOk",
                "not primary and secondaryOk=false",
                labels=["RetryableReadError"],
                extra=extra,
            )

    def _failpoint_error(
        self, context: CommandContext, failure: Mapping[str, Any]
    ) -> dict[str, Any]:
        code = int(failure["errorCode"])
        reply: dict[str, Any] = {
            "ok": 0.0,
            "code": code,
            "codeName": f"Error{code}",
            "errmsg": f"Failing command {context.name} via failCommand",
        }
        labels = failure.get("errorLabels")
        if labels:
            reply["errorLabels"] = list(labels)
        reply.update(self._topology_version_field(context.member))
        return reply

    def _topology_version_field(self, member: int) -> dict[str, Any]:
        """State-change errors carry topologyVersion, except in polling mode (pre-4.4 servers)."""
        if self.roles.mode is MonitoringMode.POLLING:
            return {}
        return {"topologyVersion": self.roles.topology_version(member)}

    def finish(self, reply: dict[str, Any]) -> dict[str, Any]:
        now = self.cluster_time()
        reply["$clusterTime"] = {
            "clusterTime": now,
            "signature": {"hash": Binary(b"\x00" * 20), "keyId": Int64(0)},
        }
        reply["operationTime"] = now
        return reply


def _secondary_ok(command: Mapping[str, Any]) -> bool:
    preference = command.get("$readPreference")
    return isinstance(preference, Mapping) and preference.get("mode", "primary") != "primary"

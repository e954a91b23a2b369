"""Cursors that follow the oplog: tailable ``local.oplog.rs`` finds and change streams.

Both keep their position in the shared oplog, so a getMore after a failover continues where the
old primary left off. Filters are evaluated here with mongomock's matcher, except on ``ts``:
mongomock cannot compare ``Timestamp`` values, so the oplog position is handled by the oplog.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bson import Int64, Timestamp
from mongomock.filtering import filter_applies as _untyped_filter_applies

from . import changestreams as streams
from .commands import _store_ops as ops
from .commands.base import CommandContext, CommandError
from .commands.reads import cursor_reply, open_cursor

if TYPE_CHECKING:
    from .deployment import Deployment

__all__ = ["open_change_stream", "open_oplog_cursor"]


def filter_applies(query: Mapping[str, Any], document: Mapping[str, Any]) -> bool:
    """mongomock's matcher, typed."""
    return bool(_untyped_filter_applies(query, document))  # type: ignore[no-untyped-call]


OPLOG_NAMESPACE = "local.oplog.rs"


def _split_ts_filter(query: Mapping[str, Any]) -> tuple[Timestamp | None, bool, dict[str, Any]]:
    """The ``ts`` bound of an oplog query (after ``T``, inclusive?) and the rest of the filter."""
    rest = {k: v for k, v in query.items() if k != "ts"}
    bound = query.get("ts")
    if bound is None:
        return None, False, rest
    if isinstance(bound, Mapping) and len(bound) == 1:
        operator, value = next(iter(bound.items()))
        if operator in ("$gt", "$gte") and isinstance(value, Timestamp):
            return value, operator == "$gte", rest
    raise CommandError(2, "BadValue", "oplog queries support only {ts: {$gt|$gte: Timestamp}}")


async def open_oplog_cursor(deployment: Deployment, context: CommandContext) -> dict[str, Any]:
    command = context.command
    namespace = context.namespace
    if namespace != OPLOG_NAMESPACE:
        raise CommandError(2, "BadValue", f"error processing query: {namespace} is not capped")
    after, inclusive, rest = _split_ts_filter(command.get("filter") or {})
    if after is not None and inclusive:
        after = (
            Timestamp(after.time, after.inc - 1)
            if after.inc
            else Timestamp(after.time - 1, 2**32 - 1)
        )
    position: list[Timestamp | None] = [after]

    async def refill() -> list[dict[str, Any]]:
        if position[0] is not None and not deployment.oplog.has_history_since(position[0]):
            raise CommandError(
                136, "CappedPositionLost", "the tailable cursor's position was overwritten"
            )
        entries = deployment.oplog.entries_after(position[0])
        if entries:
            position[0] = entries[-1]["ts"]
        return [e for e in entries if not rest or filter_applies(rest, e)]

    tailable = bool(command.get("tailable"))
    cursors = deployment.cursors
    if not tailable:
        # A plain query of the oplog (often "the newest entry"): answered in one go.
        entries = [e for e in await refill() if not rest or filter_applies(rest, e)]
        sort = command.get("sort") or {}
        if isinstance(sort, Mapping) and sort.get("$natural") == -1:
            entries.reverse()
        limit = abs(int(command.get("limit") or 0))
        if limit:
            entries = entries[:limit]
        single = bool(command.get("singleBatch")) or int(command.get("limit") or 0) < 0
        return open_cursor(context, namespace, entries, command.get("batchSize"), single=single)
    cursor = cursors.open(
        namespace, [], tailable=True, await_data=bool(command.get("awaitData")), refill=refill
    )
    await cursor.fill()
    size = command.get("batchSize")
    batch = cursor.take(int(size) if isinstance(size, int) and size > 0 else None)
    return cursor_reply(namespace, batch, Int64(cursor.id), first=True)


async def open_change_stream(
    deployment: Deployment, context: CommandContext, pipeline: list[Any]
) -> dict[str, Any]:
    spec = streams.parse_change_stream_stage(pipeline[0])
    target = context.command.get("aggregate")
    collection = target if isinstance(target, str) else None
    scope = streams.scope_for(spec, context.database, collection)
    matches = _match_stages(pipeline[1:])
    position = [streams.start_position(spec, deployment.oplog.last_ts)]
    namespace = f"{context.database}.{collection or '$cmd.aggregate'}"

    async def refill() -> list[dict[str, Any]]:
        events, position[0] = streams.read_events(
            deployment.oplog, position[0], scope=scope, spec=spec
        )
        if spec.full_document != "default":
            await _look_up_full_documents(deployment, events)
        if any(e["operationType"] == "invalidate" for e in events):
            cursor.tailable = False
        return [e for e in events if all(filter_applies(m, e) for m in matches)]

    cursor = deployment.cursors.open(
        namespace,
        [],
        tailable=True,
        await_data=True,
        refill=refill,
        post_batch=lambda: {"postBatchResumeToken": streams.encode_token(*position[0])},
    )
    await cursor.fill()
    options = context.command.get("cursor") or {}
    size = options.get("batchSize")
    batch = cursor.take(int(size) if isinstance(size, int) and size > 0 else None)
    extra = cursor.post_batch() if cursor.post_batch else None
    cursor_id = deployment.cursors.close_if_done(cursor)
    return cursor_reply(namespace, batch, cursor_id, first=True, extra=extra)


def _match_stages(stages: list[Any]) -> list[dict[str, Any]]:
    matches = []
    for stage in stages:
        if not isinstance(stage, Mapping) or list(stage) != ["$match"]:
            raise CommandError(
                115, "CommandNotSupported", "only $match may follow $changeStream in the simulator"
            )
        matches.append(dict(stage["$match"]))
    return matches


async def _look_up_full_documents(deployment: Deployment, events: list[dict[str, Any]]) -> None:
    """``fullDocument: updateLookup``: the document as it is now, read on the store thread."""
    wanted = [e for e in events if e.get("operationType") == "update"]
    if not wanted:
        return

    def work(client: Any) -> list[dict[str, Any] | None]:
        return [
            ops.collection(client, f"{e['ns']['db']}.{e['ns']['coll']}").find_one(
                {"_id": e["documentKey"]["_id"]}
            )
            for e in wanted
        ]

    for event, document in zip(wanted, await deployment.store.run(work), strict=True):
        event["fullDocument"] = document

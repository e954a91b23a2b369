"""find, getMore, killCursors, aggregate, count and distinct."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bson import Int64

from . import _store_ops as ops
from .base import CommandContext, CommandError

__all__ = ["HANDLERS", "cursor_reply"]

DEFAULT_BATCH = 101
DEFAULT_AWAIT = 1.0


def cursor_reply(
    namespace: str,
    batch: list[dict[str, Any]],
    cursor_id: Any,
    *,
    first: bool,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    cursor: dict[str, Any] = {
        "firstBatch" if first else "nextBatch": batch,
        "id": Int64(cursor_id),
        "ns": namespace,
    }
    cursor.update(extra or {})
    return {"cursor": cursor, "ok": 1.0}


def _batch_size(value: Any, default: int | None) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CommandError(2, "BadValue", "batchSize must be a non-negative integer")
    return value


async def find(context: CommandContext) -> dict[str, Any]:
    namespace = context.namespace
    command = context.command
    deployment = context.deployment
    if namespace == "local.oplog.rs" or command.get("tailable"):
        return await deployment.open_tailable(context)

    def work(client: Any) -> list[dict[str, Any]]:
        try:
            return ops.find(client, namespace, command)
        except Exception as exc:
            raise ops.store_error(exc) from exc

    results = await deployment.store.run(work)
    return open_cursor(
        context,
        namespace,
        results,
        command.get("batchSize"),
        single=bool(command.get("singleBatch")) or command.get("limit", 0) < 0,
    )


def open_cursor(
    context: CommandContext,
    namespace: str,
    results: list[dict[str, Any]],
    batch_size: Any,
    *,
    single: bool = False,
) -> dict[str, Any]:
    size = _batch_size(batch_size, DEFAULT_BATCH)
    cursors = context.deployment.cursors
    cursor = cursors.open(namespace, results)
    batch = cursor.take(size)
    cursor_id = Int64(0) if single else cursors.close_if_done(cursor)
    if single:
        cursors.kill(cursor.id)
    return cursor_reply(namespace, batch, cursor_id, first=True)


async def get_more(context: CommandContext) -> dict[str, Any]:
    command = context.command
    name = command.get("collection")
    if not isinstance(name, str):
        raise CommandError(2, "BadValue", "getMore needs a collection name")
    namespace = f"{context.database}.{name}"
    cursor = context.deployment.cursors.get(command.get("getMore"), namespace)
    size = _batch_size(command.get("batchSize"), None)
    await cursor.fill()
    batch = cursor.take(size)
    if not batch and cursor.await_data:
        max_time = command.get("maxTimeMS")
        wait = DEFAULT_AWAIT if max_time is None else float(max_time) / 1000
        batch = await context.deployment.await_data(cursor, size, wait)
    extra = cursor.post_batch() if cursor.post_batch else None
    cursor_id = context.deployment.cursors.close_if_done(cursor)
    return cursor_reply(namespace, batch, cursor_id, first=False, extra=extra)


async def kill_cursors(context: CommandContext) -> dict[str, Any]:
    ids = context.command.get("cursors") or []
    killed: list[Any] = []
    missing: list[Any] = []
    for cursor_id in ids:
        (killed if context.deployment.cursors.kill(int(cursor_id)) else missing).append(cursor_id)
    return {
        "cursorsKilled": killed,
        "cursorsNotFound": missing,
        "cursorsAlive": [],
        "cursorsUnknown": [],
        "ok": 1.0,
    }


async def aggregate(context: CommandContext) -> dict[str, Any]:
    command = context.command
    pipeline = command.get("pipeline")
    if not isinstance(pipeline, list):
        raise CommandError(14, "TypeMismatch", "'pipeline' must be an array")
    if pipeline and isinstance(pipeline[0], Mapping) and "$changeStream" in pipeline[0]:
        return await context.deployment.open_change_stream(context, pipeline)
    target = command.get("aggregate")
    if not isinstance(target, str):
        raise CommandError(115, "CommandNotSupported", "database-level aggregate is not simulated")
    namespace = context.namespace

    def work(client: Any) -> list[dict[str, Any]]:
        try:
            return list(ops.collection(client, namespace).aggregate(pipeline))
        except Exception as exc:
            raise ops.store_error(exc) from exc

    results = await context.deployment.store.run(work)
    cursor_options = command.get("cursor") or {}
    return open_cursor(context, namespace, results, cursor_options.get("batchSize"))


async def count(context: CommandContext) -> dict[str, Any]:
    namespace = context.namespace
    query = context.command.get("query") or {}
    n = await context.deployment.store.run(
        lambda client: ops.collection(client, namespace).count_documents(query)
    )
    return {"n": n, "ok": 1.0}


async def distinct(context: CommandContext) -> dict[str, Any]:
    namespace = context.namespace
    key = context.command.get("key")
    if not isinstance(key, str):
        raise CommandError(14, "TypeMismatch", "'key' must be a string")
    query = context.command.get("query") or {}
    values = await context.deployment.store.run(
        lambda client: ops.collection(client, namespace).distinct(key, query)
    )
    return {"values": values, "ok": 1.0}


HANDLERS = {
    "find": find,
    "getmore": get_more,
    "killcursors": kill_cursors,
    "aggregate": aggregate,
    "count": count,
    "distinct": distinct,
}

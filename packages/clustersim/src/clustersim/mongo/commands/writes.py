"""insert, update, delete and findAndModify."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from . import _store_ops as ops
from .base import CommandContext, CommandError

__all__ = ["HANDLERS"]


def _statements(context: CommandContext, key: str) -> list[dict[str, Any]]:
    value = context.command.get(key)
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise CommandError(9, "FailedToParse", f"'{key}' must be an array of documents")
    if not value:
        raise CommandError(9, "FailedToParse", f"'{key}' must not be empty")
    return value


def _reply(n: int, errors: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    reply: dict[str, Any] = {"n": n, **extra}
    if errors:
        reply["writeErrors"] = errors
    reply["ok"] = 1.0
    return reply


async def insert(context: CommandContext) -> dict[str, Any]:
    namespace = context.namespace
    # mongod stores _id first, adding one when the client did not.
    documents = [
        d if "_id" in d else {"_id": ObjectId(), **d} for d in _statements(context, "documents")
    ]
    ordered = bool(context.command.get("ordered", True))
    n, errors, changes = await context.deployment.store.run(
        lambda client: ops.insert(client, namespace, documents, ordered)
    )
    context.deployment.record(changes)
    return _reply(n, errors)


async def update(context: CommandContext) -> dict[str, Any]:
    namespace = context.namespace
    statements = _statements(context, "updates")
    ordered = bool(context.command.get("ordered", True))
    reply, changes = await context.deployment.store.run(
        lambda client: ops.update(client, namespace, statements, ordered)
    )
    context.deployment.record(changes)
    reply["ok"] = 1.0
    return reply


async def delete(context: CommandContext) -> dict[str, Any]:
    namespace = context.namespace
    statements = _statements(context, "deletes")
    ordered = bool(context.command.get("ordered", True))
    n, errors, changes = await context.deployment.store.run(
        lambda client: ops.delete(client, namespace, statements, ordered)
    )
    context.deployment.record(changes)
    return _reply(n, errors)


async def find_and_modify(context: CommandContext) -> dict[str, Any]:
    namespace = context.namespace
    command = context.command
    if not command.get("remove") and command.get("update") is None:
        raise CommandError(9, "FailedToParse", "either an update or remove=true must be given")

    def work(client: Any) -> tuple[dict[str, Any], list[ops.Change]]:
        try:
            return ops.find_and_modify(client, namespace, command)
        except CommandError:
            raise
        except Exception as exc:
            raise ops.store_error(exc) from exc

    reply, changes = await context.deployment.store.run(work)
    context.deployment.record(changes)
    reply["ok"] = 1.0
    return reply


HANDLERS = {
    "insert": insert,
    "update": update,
    "delete": delete,
    "findandmodify": find_and_modify,
}

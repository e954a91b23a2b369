"""Collections, databases and indexes."""

from __future__ import annotations

from typing import Any

from . import _store_ops as ops
from .base import CommandContext, CommandError
from .reads import open_cursor

__all__ = ["HANDLERS"]

_SYSTEM_DATABASES = ("admin", "config", "local")


def _exists(client: Any, database: str, name: str) -> bool:
    return name in client[database].list_collection_names()


async def create(context: CommandContext) -> dict[str, Any]:
    database, name = context.database, context.collection_name()

    def work(client: Any) -> bool:
        if _exists(client, database, name):
            return False
        client[database].create_collection(name)
        return True

    if not await context.deployment.store.run(work):
        raise CommandError(48, "NamespaceExists", f"Collection {database}.{name} already exists.")
    context.deployment.record_command(database, {"create": name})
    return {"ok": 1.0}


async def drop(context: CommandContext) -> dict[str, Any]:
    database, name = context.database, context.collection_name()

    def work(client: Any) -> bool:
        if not _exists(client, database, name):
            return False
        client[database].drop_collection(name)
        return True

    if not await context.deployment.store.run(work):
        raise CommandError(26, "NamespaceNotFound", "ns not found")
    context.deployment.record_command(database, {"drop": name})
    return {"ns": f"{database}.{name}", "nIndexesWas": 1, "ok": 1.0}


async def drop_database(context: CommandContext) -> dict[str, Any]:
    database = context.database

    def work(client: Any) -> list[str]:
        names = sorted(client[database].list_collection_names())
        client.drop_database(database)
        return names

    for name in await context.deployment.store.run(work):
        context.deployment.record_command(database, {"drop": name})  # as the server logs it
    context.deployment.record_command(database, {"dropDatabase": 1})
    return {"dropped": database, "ok": 1.0}


async def list_collections(context: CommandContext) -> dict[str, Any]:
    database = context.database
    name_only = bool(context.command.get("nameOnly"))
    wanted = (context.command.get("filter") or {}).get("name")

    def work(client: Any) -> list[str]:
        return sorted(client[database].list_collection_names())

    names = [n for n in await context.deployment.store.run(work) if wanted in (None, n)]
    entries: list[dict[str, Any]] = []
    for name in names:
        entry: dict[str, Any] = {"name": name, "type": "collection"}
        if not name_only:
            entry["options"] = {}
            entry["info"] = {
                "readOnly": False,
                "uuid": context.deployment.collection_uuid(f"{database}.{name}"),
            }
            entry["idIndex"] = {"v": 2, "key": {"_id": 1}, "name": "_id_"}
        entries.append(entry)
    return open_cursor(
        context,
        f"{database}.$cmd.listCollections",
        entries,
        (context.command.get("cursor") or {}).get("batchSize"),
    )


async def list_databases(context: CommandContext) -> dict[str, Any]:
    names = await context.deployment.store.run(lambda client: client.list_database_names())
    databases = [{"name": n, "sizeOnDisk": 8192, "empty": False} for n in sorted(names)]
    databases += [
        {"name": n, "sizeOnDisk": 8192, "empty": False} for n in _SYSTEM_DATABASES if n not in names
    ]
    if context.command.get("nameOnly"):
        databases = [{"name": d["name"]} for d in databases]
    return {"databases": databases, "totalSize": 8192 * len(databases), "ok": 1.0}


async def create_indexes(context: CommandContext) -> dict[str, Any]:
    namespace = context.namespace
    indexes = context.command.get("indexes")
    if not isinstance(indexes, list) or not indexes:
        raise CommandError(2, "BadValue", "'indexes' must be a non-empty array")

    def work(client: Any) -> tuple[bool, int, int]:
        database, _, name = namespace.partition(".")
        created = not _exists(client, database, name)
        coll = ops.collection(client, namespace)
        before = len(coll.index_information()) if not created else 1
        for spec in indexes:
            key = spec.get("key")
            if not isinstance(key, dict) or not key:
                raise CommandError(67, "CannotCreateIndex", "index key must be a document")
            options = {k: v for k, v in spec.items() if k in _INDEX_OPTIONS}
            try:
                coll.create_index(list(key.items()), name=spec.get("name"), **options)
            except Exception as exc:
                raise ops.store_error(exc) from exc
        return created, before, len(coll.index_information())

    created, before, after = await context.deployment.store.run(work)
    return {
        "createdCollectionAutomatically": created,
        "numIndexesBefore": before,
        "numIndexesAfter": after,
        "ok": 1.0,
    }


_INDEX_OPTIONS = frozenset(
    {"unique", "sparse", "expireAfterSeconds", "partialFilterExpression", "collation", "hidden"}
)


async def list_indexes(context: CommandContext) -> dict[str, Any]:
    namespace = context.namespace

    def work(client: Any) -> list[dict[str, Any]] | None:
        database, _, name = namespace.partition(".")
        if not _exists(client, database, name):
            return None
        info = ops.collection(client, namespace).index_information()
        entries = []
        for index_name, spec in info.items():
            entry = {"v": 2, "key": dict(spec["key"]), "name": index_name}
            entry.update({k: v for k, v in spec.items() if k in _INDEX_OPTIONS})
            entries.append(entry)
        return entries

    entries = await context.deployment.store.run(work)
    if entries is None:
        raise CommandError(26, "NamespaceNotFound", f"ns does not exist: {namespace}")
    return open_cursor(
        context, namespace, entries, (context.command.get("cursor") or {}).get("batchSize")
    )


async def drop_indexes(context: CommandContext) -> dict[str, Any]:
    namespace = context.namespace
    index = context.command.get("index")

    def work(client: Any) -> int:
        coll = ops.collection(client, namespace)
        count = len(coll.index_information())
        try:
            if index == "*":
                coll.drop_indexes()
            elif isinstance(index, str):
                coll.drop_index(index)
            elif isinstance(index, dict):
                coll.drop_index(list(index.items()))
            else:
                raise CommandError(2, "BadValue", "'index' must be a name, a key or '*'")
        except CommandError:
            raise
        except Exception as exc:
            raise CommandError(27, "IndexNotFound", str(exc)) from exc
        return count

    count = await context.deployment.store.run(work)
    return {"nIndexesWas": count, "ok": 1.0}


HANDLERS = {
    "create": create,
    "drop": drop,
    "dropdatabase": drop_database,
    "listcollections": list_collections,
    "listdatabases": list_databases,
    "createindexes": create_indexes,
    "listindexes": list_indexes,
    "dropindexes": drop_indexes,
}

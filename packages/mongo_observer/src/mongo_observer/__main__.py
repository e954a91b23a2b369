"""``python -m mongo_observer URI``: print every change as one JSON line, until interrupted.

    python -m mongo_observer mongodb://db1,db2/?replicaSet=rs0 --namespace shop.orders
    python -m mongo_observer mongodb://db1/?replicaSet=rs0 --oplog

Change streams by default (the whole deployment, or ``--namespace db.coll``); ``--oplog`` tails
``local.oplog.rs`` instead. Operations are printed in the oplog shape handlers receive, as
MongoDB Extended JSON (relaxed).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from bson import json_util
from pymongo import AsyncMongoClient
from pymongo.errors import ConfigurationError, PyMongoError

from .handlers import Operation, OperationHandler
from .observer import Observer


class _Printer(OperationHandler):
    async def on_insert(self, operation: Operation) -> None:
        _print(operation)

    async def on_update(self, operation: Operation) -> None:
        _print(operation)

    async def on_delete(self, operation: Operation) -> None:
        _print(operation)


def _print(operation: Operation) -> None:
    print(json_util.dumps(operation, json_options=json_util.RELAXED_JSON_OPTIONS), flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mongo_observer", description=__doc__)
    parser.add_argument("uri", help="a mongodb:// or mongodb+srv:// connection string")
    parser.add_argument("--namespace", help="only this collection, as db.collection")
    parser.add_argument("--oplog", action="store_true", help="tail local.oplog.rs instead")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for a server (default 10)"
    )
    return parser


async def _observe(arguments: argparse.Namespace) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        arguments.uri, serverSelectionTimeoutMS=int(arguments.timeout * 1000)
    )
    try:
        handler = _Printer()
        if arguments.oplog:
            observer = await Observer.init_async(
                oplog=client.local["oplog.rs"],
                operation_handler=handler,
                namespace_filter=arguments.namespace,
            )
        else:
            source: Any = client
            if arguments.namespace:
                database, _, collection = arguments.namespace.partition(".")
                source = client[database][collection] if collection else client[database]
            observer = await Observer.init_async(operation_handler=handler, source=source)
        async with observer:
            print("observing; Ctrl-C to stop", file=sys.stderr, flush=True)
            await observer.observe_changes()
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        asyncio.run(_observe(arguments))
    except KeyboardInterrupt:
        return 0
    except (ConfigurationError, ValueError) as exc:
        print(f"mongo_observer: {exc}", file=sys.stderr)
        return 2
    except PyMongoError as exc:
        print(f"mongo_observer: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

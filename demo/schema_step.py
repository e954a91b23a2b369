"""Step 2: mongomancy's create_all makes the schema, and a second run finds nothing to do."""

from __future__ import annotations

import asyncio
import time

from mongomancy import AsyncDatabase, CollectionDefinition, CreateAllReport, Document, Index

from demo.console import Narrator
from demo.records import SchemaRecord, ms

__all__ = ["SCHEMA", "create_all_twice"]

BOUND = 20.0  # seconds one create_all may take (it waits for a lease and for a primary)

SCHEMA = (
    CollectionDefinition("orders", [Index({"seq": 1}), Index({"customer": 1, "seq": -1})]),
    CollectionDefinition(
        "settings",
        default_docs=[Document({"_id": "pricing"}, {"_id": "pricing", "currency": "EUR"})],
    ),
)


def _created(report: CreateAllReport) -> str:
    documents = len(report.documents_upserted) + len(report.documents_inserted)
    return (
        f"{len(report.collections_created)} collection(s), {len(report.indexes_created)} "
        f"index(es), {documents} default document(s)"
    )


async def create_all_twice(narrator: Narrator, db: AsyncDatabase, database: str) -> SchemaRecord:
    """Step 2: the schema is made once; running it again must change nothing."""
    with narrator.step(
        "mongomancy: create_all, twice",
        doing=f"Database({database!r}).create_all() with two collection definitions: 'orders' "
        "(two indexes) and 'settings' (one default document), then the same call again.",
        expect="the first run creates both collections, both indexes and the default document "
        "under a lease in mongomancy_lock; the second finds everything in place and does nothing.",
        columns=("run", "collections", "indexes", "default documents", "time"),
    ) as view:
        reports = []
        for run in ("first", "second"):
            view.progress(f"{run} create_all")
            started = time.monotonic()
            async with asyncio.timeout(BOUND):
                made = await db.create_all()
            reports.append(made)
            view.row(
                run,
                ", ".join(made.collections_created) or "—",
                ", ".join(name for _, name in made.indexes_created) or "—",
                str(len(made.documents_upserted) + len(made.documents_inserted)),
                ms(time.monotonic() - started),
            )
        empty = reports[1] == CreateAllReport()
        view.finish(f"first run: {_created(reports[0])}; second run changed nothing", empty)
    return SchemaRecord(created=_created(reports[0]), second_run_empty=empty)

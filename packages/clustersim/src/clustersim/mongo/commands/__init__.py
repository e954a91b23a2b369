"""Command handlers by lower-cased command name."""

from __future__ import annotations

from . import admin, ddl, reads, writes
from .base import CommandContext, CommandError, Handler

__all__ = ["HANDLERS", "READS", "WRITES", "CommandContext", "CommandError", "Handler"]

HANDLERS: dict[str, Handler] = {
    **admin.HANDLERS,
    **ddl.HANDLERS,
    **reads.HANDLERS,
    **writes.HANDLERS,
}
WRITES = frozenset(writes.HANDLERS) | frozenset(
    {"create", "drop", "dropdatabase", "createindexes", "dropindexes"}
)
READS = frozenset(reads.HANDLERS) - {"killcursors"} | frozenset(
    {"listcollections", "listindexes", "listdatabases"}
)

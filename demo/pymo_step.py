"""Step 1: pymo answers at once, both when nothing listens and when the set is healthy."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable
from typing import Any

import pymo
from pymo import SERVER_STATE_SELECTORS
from pymongo import AsyncMongoClient

from demo.console import Narrator
from demo.records import PymoRecord, ms

__all__ = ["BOUND", "closed_ports", "run_pymo"]

BOUND = 2.0  # seconds: pymo's fail-fast bound in this step (plain pymongo waits 30 s by default)


def closed_ports(count: int = 2) -> list[int]:
    """Loopback ports nobody listens on (bound, read, released), so connecting is refused."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


async def _open(flavour: str, seeds: str, options: dict[str, Any]) -> Any:
    """``pymo.mongo_client`` (off the loop: it blocks) or ``pymo.async_mongo_client``."""
    if flavour == "sync":
        return await asyncio.to_thread(pymo.mongo_client, seeds, **options)
    return await pymo.async_mongo_client(seeds, **options)


async def _timed(call: Awaitable[Any]) -> tuple[float, Any]:
    """Seconds ``call`` took, and its result or the exception it raised."""
    started = time.monotonic()
    try:
        result = await call
    except Exception as exc:
        result = exc
    return time.monotonic() - started, result


def _first_line(exc: BaseException) -> str:
    """An error as one short line: pymo names every seed, which makes its messages long."""
    line = (str(exc).splitlines() or [""])[0]
    return f"{type(exc).__name__}: {line[:90]}{'…' if len(line) > 90 else ''}"


async def run_pymo(narrator: Narrator, uri: str) -> PymoRecord:
    """The dead list must raise within the bound; the healthy set must give a client at once."""
    dead = "mongodb://" + ",".join(f"127.0.0.1:{p}" for p in closed_ports()) + "/?replicaSet=rs0"
    options: dict[str, Any] = {"fail_fast_timeout": BOUND}
    writable = {"state_selectors": SERVER_STATE_SELECTORS.Writable, **options}
    with narrator.step(
        "pymo: fail fast on a dead seed list, return at once from a healthy set",
        doing=f"pymo.mongo_client and pymo.async_mongo_client on {dead.split('/?')[0]} "
        "(two loopback ports nobody listens on), then on the replica set, wanting a writable "
        "seed.",
        expect=f"the dead list raises ServerSelectionTryOnceTimeoutError well within the "
        f"{BOUND:.0f} s bound (a plain MongoClient only fails at its first operation, after "
        "serverSelectionTimeoutMS, 30 s by default); the healthy set gives a client within one "
        "heartbeat round.",
        columns=("call", "seeds", "outcome", "time"),
    ) as view:
        results: dict[str, float | None] = {}
        for flavour in ("sync", "async"):
            view.progress(f"{flavour}: connecting to the dead seed list")
            took, outcome = await _timed(_open(flavour, dead, options))
            if isinstance(outcome, BaseException):
                results[f"dead_{flavour}"] = took
                text = _first_line(outcome)
            else:  # a client from a dead list would be a bug: close it, report it
                results[f"dead_{flavour}"] = None
                await _close(outcome)
                text = "a client was returned (unexpected)"
            view.row(f"pymo {flavour}", "dead list", text, ms(took))
            view.note(f"{flavour} call on the dead list came back after {ms(took)}: {text}")
        for flavour in ("sync", "async"):
            view.progress(f"{flavour}: connecting to the replica set")
            took, outcome = await _timed(_open(flavour, uri, writable))
            if isinstance(outcome, BaseException):
                results[f"healthy_{flavour}"] = None
                text = _first_line(outcome)
            else:
                results[f"healthy_{flavour}"] = took
                pinged, answer = await _timed(_ping(outcome))
                text = f"client returned; its first ping answered {ms(pinged)} later"
                if isinstance(answer, BaseException):
                    text = f"client returned; its first ping failed: {_first_line(answer)}"
                await _close(outcome)
            view.row(f"pymo {flavour}", "replica set", text, ms(took))
            view.note(f"{flavour} call on the replica set came back after {ms(took)}: {text}")
        record = PymoRecord(
            bound=BOUND,
            dead_sync=results["dead_sync"],
            dead_async=results["dead_async"],
            healthy_sync=results["healthy_sync"],
            healthy_async=results["healthy_async"],
        )
        worst_dead = max((t for t in (record.dead_sync, record.dead_async) if t), default=None)
        ok = None not in results.values() and (worst_dead or 0) <= BOUND
        view.finish(
            f"dead list failed in at most {ms(worst_dead)} (bound {ms(BOUND)}); healthy set "
            f"answered in {ms(record.healthy_sync)} (sync) and {ms(record.healthy_async)} (async)",
            ok,
        )
    return record


async def _ping(client: Any) -> Any:
    """A first operation, to show the returned client is usable at once."""
    async with asyncio.timeout(BOUND):
        if isinstance(client, AsyncMongoClient):
            return await client.admin.command("ping")
        return await asyncio.to_thread(client.admin.command, "ping")


async def _close(client: Any) -> None:
    """Await an async client's close; a sync one's close runs off the loop."""
    if isinstance(client, AsyncMongoClient):
        await client.close()
    else:
        await asyncio.to_thread(client.close)

"""Typed engine events, and the few hook helpers whose sync and async forms differ.

:class:`PrimarySwitch` is dispatched through a core :class:`~resilient_topology.HookRegistry`
(``engine.hooks.register(PrimarySwitch, fn)``). ``_async`` code calls ``async_fire`` and
``async_settle``; ``scripts/unasync.py`` renames them to :func:`fire` and :func:`settle` for
``_sync``, because a sync engine runs hooks inline on pymongo's monitor threads and has no
hook tasks to wait for.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from resilient_topology import Address
from resilient_topology.hooks import HookRegistry
from resilient_topology.mongo import PymongoHeartbeatAdapter

__all__ = [
    "LegacyHook",
    "PrimarySwitch",
    "SwitchReason",
    "async_fire",
    "async_settle",
    "fire",
    "settle",
]

logger = logging.getLogger("mongomancy.hooks")

SwitchReason: TypeAlias = Literal["election", "topology", "reconnect"]
LegacyHook: TypeAlias = Callable[[Any], Any]
"""A receiver registered with ``engine.register_hook(fn)``: called as ``fn(engine)``."""


@dataclass(frozen=True, slots=True)
class PrimarySwitch:
    """The engine's primary moved, or the engine made a new client.

    ``reason`` is ``"election"`` when heartbeats showed a primary other than the last known one,
    ``"topology"`` when heartbeats showed the primary lost (``new`` is ``None``), and
    ``"reconnect"`` after :meth:`Engine.reconnect` (``new`` is ``None``: the new client has not
    yet discovered a primary). ``at`` is :func:`time.monotonic`.
    """

    previous: Address | None
    new: Address | None
    reason: SwitchReason
    at: float


def _call_legacy(hook: LegacyHook, engine: object) -> Any:
    try:
        return hook(engine)
    except Exception:
        logger.exception("engine hook %r failed; the others still run", hook)
        return None


async def async_fire(
    registry: HookRegistry, event: PrimarySwitch, legacy: Iterable[LegacyHook], engine: object
) -> None:
    """Dispatch ``event`` to typed receivers, then call ``fn(engine)`` for legacy hooks
    (awaiting those that return an awaitable)."""
    await registry.dispatch(event)
    if event.new is None and event.reason != "reconnect":
        return  # legacy hooks hear about a new primary or a new client, not about a loss
    for hook in tuple(legacy):
        result = _call_legacy(hook, engine)
        if inspect.isawaitable(result):
            try:
                await result
            except Exception:
                logger.exception("engine hook %r failed; the others still run", hook)


def fire(
    registry: HookRegistry, event: PrimarySwitch, legacy: Iterable[LegacyHook], engine: object
) -> None:
    """The sync form of :func:`async_fire`: awaitables returned by hooks are closed, unrun."""
    registry.dispatch_sync(event)
    if event.new is None and event.reason != "reconnect":
        return
    for hook in tuple(legacy):
        result = _call_legacy(hook, engine)
        if inspect.iscoroutine(result):
            result.close()
            logger.warning("engine hook %r is async; a sync engine cannot run it", hook)


async def async_settle(adapter: PymongoHeartbeatAdapter) -> None:
    """Wait for the hook tasks the adapter started on the event loop."""
    await adapter.wait_for_hooks()


def settle(adapter: PymongoHeartbeatAdapter) -> None:
    """Sync clients run hooks inline on their monitor threads: nothing to wait for."""
    del adapter

"""The fail-fast factory, written once for asyncio; ``_sync/factory.py`` is generated from it.

The client's own monitor does the checking: the core's :class:`PymongoHeartbeatAdapter` joins the
client's event listeners and turns each heartbeat into a snapshot, the core's waiter wakes on
each snapshot, and :func:`pymo.decision.judge` says when the outcome is known. No second
monitor runs, and a client that fails the check is closed before the error is raised.
"""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient

from resilient_topology import ServerSelectionTimeout
from resilient_topology.drivers import AsyncTopologyWaiter
from resilient_topology.mongo import PymongoHeartbeatAdapter, TopologySnapshot

from .._backends import async_close_client, async_open_client
from ..decision import Verdict, decided, failure, judge
from ..seeds import plan_client
from ..selectors import Selectors

__all__ = ["async_mongo_client", "open_checked"]


async def async_mongo_client(
    *args: Any,
    fail_fast: bool = True,
    state_selectors: Any = None,
    type_selectors: Any = None,
    fail_fast_timeout: float | None = None,
    **kwargs: Any,
) -> AsyncMongoClient[Any]:
    """A connected client once a seed suits the selectors; see the package README for the rules.

    Takes the client's own arguments plus pymo's keywords. ``fail_fast=False`` returns a plain
    client. Raises ``pymo.errors.ServerSelectionTryOnceTimeoutError`` when no seed suits, and
    ``pymo.errors.PymoConfigurationError`` when the arguments yield no seed.
    """
    if not fail_fast:
        return AsyncMongoClient(*args, **kwargs)
    selectors = Selectors.of(state_selectors, type_selectors)
    client, _ = await open_checked(args, kwargs, selectors, fail_fast_timeout)
    return client


async def open_checked(
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    selectors: Selectors,
    fail_fast_timeout: float | None = None,
) -> tuple[AsyncMongoClient[Any], Verdict]:
    """Open a client and wait for the verdict; also used by the command line for its report."""
    plan = plan_client(args, kwargs, fail_fast_timeout)
    adapter = PymongoHeartbeatAdapter(plan.settings)
    waiter: AsyncTopologyWaiter[TopologySnapshot] = AsyncTopologyWaiter(adapter.snapshot)
    unsubscribe = adapter.subscribe(waiter.publish)
    listeners = [*(plan.kwargs.get("event_listeners") or ()), adapter]
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        *plan.args, **{**plan.kwargs, "event_listeners": listeners}
    )
    try:
        await async_open_client(client)
        try:
            snapshot = await waiter.wait_for(decided(selectors), plan.timeout, what="a seed")
        except ServerSelectionTimeout:
            snapshot = adapter.snapshot
        verdict = judge(snapshot, selectors)
        if not verdict.ok:
            raise failure(verdict, selectors, plan.timeout)
    except BaseException:
        await async_close_client(client)
        raise
    finally:
        unsubscribe()
        waiter.close()
    return client, verdict

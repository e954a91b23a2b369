"""The topology waiter, written once for asyncio; the sync twin is generated from this file."""

from __future__ import annotations

import threading

import pytest

from resilient_topology import ConfigurationError, ServerSelectionTimeout
from resilient_topology.drivers import AsyncTopologyWaiter


async def test_returns_at_once_when_the_predicate_already_holds() -> None:
    waiter = AsyncTopologyWaiter(3)
    assert await waiter.wait_for(lambda v: v == 3, timeout=0) == 3


async def test_wakes_on_a_publication_from_another_thread() -> None:
    waiter = AsyncTopologyWaiter(0)
    ready = threading.Event()

    def publisher() -> None:
        ready.wait(5)
        for value in range(1, 6):
            waiter.publish(value)

    thread = threading.Thread(target=publisher)
    thread.start()
    try:
        ready.set()
        assert await waiter.wait_for(lambda v: v == 5, timeout=10) == 5
    finally:
        thread.join(5)
    assert waiter.current == 5


async def test_times_out_with_a_typed_error_naming_what_was_awaited() -> None:
    waiter = AsyncTopologyWaiter("no primary")
    with pytest.raises(ServerSelectionTimeout, match="a writable server") as info:
        await waiter.wait_for(lambda v: False, timeout=0.05, what="a writable server")
    assert isinstance(info.value, TimeoutError)


async def test_close_fails_waits_at_once_and_is_idempotent() -> None:
    waiter = AsyncTopologyWaiter(0)
    waiter.close()
    waiter.close()
    assert waiter.closed
    with pytest.raises(ServerSelectionTimeout, match="closed"):
        await waiter.wait_for(lambda v: v == 1, timeout=30)


@pytest.mark.parametrize("timeout", [-1.0, float("nan"), float("inf")])
async def test_rejects_meaningless_timeouts(timeout: float) -> None:
    with pytest.raises(ConfigurationError):
        await AsyncTopologyWaiter(0).wait_for(lambda v: True, timeout=timeout)

"""Discovery's retry policy: the original's settings, enforced by the core's backoff.

The original's ``DiscoveryRetryPolicy`` waited ``0.75 s * failures`` plus or minus its jitter,
never applying ``max_interval``, and kept per-node statistics. This one keeps the constructor,
the statistics and the per-node methods, and delegates the schedule and both budgets (attempts
and deadline) to :class:`resilient_topology.backoff.RetryPolicy`, with randomness injectable.
"""

from __future__ import annotations

import asyncio
import random as _random
from collections.abc import Callable
from typing import NamedTuple, TypeGuard

from resilient_topology.backoff import JitterMode, RetryPolicy, RetryState, RetryStep
from resilient_topology.errors import ConfigurationError

from ._gossip_probe import NodeService

__all__ = ["KEEP_RETRYING", "DiscoveryRetryPolicy", "DiscoveryStats"]

KEEP_RETRYING = -1
"""``retries_per_node`` that never gives up: only when chosen explicitly."""


class DiscoveryStats(NamedTuple):
    """What happened to one node (``attempts`` = ``successes`` + ``failures``)."""

    node: NodeService
    attempts: int
    successes: int
    failures: int
    consecutive_failures: int


class _Stats(dict[NodeService, DiscoveryStats]):
    def __missing__(self, node: NodeService) -> DiscoveryStats:
        return DiscoveryStats(node, 0, 0, 0, 0)

    def record_success(self, node: NodeService) -> None:
        old = self[node]
        self[node] = old._replace(
            attempts=old.attempts + 1, successes=old.successes + 1, consecutive_failures=0
        )

    def record_failure(self, node: NodeService) -> None:
        old = self[node]
        self[node] = old._replace(
            attempts=old.attempts + 1,
            failures=old.failures + 1,
            consecutive_failures=old.consecutive_failures + 1,
        )


def _is_count(value: object) -> bool:
    """A valid ``retries_per_node``, checked at run time: callers may pass anything."""
    return type(value) is int and (value >= 1 or value == KEEP_RETRYING)


def _is_seconds(value: object) -> TypeGuard[float]:
    return type(value) in (int, float) and value >= 0  # type: ignore[operator]


class DiscoveryRetryPolicy:
    """The original's retry settings, enforced as capped exponential backoff with jitter.

    The wait after ``n`` failed attempts grows from ``retry_interval`` by ``multiplier`` up to
    ``max_interval`` (the original grew it linearly and never applied the cap). ``jitter`` in
    seconds as in the original turns full jitter on when above 0; a core mode name ("full",
    "equal", "none") is accepted too. ``retries_per_node`` bounds the failed attempts of one
    discovery episode (:data:`KEEP_RETRYING` for no bound); ``deadline`` optionally bounds its
    duration in seconds. ``random`` (returning floats in [0, 1]) can be fixed in tests.
    :attr:`policy` is the core :class:`~resilient_topology.backoff.RetryPolicy` doing the work.
    """

    def __init__(
        self,
        retries_per_node: int = 3,
        retry_interval: float = 0.5,
        jitter: float | JitterMode = 0.5,
        multiplier: float = 1.5,
        max_interval: float = 60,
        *,
        deadline: float | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        if not _is_count(retries_per_node):
            raise ConfigurationError(
                f"retries_per_node must be at least 1, or KEEP_RETRYING; got {retries_per_node!r}"
            )
        mode: JitterMode
        if isinstance(jitter, str):
            mode = jitter
        elif _is_seconds(jitter):
            mode = "full" if jitter > 0 else "none"
        else:
            raise ConfigurationError(f"jitter must be seconds >= 0 or a mode, got {jitter!r}")
        self.retries_per_node = retries_per_node
        self.retry_interval = retry_interval
        self.jitter = jitter
        self.multiplier = multiplier
        self.max_interval = max_interval
        self.policy = RetryPolicy(
            initial_delay=retry_interval,
            max_delay=max_interval,
            multiplier=multiplier,
            jitter=mode,
            max_attempts=None if retries_per_node == KEEP_RETRYING else retries_per_node,
            deadline=deadline,
        )
        self.stats = _Stats()
        self._random = random or _random.random

    @classmethod
    def recommended(cls) -> DiscoveryRetryPolicy:
        """The default of :func:`get_discoverer`: 0.1 s doubling to 5 s, 10 attempts, 60 s."""
        return cls(10, 0.1, "full", 2.0, 5.0, deadline=60.0)

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures; 0 after none."""
        return 0.0 if failures <= 0 else self.policy.delay(failures, self._random)

    def next_step(self, state: RetryState, now: float) -> RetryStep:
        """The core's decision: try again after a delay, or give up."""
        return self.policy.next_step(state, now, self._random)

    def should_retry(self, node: NodeService) -> bool:
        """The original's per-node check: fewer consecutive failures than allowed."""
        failures = self.stats[node].consecutive_failures
        return self.retries_per_node == KEEP_RETRYING or failures < self.retries_per_node

    async def wait(self, node: NodeService) -> None:
        """Sleep the backoff for ``node``'s consecutive failures (the original's interface)."""
        delay = self.delay(self.stats[node].consecutive_failures)
        if delay > 0:
            await asyncio.sleep(delay)

    def record_success(self, node: NodeService) -> None:
        self.stats.record_success(node)

    def record_failure(self, node: NodeService) -> None:
        self.stats.record_failure(node)

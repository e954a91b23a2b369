"""What the benchmark scripts share: an operations-per-second measure (not a benchmark itself)."""

from __future__ import annotations

import time
from collections.abc import Callable


def rate(operation: Callable[[], object], duration: float, warm_up: float) -> float:
    """Operations per second over ``duration`` seconds, after ``warm_up`` seconds of the same."""
    warm_until = time.perf_counter() + warm_up
    while time.perf_counter() < warm_until:
        operation()
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < duration:
        operation()
        count += 1
    return count / elapsed

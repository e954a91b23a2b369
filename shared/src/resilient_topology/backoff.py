"""Retry and reconnect pacing as pure values: :class:`RetryPolicy` and :class:`RetryState`.

The policy only computes; it never sleeps. Drivers pass in ``now`` (any monotonic clock, in
seconds) and ``random`` (a callable returning a float in ``[0, 1]``), so every schedule is
reproducible in tests and the same code serves the sync and async drivers.

A reconnect loop looks like::

    state = RetryState.begin(now=clock())
    while True:
        try:
            return connect()
        except ConnectionFailure as exc:
            state = state.failed(exc)
        step = policy.next_step(state, clock(), rng.random)
        if isinstance(step, GiveUp):
            raise step.error()
        sleep(step.delay)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, TypeAlias, TypeGuard, get_args

from .errors import ConfigurationError, ReconnectExhausted

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "NO_RETRY",
    "GiveUp",
    "GiveUpReason",
    "JitterMode",
    "Retry",
    "RetryPolicy",
    "RetryState",
    "RetryStep",
]

JitterMode: TypeAlias = Literal["full", "equal", "none"]
"""``full``: uniform in ``[0, d]``; ``equal``: uniform in ``[d/2, d]``; ``none``: exactly ``d``."""

GiveUpReason: TypeAlias = Literal["max_attempts", "deadline"]

_JITTER_MODES: frozenset[str] = frozenset(get_args(JitterMode))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to wait between attempts, and when to stop.

    Delays grow geometrically from ``initial_delay`` by ``multiplier`` up to ``max_delay``, then
    jitter spreads them so that many clients that lost the same server do not return in step
    ("full" jitter spreads best; "equal" keeps at least half of each delay). ``max_attempts``
    counts every try, the first included; ``deadline`` is measured from the first try. ``None``
    means no limit of that kind. Derive variants with :func:`dataclasses.replace`, which checks
    them again.
    """

    initial_delay: float = 0.1
    max_delay: float = 10.0
    multiplier: float = 2.0
    jitter: JitterMode = "full"
    max_attempts: int | None = None
    deadline: float | None = 30.0

    def __post_init__(self) -> None:
        _check_seconds("initial_delay", self.initial_delay)
        _check_seconds("max_delay", self.max_delay)
        if self.initial_delay > self.max_delay:
            raise ConfigurationError(
                f"initial_delay ({self.initial_delay}) must not exceed max_delay ({self.max_delay})"
            )
        if not _is_number(self.multiplier) or not math.isfinite(self.multiplier):
            raise ConfigurationError(f"multiplier must be a finite number, got {self.multiplier!r}")
        if self.multiplier < 1:
            raise ConfigurationError(
                f"multiplier must be at least 1 (delays never shrink), got {self.multiplier}"
            )
        if self.jitter not in _JITTER_MODES:
            raise ConfigurationError(
                f"jitter must be one of {sorted(_JITTER_MODES)}, got {self.jitter!r}"
            )
        if self.max_attempts is not None:
            if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
                raise ConfigurationError(
                    f"max_attempts must be an integer or None, got {self.max_attempts!r}"
                )
            if self.max_attempts < 1:
                raise ConfigurationError(
                    f"max_attempts must be at least 1 (the first try counts), "
                    f"got {self.max_attempts}"
                )
        if self.deadline is not None:
            _check_seconds("deadline", self.deadline)
            if self.deadline == 0:
                raise ConfigurationError("deadline must be positive, or None for no deadline")

    def base_delay(self, attempt: int) -> float:
        """The capped delay after failed attempt ``attempt``, before jitter."""
        _check_attempt(attempt)
        if self.initial_delay == 0:
            return 0.0
        # Compare logarithms first: multiplier**n overflows long before the cap stops mattering.
        steps = attempt - 1
        growth = steps * math.log(self.multiplier)
        if growth >= math.log(self.max_delay) - math.log(self.initial_delay):
            return self.max_delay
        try:
            value = self.initial_delay * self.multiplier**steps
        except OverflowError:  # a tiny initial delay times a huge factor still under the cap
            value = math.exp(math.log(self.initial_delay) + growth)
        return min(self.max_delay, value)

    def delay(self, attempt: int, random: Callable[[], float]) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1 is the wait before the 2nd try).

        The result lies in ``[0, max_delay]``. ``random`` is called once, except with no jitter.
        """
        base = self.base_delay(attempt)
        if self.jitter == "none":
            return base
        fraction = random()
        if not _is_number(fraction) or not 0.0 <= fraction <= 1.0:
            raise ConfigurationError(f"random() must return a float in [0, 1], got {fraction!r}")
        if self.jitter == "full":
            return min(base, base * fraction)
        return min(base, base / 2 + base / 2 * fraction)

    def next_step(self, state: RetryState, now: float, random: Callable[[], float]) -> RetryStep:
        """Decide whether to try again after ``state``, and after how long.

        Both budgets are enforced: no try beyond ``max_attempts``, and none starting after the
        deadline. A delay that would cross the deadline is shortened to end on it, so the last
        chance is still taken; with no time left at all, the answer is :class:`GiveUp`. Before
        any attempt (``state.attempts == 0``) the answer is to try at once.
        """
        if not _is_number(now) or not math.isfinite(now):
            raise ConfigurationError(f"now must be a finite number, got {now!r}")
        attempts = state.attempts
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return GiveUp("max_attempts", attempts, state.last_error)
        wait = 0.0 if attempts == 0 else self.delay(attempts, random)
        if self.deadline is None:
            return Retry(wait, attempts + 1)
        end = state.started_at + self.deadline
        if now >= end:
            return GiveUp("deadline", attempts, state.last_error)
        if now + wait > end:
            wait = end - now
            # Rounding may still land a hair past the deadline; step down until it does not.
            while wait > 0 and now + wait > end:
                wait = math.nextafter(wait, 0.0)
        return Retry(wait, attempts + 1)


@dataclass(frozen=True, slots=True)
class RetryState:
    """What a retry loop has done so far; each failure makes a new state."""

    started_at: float
    attempts: int = 0
    last_error: BaseException | None = None

    def __post_init__(self) -> None:
        if not _is_number(self.started_at) or not math.isfinite(self.started_at):
            raise ConfigurationError(f"started_at must be a finite number, got {self.started_at!r}")
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ConfigurationError(f"attempts must be an integer, got {self.attempts!r}")
        if self.attempts < 0:
            raise ConfigurationError(f"attempts must not be negative, got {self.attempts}")

    @classmethod
    def begin(cls, now: float) -> RetryState:
        """The state before the first try; the deadline counts from ``now``."""
        return cls(started_at=now)

    def failed(self, error: BaseException | None = None) -> RetryState:
        """The state after one more failed attempt."""
        return replace(self, attempts=self.attempts + 1, last_error=error)

    def elapsed(self, now: float) -> float:
        """Seconds since the first try (never negative, even if the clock was wound back)."""
        return max(0.0, now - self.started_at)


@dataclass(frozen=True, slots=True)
class Retry:
    """Wait ``delay`` seconds, then make attempt number ``attempt``."""

    delay: float
    attempt: int


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop retrying: the ``reason`` budget is spent after ``attempts`` attempts."""

    reason: GiveUpReason
    attempts: int
    last_error: BaseException | None

    @property
    def message(self) -> str:
        budget = "ran out of attempts" if self.reason == "max_attempts" else "reached its deadline"
        text = f"gave up after {self.attempts} attempt{'s' if self.attempts != 1 else ''}: {budget}"
        if self.last_error is not None:
            text += f"; last error: {_describe(self.last_error)}"
        return text

    def error(self) -> ReconnectExhausted:
        """The exception to raise, with the last attempt's error as its ``__cause__``."""
        exc = ReconnectExhausted(self.message, attempts=self.attempts, last_error=self.last_error)
        exc.__cause__ = self.last_error
        exc.__suppress_context__ = True
        return exc


RetryStep: TypeAlias = Retry | GiveUp


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_seconds(name: str, value: object) -> None:
    if not _is_number(value) or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a finite number of seconds, got {value!r}")
    if value < 0:
        raise ConfigurationError(f"{name} must not be negative, got {value}")


def _check_attempt(attempt: object) -> None:
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ConfigurationError(f"attempt must be an integer of at least 1, got {attempt!r}")


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


DEFAULT_RETRY_POLICY = RetryPolicy()
"""0.1 s doubling to 10 s with full jitter, for at most 30 s in all; the class defaults."""

NO_RETRY = RetryPolicy(max_attempts=1, deadline=None)
"""Try once and report the failure: for callers that want to fail fast."""

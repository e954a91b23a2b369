from __future__ import annotations

import dataclasses
import math
import random as random_module

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_topology.backoff import (
    DEFAULT_RETRY_POLICY,
    NO_RETRY,
    GiveUp,
    Retry,
    RetryPolicy,
    RetryState,
)
from resilient_topology.errors import ConfigurationError, ConnectionFailure, ReconnectExhausted


def fixed(value: float):
    return lambda: value


def never():
    raise AssertionError("random must not be called")


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"initial_delay": -0.1}, "initial_delay must not be negative"),
        ({"max_delay": -1.0, "initial_delay": 0.0}, "max_delay must not be negative"),
        ({"initial_delay": float("nan")}, "initial_delay must be a finite number"),
        ({"max_delay": float("inf")}, "max_delay must be a finite number"),
        ({"initial_delay": "1"}, "initial_delay must be a finite number"),
        ({"initial_delay": 5.0, "max_delay": 1.0}, "must not exceed max_delay"),
        ({"multiplier": 0.5}, "multiplier must be at least 1"),
        ({"multiplier": float("nan")}, "multiplier must be a finite number"),
        ({"jitter": "half"}, "jitter must be one of"),
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
        ({"max_attempts": True}, "max_attempts must be an integer"),
        ({"max_attempts": 2.0}, "max_attempts must be an integer"),
        ({"deadline": 0}, "deadline must be positive"),
        ({"deadline": -5.0}, "deadline must not be negative"),
    ],
)
def test_invalid_policies_are_refused(changes: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        RetryPolicy(**changes)  # type: ignore[arg-type]


def test_replace_validates_again() -> None:
    with pytest.raises(ConfigurationError):
        dataclasses.replace(DEFAULT_RETRY_POLICY, multiplier=0.9)


def test_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="multiplier"):
        RetryPolicy(multiplier=0)


def test_defaults() -> None:
    assert RetryPolicy() == DEFAULT_RETRY_POLICY
    assert DEFAULT_RETRY_POLICY.jitter == "full"
    assert DEFAULT_RETRY_POLICY.multiplier == 2
    assert DEFAULT_RETRY_POLICY.max_attempts is None
    assert DEFAULT_RETRY_POLICY.deadline == 30.0
    assert NO_RETRY.max_attempts == 1


# --- the schedule -----------------------------------------------------------------------------


def test_delays_grow_geometrically_and_cap() -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=5.0, multiplier=3, jitter="none")
    assert [policy.delay(n, never) for n in range(1, 6)] == [0.5, 1.5, 4.5, 5.0, 5.0]


def test_huge_attempt_numbers_do_not_overflow() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=60.0, jitter="none")
    assert policy.delay(10_000, never) == 60.0


def test_multiplier_one_gives_constant_delays() -> None:
    policy = RetryPolicy(initial_delay=2.0, max_delay=2.0, multiplier=1, jitter="none")
    assert {policy.delay(n, never) for n in (1, 2, 50)} == {2.0}


def test_zero_initial_delay_retries_at_once() -> None:
    policy = RetryPolicy(initial_delay=0.0, max_delay=1.0)
    assert policy.delay(7, fixed(0.9)) == 0.0


def test_full_jitter_scales_the_whole_delay() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=8.0, jitter="full")
    assert policy.delay(3, fixed(0.25)) == 1.0
    assert policy.delay(3, fixed(0.0)) == 0.0
    assert policy.delay(3, fixed(1.0)) == 4.0


def test_equal_jitter_keeps_half() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=8.0, jitter="equal")
    assert policy.delay(3, fixed(0.0)) == 2.0
    assert policy.delay(3, fixed(0.5)) == 3.0
    assert policy.delay(3, fixed(1.0)) == 4.0


@pytest.mark.parametrize("bad", [-0.01, 1.5, float("nan")])
def test_random_outside_unit_interval_is_refused(bad: float) -> None:
    with pytest.raises(ConfigurationError, match=r"random\(\) must return"):
        RetryPolicy().delay(1, fixed(bad))


@pytest.mark.parametrize("attempt", [0, -1, True])
def test_attempts_count_from_one(attempt: int) -> None:
    with pytest.raises(ConfigurationError, match="attempt must be an integer of at least 1"):
        RetryPolicy().delay(attempt, fixed(0.5))


def test_same_random_source_same_schedule() -> None:
    policy = RetryPolicy(initial_delay=0.1, max_delay=3.0)
    first = random_module.Random(42)
    second = random_module.Random(42)
    assert [policy.delay(n, first.random) for n in range(1, 20)] == [
        policy.delay(n, second.random) for n in range(1, 20)
    ]


# --- retry state and next_step ------------------------------------------------------------------


def test_state_transitions_are_new_values() -> None:
    start = RetryState.begin(now=100.0)
    error = ConnectionFailure("refused")
    after = start.failed(error)
    assert (start.attempts, start.last_error) == (0, None)
    assert (after.attempts, after.last_error, after.started_at) == (1, error, 100.0)
    assert after.elapsed(103.5) == 3.5
    assert after.elapsed(99.0) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"started_at": float("nan")},
        {"started_at": 0.0, "attempts": -1},
        {"started_at": 0.0, "attempts": 1.5},
    ],
)
def test_invalid_states_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        RetryState(**kwargs)  # type: ignore[arg-type]


def test_first_step_is_immediate() -> None:
    step = RetryPolicy().next_step(RetryState.begin(0.0), 0.0, never)
    assert step == Retry(delay=0.0, attempt=1)


def test_next_step_uses_the_schedule() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=10.0, jitter="none", deadline=None)
    state = RetryState.begin(0.0).failed().failed()
    assert policy.next_step(state, 5.0, never) == Retry(delay=2.0, attempt=3)


def test_attempt_budget() -> None:
    policy = RetryPolicy(initial_delay=1.0, jitter="none", max_attempts=3, deadline=None)
    error = ConnectionFailure("boom")
    state = RetryState.begin(0.0)
    steps = []
    for _ in range(3):
        state = state.failed(error)
        steps.append(policy.next_step(state, 0.0, never))
    assert steps[:2] == [Retry(1.0, 2), Retry(2.0, 3)]
    assert steps[2] == GiveUp("max_attempts", 3, error)


def test_no_retry_gives_up_after_one_attempt() -> None:
    state = RetryState.begin(0.0).failed(ConnectionFailure("x"))
    step = NO_RETRY.next_step(state, 0.0, never)
    assert isinstance(step, GiveUp)
    assert step.reason == "max_attempts"


def test_delay_crossing_the_deadline_is_shortened() -> None:
    policy = RetryPolicy(initial_delay=4.0, max_delay=4.0, jitter="none", deadline=10.0)
    state = RetryState.begin(100.0).failed()
    assert policy.next_step(state, 107.0, never) == Retry(delay=3.0, attempt=2)


def test_no_time_left_gives_up() -> None:
    policy = RetryPolicy(initial_delay=1.0, jitter="none", deadline=10.0)
    error = TimeoutError("slow")
    state = RetryState.begin(100.0).failed(error)
    assert policy.next_step(state, 110.0, never) == GiveUp("deadline", 1, error)
    assert policy.next_step(state, 250.0, never) == GiveUp("deadline", 1, error)


def test_deadline_checked_before_the_first_attempt_too() -> None:
    policy = RetryPolicy(deadline=1.0)
    assert isinstance(policy.next_step(RetryState.begin(0.0), 2.0, never), GiveUp)


def test_attempt_budget_wins_over_deadline() -> None:
    policy = RetryPolicy(max_attempts=1, deadline=1.0)
    step = policy.next_step(RetryState.begin(0.0).failed(), 5.0, never)
    assert isinstance(step, GiveUp)
    assert step.reason == "max_attempts"


def test_now_must_be_finite() -> None:
    with pytest.raises(ConfigurationError, match="now must be a finite number"):
        RetryPolicy().next_step(RetryState.begin(0.0), math.inf, never)


# --- giving up ----------------------------------------------------------------------------------


def test_give_up_builds_reconnect_exhausted() -> None:
    cause = ConnectionRefusedError("connection refused")
    exc = GiveUp("deadline", 4, cause).error()
    assert isinstance(exc, ReconnectExhausted)
    assert isinstance(exc, ConnectionFailure)
    assert (exc.attempts, exc.last_error) == (4, cause)
    assert exc.__cause__ is cause
    assert str(exc) == (
        "gave up after 4 attempts: reached its deadline; "
        "last error: ConnectionRefusedError: connection refused"
    )


def test_give_up_message_without_error() -> None:
    give_up = GiveUp("max_attempts", 1, None)
    assert give_up.message == "gave up after 1 attempt: ran out of attempts"
    assert give_up.error().__cause__ is None


def test_give_up_error_can_be_raised() -> None:
    with pytest.raises(ReconnectExhausted, match="gave up after 2 attempts") as info:
        raise GiveUp("max_attempts", 2, OSError("reset")).error()
    assert isinstance(info.value.__cause__, OSError)


# --- properties ---------------------------------------------------------------------------------

seconds = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)
unit = st.floats(min_value=0.0, max_value=1.0)


@st.composite
def policies(draw: st.DrawFn, *, deadline: bool = False) -> RetryPolicy:
    low, high = sorted((draw(seconds), draw(seconds)))
    return RetryPolicy(
        initial_delay=low,
        max_delay=high,
        multiplier=draw(st.floats(min_value=1.0, max_value=100.0)),
        jitter=draw(st.sampled_from(["full", "equal", "none"])),
        max_attempts=draw(st.none() | st.integers(min_value=1, max_value=50)),
        deadline=draw(st.floats(min_value=1e-3, max_value=1e5)) if deadline else None,
    )


@given(policies(), st.integers(min_value=1, max_value=10_000), unit)
def test_delay_is_within_zero_and_the_cap(policy: RetryPolicy, attempt: int, r: float) -> None:
    delay = policy.delay(attempt, fixed(r))
    assert 0.0 <= delay <= policy.max_delay


@given(policies(), st.integers(min_value=1, max_value=200))
def test_delays_never_shrink_before_jitter(policy: RetryPolicy, attempt: int) -> None:
    assert policy.base_delay(attempt) <= policy.base_delay(attempt + 1)


@given(
    policies(deadline=True),
    st.floats(min_value=-1e6, max_value=1e6),
    st.lists(unit, min_size=1, max_size=60),
    st.lists(st.floats(min_value=0.0, max_value=50.0), min_size=1, max_size=60),
)
def test_retries_never_start_after_the_deadline(
    policy: RetryPolicy, start: float, randoms: list[float], durations: list[float]
) -> None:
    assert policy.deadline is not None
    end = start + policy.deadline
    now = start
    state = RetryState.begin(now)
    total_delay = 0.0
    for i in range(60):
        now += durations[i % len(durations)]  # the attempt itself takes time
        state = state.failed(ConnectionFailure("down"))
        step = policy.next_step(state, now, fixed(randoms[i % len(randoms)]))
        if isinstance(step, GiveUp):
            assert now >= end or step.reason == "max_attempts"
            break
        assert step.delay >= 0.0
        assert step.attempt == state.attempts + 1
        total_delay += step.delay
        now += step.delay
        assert now <= end
    assert total_delay <= policy.deadline * (1 + 1e-9) + 1e-9

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_topology._types import ServerType
from resilient_topology.address import Address
from resilient_topology.errors import ConfigurationError, InvalidAddress
from resilient_topology.heartbeat import (
    RTT_ALPHA,
    HeartbeatTracker,
    RttStats,
    SeedOutcome,
    ServerHeartbeat,
    moving_average_rtt,
)

A = Address("a", 27017)
B = Address("b", 27017)
C = Address("c", 27017)
OTHER = Address("discovered", 27018)


# --- moving average -----------------------------------------------------------------------------


def test_first_sample_sets_the_average() -> None:
    assert moving_average_rtt(None, 0.25) == 0.25


def test_later_samples_are_weighted() -> None:
    assert RTT_ALPHA == 0.2
    assert moving_average_rtt(0.1, 0.6) == pytest.approx(0.2 * 0.6 + 0.8 * 0.1)
    assert moving_average_rtt(1.0, 0.0, alpha=0.5) == 0.5
    assert moving_average_rtt(1.0, 3.0, alpha=1.0) == 3.0


@pytest.mark.parametrize("sample", [-0.001, float("nan"), float("inf"), "0.1", True])
def test_bad_samples_are_refused(sample: object) -> None:
    with pytest.raises(ConfigurationError, match="RTT sample"):
        moving_average_rtt(0.1, sample)  # type: ignore[arg-type]


@pytest.mark.parametrize("alpha", [0.0, -0.2, 1.5, float("nan")])
def test_bad_alpha_is_refused(alpha: float) -> None:
    with pytest.raises(ConfigurationError, match="alpha"):
        moving_average_rtt(0.1, 0.2, alpha=alpha)


def test_bad_previous_average_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="previous RTT average"):
        moving_average_rtt(float("nan"), 0.2)


def test_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="RTT sample"):
        moving_average_rtt(None, -1.0)


def test_rtt_stats() -> None:
    stats = RttStats().add(0.5).add(0.1).add(0.3)
    assert (stats.last, stats.min, stats.max, stats.samples) == (0.3, 0.1, 0.5, 3)
    expected = moving_average_rtt(moving_average_rtt(0.5, 0.1), 0.3)
    assert stats.average == expected
    assert RttStats().samples == 0
    assert RttStats().average is None


samples = st.floats(min_value=0.0, max_value=1e4, allow_nan=False, allow_infinity=False)


@given(st.lists(samples, min_size=1, max_size=50), st.floats(min_value=1e-3, max_value=1.0))
def test_moving_average_stays_within_the_samples(values: list[float], alpha: float) -> None:
    average: float | None = None
    for seen, value in enumerate(values, start=1):
        average = moving_average_rtt(average, value, alpha)
        assert min(values[:seen]) <= average <= max(values[:seen])


@given(st.lists(samples, min_size=1, max_size=50))
def test_rtt_stats_agree_with_their_samples(values: list[float]) -> None:
    stats = RttStats()
    for value in values:
        stats = stats.add(value)
    assert stats.samples == len(values)
    assert stats.last == values[-1]
    assert (stats.min, stats.max) == (min(values), max(values))
    assert stats.average is not None
    assert min(values) <= stats.average <= max(values)


# --- transitions ------------------------------------------------------------------------------


def test_transitions_return_new_trackers() -> None:
    before = HeartbeatTracker.for_seeds([A])
    after = before.started(A, 1.0)
    assert before.get(A) is None
    record = after.get(A)
    assert record is not None
    assert (record.last_started_at, record.in_progress, record.awaited) == (1.0, True, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        after.seeds = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        after.servers[B] = ServerHeartbeat(B)  # type: ignore[index]


def test_success_records_rtt_and_reply() -> None:
    tracker = (
        HeartbeatTracker.for_seeds([A])
        .started(A, 10.0)
        .succeeded(A, 10.2, rtt=0.2, reply_kind=ServerType.RSPrimary)
        .started(A, 20.0)
        .succeeded(A, 20.4, rtt=0.4, reply_kind="leader")
    )
    record = tracker.get(A)
    assert record is not None
    assert record.last_succeeded_at == 20.4
    assert record.last_reply_kind == "leader"
    assert record.last_duration == 0.4
    assert record.last_outcome == "succeeded"
    assert not record.in_progress
    assert record.rtt == RttStats(
        last=0.4, average=moving_average_rtt(0.2, 0.4), min=0.2, max=0.4, samples=2
    )


def test_average_rtt_query() -> None:
    tracker = HeartbeatTracker().succeeded(A, 1.0, rtt=0.5).succeeded(A, 2.0, rtt=1.0)
    assert tracker.average_rtt(A) == moving_average_rtt(0.5, 1.0)
    assert tracker.average_rtt(B) is None
    assert tracker.failed(A, 3.0, "down").average_rtt(A) is None


def test_awaited_checks_do_not_feed_rtt() -> None:
    tracker = (
        HeartbeatTracker.for_seeds([A])
        .succeeded(A, 1.0, rtt=0.01)
        .started(A, 1.0, awaited=True)
        .succeeded(A, 11.0, rtt=10.0, awaited=True, reply_kind=ServerType.RSSecondary)
    )
    record = tracker.get(A)
    assert record is not None
    assert record.awaited
    assert record.last_duration == 10.0
    assert (record.rtt.samples, record.rtt.max) == (1, 0.01)


def test_success_without_rtt() -> None:
    record = HeartbeatTracker().succeeded(A, 1.0, rtt=None).get(A)
    assert record is not None
    assert record.rtt.samples == 0
    assert record.last_outcome == "succeeded"


def test_failures_count_and_reset_rtt() -> None:
    tracker = (
        HeartbeatTracker.for_seeds([A])
        .succeeded(A, 1.0, rtt=0.1)
        .started(A, 5.0)
        .failed(A, 5.5, ConnectionRefusedError("refused"))
        .started(A, 6.0)
        .failed(A, 6.25, "timed out", duration=3.0)
    )
    record = tracker.get(A)
    assert record is not None
    assert record.consecutive_failures == 2
    assert record.last_error == "timed out"
    assert record.last_duration == 3.0
    assert record.last_failed_at == 6.25
    assert record.last_succeeded_at == 1.0
    assert record.rtt == RttStats()

    recovered = tracker.succeeded(A, 7.0, rtt=0.3).get(A)
    assert recovered is not None
    assert recovered.consecutive_failures == 0
    assert recovered.last_error == "timed out"  # history is kept
    assert recovered.rtt.average == 0.3  # a new series starts


def test_failure_duration_defaults_to_time_since_start() -> None:
    record = HeartbeatTracker().started(A, 2.0).failed(A, 2.75, OSError()).get(A)
    assert record is not None
    assert record.last_duration == 0.75
    assert record.last_error == "OSError"
    unstarted = HeartbeatTracker().failed(A, 2.75, "x").get(A)
    assert unstarted is not None
    assert unstarted.last_duration is None


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.started(A, float("nan")),
        lambda t: t.succeeded(A, 1.0, rtt=-0.5),
        lambda t: t.succeeded(A, math.inf, rtt=0.5),
        lambda t: t.failed(A, 1.0, "x", duration=float("nan")),
    ],
)
def test_bad_numbers_are_refused(call) -> None:
    with pytest.raises(ConfigurationError):
        call(HeartbeatTracker())


def test_addresses_must_be_address_objects() -> None:
    with pytest.raises(InvalidAddress, match="expected an Address"):
        HeartbeatTracker().started("a:27017", 1.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidAddress, match=r"Address\.of"):
        HeartbeatTracker.for_seeds(["a"])  # type: ignore[list-item]


def test_forget_drops_non_seeds_only() -> None:
    tracker = HeartbeatTracker.for_seeds([A]).failed(A, 1.0, "down").succeeded(OTHER, 1.0, 0.1)
    forgotten = tracker.forget(OTHER).forget(A).forget(B)
    assert forgotten.get(OTHER) is None
    assert forgotten.get(A) == tracker.get(A)


def test_trackers_compare_and_hash_by_value() -> None:
    one = HeartbeatTracker.for_seeds([A, B]).succeeded(A, 1.0, 0.1)
    two = HeartbeatTracker.for_seeds([A, B]).succeeded(A, 1.0, 0.1)
    assert one == two
    assert hash(one) == hash(two)
    assert one != two.started(B, 2.0)


# --- seeds --------------------------------------------------------------------------------------


def test_seed_list_is_deduplicated_and_ordered() -> None:
    assert HeartbeatTracker.for_seeds([B, A, B]).seeds == (B, A)
    with pytest.raises(ConfigurationError, match="at least one seed"):
        HeartbeatTracker.for_seeds([])


def test_seed_outcomes() -> None:
    tracker = (
        HeartbeatTracker.for_seeds([A, B, C])
        .started(A, 1.0)
        .succeeded(A, 1.1, rtt=0.1, reply_kind=ServerType.RSPrimary)
        .started(B, 1.0)
        .failed(B, 1.5, ConnectionRefusedError("refused"))
        .started(C, 1.0)
    )
    assert dict(tracker.seed_outcomes()) == {
        A: SeedOutcome(A, "succeeded", reply_kind=ServerType.RSPrimary, at=1.1),
        B: SeedOutcome(B, "failed", error="ConnectionRefusedError: refused", at=1.5),
        C: SeedOutcome(C, "pending"),
    }
    assert list(tracker.seed_outcomes()) == [A, B, C]
    assert tracker.answered_seeds() == (A, B)
    assert tracker.pending_seeds() == (C,)
    assert tracker.failed_seeds() == (B,)
    assert tracker.succeeded_seeds() == (A,)
    assert tracker.any_seed_succeeded()
    assert not tracker.all_seeds_answered()
    assert tracker.failed(C, 2.0, "timeout").all_seeds_answered()


def test_latest_outcome_wins() -> None:
    tracker = HeartbeatTracker.for_seeds([A]).succeeded(A, 1.0, 0.1).failed(A, 2.0, "gone")
    assert tracker.seed_outcomes()[A].status == "failed"
    assert not tracker.any_seed_succeeded()
    assert tracker.answered_seeds() == (A,)
    again = tracker.succeeded(A, 3.0, 0.1, reply_kind="follower")
    assert again.seed_outcomes()[A] == SeedOutcome(A, "succeeded", reply_kind="follower", at=3.0)


def test_non_seed_heartbeats_never_answer_for_seeds() -> None:
    tracker = HeartbeatTracker.for_seeds([A]).succeeded(OTHER, 1.0, 0.1, reply_kind="leader")
    assert tracker.get(OTHER) is not None
    assert OTHER in tracker.servers
    assert tracker.pending_seeds() == (A,)
    assert not tracker.any_seed_succeeded()
    assert list(tracker.seed_outcomes()) == [A]


def test_a_check_in_progress_is_not_an_answer() -> None:
    tracker = HeartbeatTracker.for_seeds([A]).started(A, 1.0)
    assert tracker.pending_seeds() == (A,)
    assert tracker.seed_outcomes()[A].status == "pending"


def test_without_seeds_nothing_is_answered() -> None:
    tracker = HeartbeatTracker().succeeded(A, 1.0, 0.1)
    assert not tracker.all_seeds_answered()
    assert not tracker.any_seed_succeeded()
    assert tracker.seed_outcomes() == {}


events = st.lists(
    st.tuples(
        st.sampled_from([A, B, C, OTHER]),
        st.sampled_from(["started", "succeeded", "failed"]),
        samples,
    ),
    max_size=40,
)


@given(events)
def test_seed_queries_partition_the_seeds(steps: list[tuple[Address, str, float]]) -> None:
    tracker = HeartbeatTracker.for_seeds([A, B, C])
    now = 0.0
    for address, kind, value in steps:
        now += 1.0
        if kind == "started":
            tracker = tracker.started(address, now)
        elif kind == "succeeded":
            tracker = tracker.succeeded(address, now, rtt=value)
        else:
            tracker = tracker.failed(address, now, "down")
    pending = set(tracker.pending_seeds())
    succeeded = set(tracker.succeeded_seeds())
    failed = set(tracker.failed_seeds())
    assert pending | succeeded | failed == {A, B, C}
    assert not pending & succeeded
    assert not pending & failed
    assert not succeeded & failed
    assert set(tracker.answered_seeds()) == succeeded | failed
    assert tracker.all_seeds_answered() == (not pending)
    for record in tracker.servers.values():
        stats = record.rtt
        if stats.samples:
            assert stats.min is not None
            assert stats.max is not None
            assert stats.average is not None
            assert stats.min <= stats.average <= stats.max

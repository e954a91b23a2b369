"""The pure persistent subscription state machine: delivery, acks, naks, retries, parking."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import pytest
from clustersim.eventstore.persistent import (
    Candidate,
    Connected,
    CreateResult,
    DeleteResult,
    Delivery,
    DropReason,
    Group,
    GroupSettings,
    InvalidGroupSettings,
    NakAction,
    PersistentSubscriptionError,
    Refused,
    Registry,
    UpdateResult,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def ev(n: int) -> Candidate:
    return Candidate(n, n.to_bytes(16, "big"), f"payload-{n}")


def evs(*numbers: int) -> list[Candidate]:
    return [ev(n) for n in numbers]


def nums(deliveries: list[Delivery]) -> list[int]:
    return [d.candidate.event_number for d in deliveries]


def ids(deliveries: list[Delivery]) -> list[bytes]:
    return [d.candidate.event_id for d in deliveries]


def group(existing: int = 0, **kw: Any) -> Group:
    kw.setdefault("start_from", 0)
    return Group("orders", "g", GroupSettings(**kw), evs(*range(existing)))


# --- settings and inputs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"start_from": -2}, "start_from"),
        ({"message_timeout": -1.0}, "message_timeout"),
        ({"message_timeout": float("nan")}, "message_timeout"),
        ({"max_retry_count": -1}, "max_retry_count"),
        ({"subscriber_max_count": -1}, "subscriber_max_count"),
        ({"strategy": "Random"}, "strategy"),
    ],
)
def test_bad_settings_are_value_errors(kw: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidGroupSettings, match=words) as info:
        GroupSettings(**kw)
    assert isinstance(info.value, ValueError)


def test_candidate_needs_a_16_byte_id() -> None:
    with pytest.raises(PersistentSubscriptionError, match="16 bytes"):
        Candidate(0, b"short")


def test_out_of_order_append_is_rejected_whole() -> None:
    g = group(existing=3)
    with pytest.raises(PersistentSubscriptionError, match="increasing"):
        g.append(evs(3, 2))
    assert g.last_event_number == 2
    g.append(evs(5))  # gaps are fine
    assert g.last_event_number == 5


def test_connect_confirms_with_subscription_id_and_last_event() -> None:
    g = group(existing=3)
    assert g.connect("a", 5, 0.0) == Connected("orders::g", 2)
    assert group().connect("a", 5, 0.0) == Connected("orders::g", -1)
    with pytest.raises(PersistentSubscriptionError, match="already connected"):
        g.connect("a", 5, 0.0)
    with pytest.raises(PersistentSubscriptionError, match="allowed_in_flight"):
        g.connect("b", -1, 0.0)


def test_subscriber_max_count_refuses_extra_consumers() -> None:
    g = group(subscriber_max_count=2)
    assert isinstance(g.connect("a", 1, 0.0), Connected)
    assert isinstance(g.connect("b", 1, 0.0), Connected)
    assert g.connect("c", 1, 0.0) == Refused(DropReason.SubscriberMaxCountReached)
    assert g.consumers == ("a", "b")
    g.disconnect("a", 0.0)
    assert isinstance(g.connect("c", 1, 0.0), Connected)


# --- start point -------------------------------------------------------------------------------


def test_start_from_live_end_skips_existing_events() -> None:
    g = group(existing=3, start_from=-1)
    g.connect("a", 10, 0.0)
    assert g.pump(0.0) == []
    g.append(evs(3, 4))
    assert nums(g.pump(0.0)) == [3, 4]


def test_start_from_live_end_on_an_empty_stream_takes_the_first_event() -> None:
    g = group(start_from=-1)
    g.append(evs(0))
    g.connect("a", 10, 0.0)
    assert nums(g.pump(0.0)) == [0]


def test_start_from_zero_delivers_history_then_live() -> None:
    g = group(existing=3, start_from=0)
    g.connect("a", 10, 0.0)
    g.append(evs(3))
    assert nums(g.pump(0.0)) == [0, 1, 2, 3]


def test_start_from_n_includes_n_even_beyond_the_end() -> None:
    g = group(existing=3, start_from=1)
    g.connect("a", 10, 0.0)
    assert nums(g.pump(0.0)) == [1, 2]
    late = group(existing=3, start_from=5)
    late.connect("a", 10, 0.0)
    late.append(evs(3, 4, 5, 6))
    assert nums(late.pump(0.0)) == [5, 6]


# --- delivery and acks -------------------------------------------------------------------------


def test_every_event_delivered_and_never_again_once_acked() -> None:
    g = group(existing=5, message_timeout=1.0)
    g.connect("a", 2, 0.0)
    seen: list[int] = []
    now = 0.0
    for _ in range(10):
        out = g.pump(now)
        assert all(
            d.retry_count == 0 and d.candidate.payload == f"payload-{n}"
            for d, n in zip(out, nums(out), strict=True)
        )
        seen += nums(out)
        assert g.ack("a", ids(out), now) == ids(out)
        now += 5.0  # long past any timeout: only unacked events could come back
    assert seen == [0, 1, 2, 3, 4]
    assert g.queued == []
    assert g.in_flight == {"a": 0}
    assert g.next_deadline() is None


def test_ack_ignores_unknown_ids_and_accepts_another_consumers_event() -> None:
    g = group(existing=2)
    g.connect("a", 1, 0.0)
    g.connect("b", 1, 0.0)
    first, second = g.pump(0.0)
    assert (first.consumer_id, second.consumer_id) == ("a", "b")
    assert g.ack("a", [b"\xff" * 16, second.candidate.event_id], 0.0) == [second.candidate.event_id]
    assert g.in_flight == {"a": 1, "b": 0}


def test_round_robin_shares_events_in_order_across_three_consumers() -> None:
    g = group(existing=9)
    for c in "abc":
        g.connect(c, 10, 0.0)
    out = g.pump(0.0)
    assert nums(out) == list(range(9))
    by = {c: [d.candidate.event_number for d in out if d.consumer_id == c] for c in "abc"}
    assert by == {"a": [0, 3, 6], "b": [1, 4, 7], "c": [2, 5, 8]}


def test_pinned_behaves_like_round_robin() -> None:
    g = group(existing=4, strategy="Pinned")
    g.connect("a", 10, 0.0)
    g.connect("b", 10, 0.0)
    assert [d.consumer_id for d in g.pump(0.0)] == ["a", "b", "a", "b"]


def test_in_flight_limit_is_respected_and_acks_free_slots() -> None:
    g = group(existing=10)
    g.connect("a", 2, 0.0)
    g.connect("b", 3, 0.0)
    out = g.pump(0.0)
    assert len(out) == 5
    assert g.in_flight == {"a": 2, "b": 3}
    assert g.pump(0.0) == []
    g.ack("b", ids([d for d in out if d.consumer_id == "b"][:2]), 0.0)
    more = g.pump(0.0)
    assert [d.consumer_id for d in more] == ["b", "b"]
    assert nums(more) == [5, 6]


def test_dispatch_to_single_fills_the_first_consumer_before_moving_on() -> None:
    g = group(existing=5, strategy="DispatchToSingle")
    g.connect("a", 3, 0.0)
    g.connect("b", 3, 0.0)
    out = g.pump(0.0)
    assert [(d.consumer_id, d.candidate.event_number) for d in out] == [
        ("a", 0),
        ("a", 1),
        ("a", 2),
        ("b", 3),
        ("b", 4),
    ]
    g.ack("a", ids(out[:1]), 0.0)
    g.append(evs(5, 6))
    assert [d.consumer_id for d in g.pump(0.0)] == ["a", "b"]


def test_allowed_in_flight_zero_never_receives() -> None:
    g = group(existing=2)
    g.connect("a", 0, 0.0)
    assert g.pump(0.0) == []
    assert [e.event_number for e in g.queued] == [0, 1]


# --- disconnects -------------------------------------------------------------------------------


def test_disconnect_returns_in_flight_events_to_others_first() -> None:
    g = group(existing=6)
    g.connect("a", 2, 0.0)
    g.pump(0.0)  # a holds 0, 1
    g.disconnect("a", 1.0)
    g.disconnect("nobody", 1.0)
    assert g.consumers == ()
    assert [e.event_number for e in g.queued] == list(range(6))
    g.connect("b", 3, 2.0)
    out = g.pump(2.0)
    assert [(d.candidate.event_number, d.retry_count) for d in out] == [(0, 1), (1, 1), (2, 0)]


def test_reconnecting_consumer_gets_its_unacked_events_again() -> None:
    g = group(existing=1)
    g.connect("a", 1, 0.0)
    g.pump(0.0)
    g.disconnect("a", 0.0)
    g.connect("a", 1, 0.0)
    assert g.pump(0.0) == [Delivery("a", ev(0), 1)]


# --- timeouts, retries, parking ----------------------------------------------------------------


def test_unacked_event_redelivered_after_timeout_with_retry_count() -> None:
    g = group(existing=1, message_timeout=2.0)
    g.connect("a", 1, 0.0)
    assert g.pump(10.0) == [Delivery("a", ev(0), 0)]
    assert g.next_deadline() == 12.0
    assert g.pump(11.9) == []
    assert g.pump(12.0) == [Delivery("a", ev(0), 1)]
    assert g.next_deadline() == 14.0


def test_expire_alone_requeues_without_delivering() -> None:
    g = group(existing=1, message_timeout=1.0)
    g.connect("a", 1, 0.0)
    g.pump(0.0)
    g.expire(1.0)
    assert g.in_flight == {"a": 0}
    assert g.queued == [ev(0)]
    assert g.next_deadline() is None


def test_timeout_zero_never_expires() -> None:
    g = group(existing=1, message_timeout=0.0)
    g.connect("a", 1, 0.0)
    g.pump(0.0)
    assert g.next_deadline() is None
    assert g.pump(1e9) == []
    assert g.in_flight == {"a": 1}


def test_next_deadline_is_the_earliest_in_flight_timeout() -> None:
    g = group(existing=3, message_timeout=5.0)
    assert g.next_deadline() is None
    g.connect("a", 1, 0.0)
    g.pump(1.0)
    g.connect("b", 2, 0.0)
    g.pump(3.0)
    assert g.next_deadline() == 6.0
    g.ack("a", [ev(0).event_id], 3.0)
    assert g.next_deadline() == 8.0


def test_event_parked_after_max_retry_count_timeouts() -> None:
    g = group(existing=2, message_timeout=1.0, max_retry_count=2)
    g.connect("a", 1, 0.0)
    counts = [(d.candidate.event_number, d.retry_count) for t in range(4) for d in g.pump(t)]
    assert counts == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert g.parked == [ev(0)]


def test_max_retry_count_zero_parks_on_first_timeout() -> None:
    g = group(existing=1, message_timeout=1.0, max_retry_count=0)
    g.connect("a", 1, 0.0)
    g.pump(0.0)
    assert g.pump(1.0) == []
    assert g.parked == [ev(0)]


# --- naks --------------------------------------------------------------------------------------


def test_nak_park_parks_in_order() -> None:
    g = group(existing=3)
    g.connect("a", 3, 0.0)
    g.pump(0.0)
    assert not g.nak("a", [ev(2).event_id, ev(0).event_id], NakAction.Park, 0.0).drop_consumer
    assert g.parked == [ev(2), ev(0)]
    assert g.in_flight == {"a": 1}
    assert g.pump(0.0) == []


@pytest.mark.parametrize("action", [NakAction.Retry, NakAction.Unknown])
def test_nak_retry_and_unknown_redeliver_then_park(action: NakAction) -> None:
    g = group(existing=1, max_retry_count=1)
    g.connect("a", 1, 0.0)
    assert g.pump(0.0)[0].retry_count == 0
    g.nak("a", [ev(0).event_id], action, 0.0)
    assert g.pump(0.0) == [Delivery("a", ev(0), 1)]
    g.nak("a", [ev(0).event_id], action, 0.0)
    assert g.pump(0.0) == []
    assert g.parked == [ev(0)]


def test_retries_go_out_in_event_number_order_before_new_events() -> None:
    g = group(existing=5)
    g.connect("a", 4, 0.0)
    g.pump(0.0)  # 0..3 in flight, 4 waits
    g.nak("a", [ev(3).event_id, ev(1).event_id], NakAction.Retry, 0.0)
    assert [e.event_number for e in g.queued] == [1, 3, 4]
    assert [(d.candidate.event_number, d.retry_count) for d in g.pump(0.0)] == [(1, 1), (3, 1)]


def test_nak_skip_drops_the_event_for_good() -> None:
    g = group(existing=2, message_timeout=1.0)
    g.connect("a", 2, 0.0)
    g.pump(0.0)
    g.nak("a", [ev(0).event_id], NakAction.Skip, 0.0)
    g.ack("a", [ev(1).event_id], 0.0)
    assert g.pump(100.0) == []
    assert g.parked == []
    assert g.queued == []


def test_nak_stop_drops_the_consumer_and_redelivers_its_events() -> None:
    g = group(existing=4)
    g.connect("a", 2, 0.0)
    g.connect("b", 2, 0.0)
    g.pump(0.0)  # a: 0, 2; b: 1, 3
    assert g.nak("a", [ev(0).event_id], NakAction.Stop, 0.0).drop_consumer
    assert g.consumers == ("b",)
    g.ack("b", [ev(1).event_id, ev(3).event_id], 0.0)
    assert [(d.consumer_id, d.candidate.event_number, d.retry_count) for d in g.pump(0.0)] == [
        ("b", 0, 1),
        ("b", 2, 1),
    ]


def test_nak_ignores_ids_not_in_flight() -> None:
    g = group(existing=1)
    g.connect("a", 1, 0.0)
    assert not g.nak("a", [b"\xff" * 16], NakAction.Park, 0.0).drop_consumer
    assert g.parked == []
    assert g.queued == [ev(0)]


# --- update and registry -----------------------------------------------------------------------


def test_update_drops_consumers_keeps_position_and_applies_settings() -> None:
    g = group(existing=3, message_timeout=1.0)
    g.connect("a", 1, 0.0)
    g.connect("b", 1, 0.0)
    g.pump(0.0)
    g.ack("a", [ev(0).event_id], 0.0)
    new = GroupSettings(start_from=0, message_timeout=9.0)
    assert g.update(new) == ("a", "b")
    assert g.settings is new
    assert g.consumers == ()
    g.connect("c", 5, 0.0)
    assert [(d.candidate.event_number, d.retry_count) for d in g.pump(0.0)] == [(1, 1), (2, 0)]
    assert g.next_deadline() == 9.0


def test_registry_create_update_delete() -> None:
    reg = Registry()
    s = GroupSettings(start_from=0)
    assert reg.create("orders", "g", s, evs(0, 1)) is CreateResult.Success
    assert reg.create("orders", "g", s) is CreateResult.AlreadyExists
    assert reg.create("orders", "h", s) is CreateResult.Success
    assert reg.create("other", "g", s) is CreateResult.Success
    g = reg.get("orders", "g")
    assert g is not None
    assert g.last_event_number == 1
    assert reg.get("nope", "g") is None
    assert reg.by_subscription_id("orders::g") is g
    assert reg.by_subscription_id("x::y") is None
    assert [x.name for x in reg.groups_for("orders")] == ["g", "h"]
    g.connect("a", 1, 0.0)

    upd = reg.update("orders", "g", GroupSettings(max_retry_count=3))
    assert upd.result is UpdateResult.Success
    assert upd.dropped == ("a",)
    assert g.settings.max_retry_count == 3
    assert reg.update("orders", "zzz", s).result is UpdateResult.DoesNotExist

    g.connect("b", 1, 0.0)
    gone = reg.delete("orders", "g")
    assert gone.result is DeleteResult.Success
    assert gone.dropped == ("b",)
    assert gone.reason is DropReason.PersistentSubscriptionDeleted
    assert reg.get("orders", "g") is None
    assert reg.delete("orders", "g").result is DeleteResult.DoesNotExist
    assert reg.create("orders", "g", s) is CreateResult.Success


# --- property ----------------------------------------------------------------------------------

KINDS = ["append", "connect", "disconnect", "pump", "ack", "nak", "advance"]
# (kind, consumer, number, nak action): ``number`` is a count, a limit, a time step or a bit mask.
OPS = st.tuples(
    st.sampled_from(KINDS),
    st.sampled_from(["a", "b", "c"]),
    st.integers(0, 255),
    st.sampled_from(list(NakAction)),
)


def chosen(g: Group, consumer: Hashable, mask: int) -> list[bytes]:
    """The consumer's in-flight ids picked by bit mask (bit i = its i-th lowest id)."""
    held = sorted(eid for eid, c in g.in_flight_by_id.items() if c == consumer)
    return [eid for i, eid in enumerate(held) if mask >> i & 1]


@settings(max_examples=300, deadline=None)
@given(
    existing=st.integers(0, 4),
    start_from=st.sampled_from([-1, 0, 2]),
    timeout=st.sampled_from([0.0, 1.0, 2.0]),
    max_retry=st.integers(0, 3),
    strategy=st.sampled_from(["RoundRobin", "DispatchToSingle", "Pinned"]),
    max_subs=st.integers(0, 3),
    ops=st.lists(OPS, max_size=60),
)
def test_invariants_hold_for_random_operations(
    existing: int,
    start_from: int,
    timeout: float,
    max_retry: int,
    strategy: str,
    max_subs: int,
    ops: list[tuple[str, str, int, NakAction]],
) -> None:
    s = GroupSettings(
        start_from=start_from,
        message_timeout=timeout,
        max_retry_count=max_retry,
        strategy=strategy,
        subscriber_max_count=max_subs,
    )
    g = Group("s", "g", s, evs(*range(existing)))
    live_from = existing if start_from == -1 else start_from
    due = {ev(n).event_id for n in range(live_from, existing)}
    limits: dict[Hashable, int] = {}
    done: set[bytes] = set()  # acked or skipped while in flight
    delivered: set[bytes] = set()
    first_order: list[int] = []
    now = 0.0

    def check(out: list[Delivery]) -> None:
        for d in out:
            eid = d.candidate.event_id
            assert eid not in done, "an acked or skipped event came back"
            assert (d.retry_count == 0) == (eid not in delivered)
            if eid not in delivered:
                delivered.add(eid)
                first_order.append(d.candidate.event_number)
        assert first_order == sorted(first_order)
        for cid, n in g.in_flight.items():
            assert n <= limits[cid]
        flying, queued = set(g.in_flight_by_id), {c.event_id for c in g.queued}
        parked = {c.event_id for c in g.parked}
        parts = [done, parked, queued, flying]
        assert sum(map(len, parts)) == len(set().union(*parts)), "an event is in two places"
        assert set().union(*parts) == due, "an event was lost or invented"

    for kind, cid, number, action in ops:
        out: list[Delivery] = []
        if kind == "append":
            n = g.last_event_number + 1
            new = evs(*range(n, n + 1 + number % 3))
            g.append(new)
            due |= {c.event_id for c in new if c.event_number >= live_from}
        elif kind == "connect" and cid not in limits:
            if isinstance(g.connect(cid, 1 + number % 3, now), Connected):
                limits[cid] = 1 + number % 3
        elif kind == "disconnect":
            g.disconnect(cid, now)
            limits.pop(cid, None)
        elif kind == "pump":
            out = g.pump(now)
        elif kind == "ack":
            done |= set(g.ack(cid, chosen(g, cid, number), now))
        elif kind == "nak":
            picked = chosen(g, cid, number)
            if g.nak(cid, picked, action, now).drop_consumer:
                limits.pop(cid, None)
            if action is NakAction.Skip:
                done |= set(picked)
        elif kind == "advance":
            now += (0.5, 1.0, 2.5)[number % 3]
        check(out)

    # Eventually: one consumer acking everything drains the group; each event ends acked or parked.
    for held_by in list(limits):
        g.disconnect(held_by, now)
    limits = {"drain": 1}
    g.connect("drain", 1, now)
    for _ in range(4 * len(due) + 1):
        out = g.pump(now)
        check(out)
        done |= set(g.ack("drain", ids(out), now))
    assert g.queued == []
    assert g.in_flight_by_id == {}
    assert done | {c.event_id for c in g.parked} == due

"""The pure event log: expected versions, idempotency, positions, ``$all`` paging, deletes."""

from __future__ import annotations

import uuid

import pytest
from clustersim.eventstore.log import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    EventLog,
    NewEventData,
    ReadResult,
    StoredEvent,
    WriteResult,
)
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = 1_700_000_000_000


def new(n: int = 1, data: bytes = b"{}") -> list[NewEventData]:
    return [NewEventData(uuid.uuid4().bytes_le, "thing", data) for _ in range(n)]


def ids(events: tuple[StoredEvent, ...] | list[StoredEvent]) -> list[bytes]:
    return [e.event_id for e in events]


# --- writes and expected versions --------------------------------------------------------------


def test_first_write_numbers_from_zero_and_positions_grow() -> None:
    log = EventLog()
    assert log.last_position == -1
    assert log.current_version("s") == -1

    first = log.append("s", NO_STREAM, new(3), NOW)
    second = log.append("s", ANY, new(2, data=b"x" * 100), NOW)

    assert first.result is WriteResult.Success
    assert (first.first_event_number, first.last_event_number) == (0, 2)
    assert (second.first_event_number, second.last_event_number) == (3, 4)
    positions = [e.position for e in (*first.written, *second.written)]
    assert positions == sorted(set(positions))
    assert first.position == first.written[-1].position
    assert second.position == log.last_position == positions[-1]
    assert log.current_version("s") == 4
    assert all(e.created_epoch_ms == NOW for e in second.written)


@pytest.mark.parametrize(
    ("expected", "ok"),
    [(ANY, True), (NO_STREAM, True), (STREAM_EXISTS, False), (0, False), (-1, True)],
)
def test_expected_version_on_a_new_stream(expected: int, ok: bool) -> None:
    outcome = EventLog().append("s", expected, new(), NOW)

    assert (outcome.result is WriteResult.Success) == ok
    if not ok:
        assert outcome.result is WriteResult.WrongExpectedVersion
        assert outcome.written == ()
        assert outcome.last_event_number == -1  # the current version
        assert "current version -1" in outcome.message


@pytest.mark.parametrize(
    ("expected", "ok"),
    [(ANY, True), (NO_STREAM, False), (STREAM_EXISTS, True), (1, True), (0, False), (2, False)],
)
def test_expected_version_on_an_existing_stream(expected: int, ok: bool) -> None:
    log = EventLog()
    log.append("s", NO_STREAM, new(2), NOW)

    outcome = log.append("s", expected, new(), NOW)

    if ok:
        assert outcome.result is WriteResult.Success
        assert outcome.first_event_number == 2
    else:
        assert outcome.result is WriteResult.WrongExpectedVersion
        assert outcome.last_event_number == 1
    assert log.current_version("s") == (2 if ok else 1)


def test_a_refused_write_does_not_create_the_stream() -> None:
    log = EventLog()
    log.append("s", STREAM_EXISTS, new(), NOW)

    assert log.read_forward("s", 0, 10).result is ReadResult.NoStream
    assert log.append("s", NO_STREAM, new(), NOW).result is WriteResult.Success


# --- idempotency -------------------------------------------------------------------------------


@pytest.mark.parametrize("expected", [ANY, NO_STREAM])
def test_a_repeated_write_returns_the_first_outcome_and_writes_nothing(expected: int) -> None:
    log = EventLog()
    events = new(3)
    first = log.append("s", expected, events, NOW)

    again = log.append("s", expected, events, NOW + 5)

    assert again.result is WriteResult.Success
    assert (again.first_event_number, again.last_event_number, again.position) == (
        first.first_event_number,
        first.last_event_number,
        first.position,
    )
    assert again.written == ()
    assert ids(log.read_forward("s", 0, 10).events) == [e.event_id for e in events]


def test_a_repeat_with_the_exact_expected_version_is_idempotent_too() -> None:
    log = EventLog()
    log.append("s", NO_STREAM, new(2), NOW)
    events = new(2)
    first = log.append("s", 1, events, NOW)

    again = log.append("s", 1, events, NOW)

    assert (again.result, again.first_event_number, again.last_event_number) == (
        WriteResult.Success,
        2,
        3,
    )
    assert again.written == ()
    assert first.position == again.position
    assert log.current_version("s") == 3


def test_a_repeat_of_a_prefix_is_idempotent_and_a_longer_batch_is_not() -> None:
    log = EventLog()
    events = new(3)
    log.append("s", NO_STREAM, events, NOW)

    prefix = log.append("s", ANY, events[:2], NOW)
    assert (prefix.first_event_number, prefix.last_event_number) == (0, 1)
    assert prefix.written == ()

    # With an extra event the batch is not the same write: under ANY it is written again.
    longer = log.append("s", ANY, [*events, *new()], NOW)
    assert longer.result is WriteResult.Success
    assert longer.first_event_number == 3


def test_a_repeat_under_a_different_expected_version_is_checked_as_a_new_write() -> None:
    log = EventLog()
    events = new(1)
    log.append("s", NO_STREAM, events, NOW)
    log.append("s", ANY, new(1), NOW)

    outcome = log.append("s", 5, events, NOW)

    assert outcome.result is WriteResult.WrongExpectedVersion


# --- stream reads ------------------------------------------------------------------------------


def test_read_event_by_number_last_and_missing() -> None:
    log = EventLog()
    written = log.append("s", NO_STREAM, new(3), NOW).written

    assert log.read_event("s", 1) == (ReadResult.Success, written[1])
    assert log.read_event("s", -1) == (ReadResult.Success, written[2])
    assert log.read_event("s", 3) == (ReadResult.NotFound, None)
    assert log.read_event("other", 0) == (ReadResult.NoStream, None)


def test_read_forward_pages() -> None:
    log = EventLog()
    written = log.append("s", NO_STREAM, new(5), NOW).written

    pages = [log.read_forward("s", start, 2) for start in (0, 2, 4)]

    assert [ids(p.events) for p in pages] == [
        ids(written[0:2]),
        ids(written[2:4]),
        ids(written[4:]),
    ]
    assert [p.next_event_number for p in pages] == [2, 4, 5]
    assert [p.is_end_of_stream for p in pages] == [False, False, True]
    assert {p.last_event_number for p in pages} == {4}
    assert {p.last_commit_position for p in pages} == {log.last_position}
    past = log.read_forward("s", 9, 2)
    assert (past.events, past.is_end_of_stream) == ((), True)


def test_read_backward_pages() -> None:
    log = EventLog()
    written = log.append("s", NO_STREAM, new(5), NOW).written

    pages = [log.read_backward("s", start, 2) for start in (-1, 2, 0)]

    assert [[e.event_number for e in p.events] for p in pages] == [[4, 3], [2, 1], [0]]
    assert [p.next_event_number for p in pages] == [2, 0, -1]
    assert [p.is_end_of_stream for p in pages] == [False, False, True]
    assert ids(log.read_backward("s", 99, 10).events) == ids(written)[::-1]


# --- $all --------------------------------------------------------------------------------------


def _page_all(log: EventLog, size: int, *, backward: bool) -> list[StoredEvent]:
    events: list[StoredEvent] = []
    position = -1 if backward else 0
    for _ in range(1000):
        page = (log.read_all_backward if backward else log.read_all_forward)(position, size)
        if not page.events:
            return events
        events.extend(page.events)
        position = page.next_position
    raise AssertionError("paging $all never ended")


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 4), st.integers(0, 50)),
        max_size=8,
    ),
    size=st.integers(1, 5),
)
def test_paging_all_both_ways_gives_every_event_once_in_opposite_orders(
    batches: list[tuple[str, int, int]], size: int
) -> None:
    log = EventLog()
    written: list[StoredEvent] = []
    for stream, count, data_size in batches:
        written.extend(log.append(stream, ANY, new(count, b"x" * data_size), NOW).written)

    forward = _page_all(log, size, backward=False)
    backward = _page_all(log, size, backward=True)

    assert ids(forward) == ids(written)
    assert ids(backward) == ids(written)[::-1]
    positions = [e.position for e in forward]
    assert positions == sorted(set(positions))


def test_all_forward_from_a_position_includes_it_and_backward_excludes_it() -> None:
    log = EventLog()
    written = log.append("s", NO_STREAM, new(4), NOW).written
    middle = written[2].position

    assert ids(log.read_all_forward(middle, 10).events) == ids(written[2:])
    assert ids(log.read_all_backward(middle, 10).events) == ids(written[:2])[::-1]
    forward = log.read_all_forward(0, 2)
    assert forward.next_position == written[1].position + 1
    empty = log.read_all_forward(log.last_position + 1, 10)
    assert (empty.events, empty.next_position) == ((), log.last_position + 1)


def test_events_after_a_position() -> None:
    log = EventLog()
    written = log.append("s", NO_STREAM, new(3), NOW).written

    assert ids(log.events_after(written[1].position)) == ids(written[1:])
    assert log.events_after(log.last_position + 1) == []


# --- deletes -----------------------------------------------------------------------------------


def test_soft_delete_hides_the_stream_and_a_later_write_continues_numbering() -> None:
    log = EventLog()
    written = log.append("s", NO_STREAM, new(3), NOW).written

    deleted = log.delete("s", 2, hard=False)

    assert deleted.result is WriteResult.Success
    assert log.read_forward("s", 0, 10).result is ReadResult.NoStream
    assert log.read_event("s", 0) == (ReadResult.NoStream, None)
    assert log.current_version("s") == -1
    assert log.stream_events("s") == []
    assert ids(log.read_all_forward(0, 10).events) == ids(written)  # $all keeps them

    again = log.append("s", NO_STREAM, new(1), NOW)
    assert (again.result, again.first_event_number) == (WriteResult.Success, 3)
    page = log.read_forward("s", 0, 10)
    assert [e.event_number for e in page.events] == [3]
    assert [e.event_number for e in log.read_backward("s", -1, 10).events] == [3]
    assert log.read_event("s", 1) == (ReadResult.NotFound, None)
    assert log.read_event("s", -1)[1] == again.written[0]


def test_soft_delete_checks_the_expected_version() -> None:
    log = EventLog()
    log.append("s", NO_STREAM, new(2), NOW)

    assert log.delete("s", 0, hard=False).result is WriteResult.WrongExpectedVersion
    assert log.delete("s", STREAM_EXISTS, hard=False).result is WriteResult.Success
    assert log.delete("s", STREAM_EXISTS, hard=False).result is WriteResult.WrongExpectedVersion


def test_hard_delete_refuses_every_later_read_and_write() -> None:
    log = EventLog()
    log.append("s", NO_STREAM, new(2), NOW)

    assert log.delete("s", ANY, hard=True).result is WriteResult.Success

    assert log.read_forward("s", 0, 10).result is ReadResult.StreamDeleted
    assert log.read_backward("s", -1, 10).result is ReadResult.StreamDeleted
    assert log.read_event("s", 0) == (ReadResult.StreamDeleted, None)
    assert log.append("s", ANY, new(), NOW).result is WriteResult.StreamDeleted
    assert log.delete("s", ANY, hard=False).result is WriteResult.StreamDeleted
    assert log.stream_events("s") == []

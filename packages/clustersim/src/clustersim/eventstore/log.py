"""The cluster's one event log: streams, ``$all``, expected versions, idempotent writes, deletes.

Pure: no I/O and no clock (``now_ms`` is passed in); the wire layer turns requests into calls here
and results into replies. Every node of a simulated cluster reads the same log, which models
instant replication (a real follower may lag; see the package README's fidelity table).

Positions: each event gets one position, used as both its commit and prepare position, growing
with the bytes written (so positions have gaps, as a real transaction file's do). Reading ``$all``
forward from ``P`` returns events at ``>= P`` and continues from just after the last one;
backward from ``P`` returns events at ``< P`` (``-1`` meaning the end).

Deletes: a soft delete hides the stream's events from stream reads (``NoStream``) and a later
write continues its numbering; a hard delete (tombstone) makes every later read and write answer
``StreamDeleted``. ``$all`` keeps the events, as the real log does until a scavenge.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "ANY",
    "NO_STREAM",
    "STREAM_EXISTS",
    "AllSlice",
    "EventLog",
    "NewEventData",
    "ReadResult",
    "StoredEvent",
    "StreamSlice",
    "WriteOutcome",
    "WriteResult",
]

ANY = -2
NO_STREAM = -1
STREAM_EXISTS = -4
_RECORD_OVERHEAD = 64  # bytes a record costs beyond its payload, so positions have gaps


class WriteResult(enum.IntEnum):
    """``OperationResult`` values a write or delete can end with."""

    Success = 0
    WrongExpectedVersion = 4
    StreamDeleted = 5
    AccessDenied = 7


class ReadResult(enum.IntEnum):
    """Outcome of a stream read (``ReadEventResult`` and ``ReadStreamResult`` share meanings)."""

    Success = 0
    NotFound = 1  # ReadEvent only: the stream exists, that number does not
    NoStream = 2
    StreamDeleted = 3


@dataclass(frozen=True, slots=True)
class NewEventData:
    event_id: bytes  # 16 bytes, .NET GUID order, as on the wire
    event_type: str
    data: bytes
    metadata: bytes = b""
    data_content_type: int = 1
    metadata_content_type: int = 0


@dataclass(frozen=True, slots=True)
class StoredEvent:
    stream: str
    event_number: int
    event_id: bytes
    event_type: str
    data: bytes
    metadata: bytes
    data_content_type: int
    metadata_content_type: int
    created_epoch_ms: int
    position: int  # commit and prepare position alike


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    result: WriteResult
    first_event_number: int
    last_event_number: int
    position: int  # of the last event written (or -1)
    written: tuple[StoredEvent, ...] = ()  # new events only: an idempotent repeat writes none
    message: str = ""


@dataclass(frozen=True, slots=True)
class StreamSlice:
    result: ReadResult
    events: tuple[StoredEvent, ...]
    next_event_number: int
    last_event_number: int
    is_end_of_stream: bool
    last_commit_position: int


@dataclass(frozen=True, slots=True)
class AllSlice:
    events: tuple[StoredEvent, ...]
    position: int  # the position asked for (``-1``: the end, backward)
    next_position: int


@dataclass
class _Stream:
    events: list[StoredEvent] = field(default_factory=list)
    numbers_by_id: dict[bytes, int] = field(default_factory=dict)
    truncate_before: int = 0  # soft delete: numbers below this are hidden
    tombstoned: bool = False

    @property
    def last_number(self) -> int:
        return self.events[-1].event_number if self.events else -1

    @property
    def readable(self) -> bool:
        """Any event left after a soft delete (checked per write: must not copy the list)."""
        return len(self.events) > self.truncate_before


class EventLog:
    """All streams and the ``$all`` order of every event ever written."""

    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}
        self._all: list[StoredEvent] = []
        self._positions: list[int] = []
        self._next_position = 0

    # --- writes --------------------------------------------------------------------------------

    @property
    def last_position(self) -> int:
        return self._all[-1].position if self._all else -1

    def current_version(self, stream: str) -> int:
        """The last event number readable in ``stream``, or -1 (no stream, or soft-deleted)."""
        found = self._streams.get(stream)
        if found is None or not found.readable:
            return -1
        return found.last_number

    def append(
        self, stream: str, expected_version: int, events: Sequence[NewEventData], now_ms: int
    ) -> WriteOutcome:
        found = self._streams.setdefault(stream, _Stream())
        if found.tombstoned:
            return WriteOutcome(WriteResult.StreamDeleted, -1, -1, -1, message="stream deleted")
        repeat = self._idempotent_repeat(found, expected_version, events)
        if repeat is not None:
            return repeat
        current = found.last_number if found.readable else -1
        exists = found.readable
        if not _expected_matches(expected_version, current, exists):
            return WriteOutcome(
                WriteResult.WrongExpectedVersion,
                -1,
                current,
                -1,
                message=f"expected version {expected_version}, current version {current}",
            )
        written = []
        number = found.last_number
        for new in events:
            number += 1
            position = self._next_position
            self._next_position += _RECORD_OVERHEAD + len(new.data) + len(new.metadata)
            stored = StoredEvent(
                stream,
                number,
                new.event_id,
                new.event_type,
                new.data,
                new.metadata,
                new.data_content_type,
                new.metadata_content_type,
                now_ms,
                position,
            )
            found.events.append(stored)
            found.numbers_by_id.setdefault(new.event_id, number)
            self._all.append(stored)
            self._positions.append(position)
            written.append(stored)
        if not written:
            return WriteOutcome(WriteResult.Success, number + 1, number, self.last_position)
        return WriteOutcome(
            WriteResult.Success,
            written[0].event_number,
            written[-1].event_number,
            written[-1].position,
            tuple(written),
        )

    def _idempotent_repeat(
        self, found: _Stream, expected_version: int, events: Sequence[NewEventData]
    ) -> WriteOutcome | None:
        """The original outcome when ``events`` were all written before, in order, as asked."""
        if not events or events[0].event_id not in found.numbers_by_id:
            return None
        first = found.numbers_by_id[events[0].event_id]
        if expected_version >= 0 and first != expected_version + 1:
            return None
        if expected_version == NO_STREAM and first != 0:
            return None
        for offset, new in enumerate(events):
            number = first + offset
            if number >= len(found.events) or found.events[number].event_id != new.event_id:
                return None
        last = found.events[first + len(events) - 1]
        return WriteOutcome(WriteResult.Success, first, last.event_number, last.position)

    def delete(self, stream: str, expected_version: int, *, hard: bool) -> WriteOutcome:
        found = self._streams.get(stream)
        if found is not None and found.tombstoned:
            return WriteOutcome(WriteResult.StreamDeleted, -1, -1, -1, message="stream deleted")
        current = -1 if found is None or not found.readable else found.last_number
        if not _expected_matches(expected_version, current, current >= 0):
            return WriteOutcome(
                WriteResult.WrongExpectedVersion,
                -1,
                current,
                -1,
                message=f"expected version {expected_version}, current version {current}",
            )
        found = self._streams.setdefault(stream, _Stream())
        if hard:
            found.tombstoned = True
        found.truncate_before = len(found.events)
        return WriteOutcome(WriteResult.Success, -1, current, self.last_position)

    # --- stream reads --------------------------------------------------------------------------

    def _readable(self, stream: str) -> _Stream | ReadResult:
        found = self._streams.get(stream)
        if found is not None and found.tombstoned:
            return ReadResult.StreamDeleted
        if found is None or not found.readable:
            return ReadResult.NoStream
        return found

    def read_event(self, stream: str, number: int) -> tuple[ReadResult, StoredEvent | None]:
        """Event ``number`` of ``stream`` (``-1``: the last one)."""
        found = self._readable(stream)
        if isinstance(found, ReadResult):
            return found, None
        if number == -1:
            return ReadResult.Success, found.events[-1]
        if found.truncate_before <= number < len(found.events):
            return ReadResult.Success, found.events[number]
        return ReadResult.NotFound, None

    def read_forward(self, stream: str, start: int, max_count: int) -> StreamSlice:
        found = self._readable(stream)
        if isinstance(found, ReadResult):
            return StreamSlice(found, (), -1, -1, True, self.last_position)
        first = max(start, found.truncate_before)
        events = tuple(found.events[first : first + max(max_count, 0)])
        last = found.last_number
        following = events[-1].event_number + 1 if events else max(start, last + 1)
        return StreamSlice(
            ReadResult.Success, events, following, last, following > last, self.last_position
        )

    def read_backward(self, stream: str, start: int, max_count: int) -> StreamSlice:
        """From ``start`` (``-1``: the last event) towards the first, newest first."""
        found = self._readable(stream)
        if isinstance(found, ReadResult):
            return StreamSlice(found, (), -1, -1, True, self.last_position)
        last = found.last_number
        top = last if start < 0 or start > last else start
        bottom = max(top - max(max_count, 0) + 1, found.truncate_before)
        events = tuple(reversed(found.events[bottom : top + 1]))
        following = bottom - 1
        return StreamSlice(
            ReadResult.Success,
            events,
            following,
            last,
            following < found.truncate_before,
            self.last_position,
        )

    # --- $all ----------------------------------------------------------------------------------

    def read_all_forward(self, position: int, max_count: int) -> AllSlice:
        start = bisect.bisect_left(self._positions, max(position, 0))
        events = tuple(self._all[start : start + max(max_count, 0)])
        following = events[-1].position + 1 if events else max(position, 0)
        return AllSlice(events, position, following)

    def read_all_backward(self, position: int, max_count: int) -> AllSlice:
        top = len(self._all) if position < 0 else bisect.bisect_left(self._positions, position)
        bottom = max(top - max(max_count, 0), 0)
        events = tuple(reversed(self._all[bottom:top]))
        following = events[-1].position if events else max(position, 0) if position >= 0 else 0
        return AllSlice(events, position, following)

    def events_after(self, position: int) -> list[StoredEvent]:
        """Every event at or after ``position`` in ``$all`` order (catch-up of live readers)."""
        return self._all[bisect.bisect_left(self._positions, position) :]

    def stream_events(self, stream: str) -> list[StoredEvent]:
        """The readable events of ``stream`` (empty when missing, soft-deleted or tombstoned)."""
        found = self._streams.get(stream)
        return [] if found is None or found.tombstoned else found.events[found.truncate_before :]


def _expected_matches(expected: int, current: int, exists: bool) -> bool:
    if expected == ANY:
        return True
    if expected == NO_STREAM:
        return not exists
    if expected == STREAM_EXISTS:
        return exists
    return expected == current

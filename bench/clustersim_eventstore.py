"""Benchmark: the simulated EventStore node's own ceiling, driven by a minimal raw-socket client.

    nox -s bench -- bench/clustersim_eventstore.py
    PYTHONPATH=shared/src:packages/clustersim/src python bench/clustersim_eventstore.py

The simulator runs in its own process (``python -m clustersim eventstore --nodes 1``), as in the
client benchmarks, and this process sends precomputed frames over one connection, doing as little
per request as a client can: so the figures are what the simulator serves, and a client measured
against it that stays well under them is not capped by it. Measured: single-event writes one at a
time and with 100 in flight, 100-event writes, and reads of 500-event pages. Prints the rates and
exits 1 if a reply is not a success. Takes about 15 s.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from resilient_topology.eventstore.framing import Frame, FrameDecoder, TcpCommand, encode_frame
from resilient_topology.eventstore.proto import messages_pb2 as pb

C = TcpCommand
DURATION = 2.0  # seconds each figure is measured over
WARM_UP = 0.3
WINDOW = 100  # requests in flight in the pipelined runs
PAGE = 500
STREAM_EVENTS = 20_000
PAYLOAD = b'{"i": 1}'


def new_event() -> pb.NewEvent:
    return pb.NewEvent(
        event_id=uuid.uuid4().bytes_le,
        event_type="tick",
        data_content_type=1,
        metadata_content_type=0,
        data=PAYLOAD,
    )


def write_frame(stream: str, count: int) -> Callable[[], bytes]:
    """Writes of ``count`` events, each call with fresh event ids (never an idempotent repeat).

    The frame is encoded once; each call splices new 16-byte ids into it at their offsets, so
    making a request costs the client almost nothing.
    """
    message = pb.WriteEvents(event_stream_id=stream, expected_version=-2, require_master=False)
    message.events.extend(new_event() for _ in range(count))
    template = encode_frame(Frame(C.WriteEvents, uuid.uuid4(), message.SerializeToString()))
    offsets = [template.index(event.event_id) for event in message.events]
    counter = iter(range(1, 2**63))

    def build() -> bytes:
        frame = bytearray(template)
        for offset in offsets:
            frame[offset : offset + 16] = next(counter).to_bytes(16, "little")
        return bytes(frame)

    return build


def read_frame(stream: str, start: int) -> bytes:
    message = pb.ReadStreamEvents(
        event_stream_id=stream,
        from_event_number=start,
        max_count=PAGE,
        resolve_link_tos=False,
        require_master=False,
    )
    return encode_frame(Frame(C.ReadStreamEventsForward, uuid.uuid4(), message.SerializeToString()))


class Raw:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = FrameDecoder()
        self.pending: list[Frame] = []

    async def replies(self, count: int) -> list[Frame]:
        while len(self.pending) < count:
            data = await self.reader.read(1 << 20)
            if not data:
                raise ConnectionError("the simulator closed the connection")
            self.pending += [f for f in self.decoder.feed(data) if f.command != C.HeartbeatRequest]
        got, self.pending = self.pending[:count], self.pending[count:]
        return got


def check(frame: Frame, command: int) -> None:
    if frame.command != command:
        raise SystemExit(f"unexpected reply {frame!r}")
    if command == C.WriteEventsCompleted:
        if pb.WriteEventsCompleted.FromString(frame.payload).result != pb.Success:
            raise SystemExit("a write failed")
    elif pb.ReadStreamEventsCompleted.FromString(frame.payload).result != 0:
        raise SystemExit("a read failed")


async def measure(
    raw: Raw, frames: Callable[[], bytes], command: int, window: int, per_request: int
) -> float:
    """Items per second: requests times ``per_request``, ``window`` requests kept in flight."""

    async def round_trip() -> None:
        raw.writer.write(b"".join(frames() for _ in range(window)))
        for reply in await raw.replies(window):
            check(reply, command)

    warm_until = time.perf_counter() + WARM_UP
    while time.perf_counter() < warm_until:
        await round_trip()
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < DURATION:
        await round_trip()
        count += window
    return count * per_request / elapsed


async def run(address: str) -> dict[str, float]:
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    raw = Raw(reader, writer)
    try:
        figures = {
            "write 1 event, 1 in flight (events/s)": await measure(
                raw, write_frame("w1", 1), C.WriteEventsCompleted, 1, 1
            ),
            f"write 1 event, {WINDOW} in flight (events/s)": await measure(
                raw, write_frame("w100", 1), C.WriteEventsCompleted, WINDOW, 1
            ),
            "write 100 events per request (events/s)": await measure(
                raw, write_frame("batch", 100), C.WriteEventsCompleted, 1, 100
            ),
        }
        fill = write_frame("read", 500)
        for _ in range(STREAM_EVENTS // 500):
            raw.writer.write(fill())
            check((await raw.replies(1))[0], C.WriteEventsCompleted)
        starts = iter(range(10**9))

        def next_page() -> bytes:
            return read_frame("read", (next(starts) * PAGE) % STREAM_EVENTS)

        figures[f"read {PAGE}-event pages (events/s)"] = await measure(
            raw, next_page, C.ReadStreamEventsForwardCompleted, 1, PAGE
        )
        return figures
    finally:
        writer.close()
        await writer.wait_closed()


def main() -> int:
    env = dict(os.environ)
    env.pop("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "clustersim", "eventstore", "--nodes", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        addresses = json.loads(process.stdout.readline())
        figures = asyncio.run(run(addresses["tcp"][0]))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    print(
        f"clustersim.eventstore ceiling, {datetime.now(UTC):%Y-%m-%d}, {platform.node()}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print("simulator: its own process, one node; client: raw frames, one connection")
    for name, value in figures.items():
        print(f"  {name:<45} {value:>12,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

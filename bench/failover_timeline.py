"""Benchmark: acknowledged writes per 100 ms across a failover, drawn as PNG plots for the docs.

    nox -s bench -- bench/failover_timeline.py
    PYTHONPATH=shared/src:packages/clustersim/src:packages/mongomancy/src:packages/photonpump/src \\
        python bench/failover_timeline.py [--out DIR]

Two runs against simulators embedded in this process (each on a background event-loop thread):

* MongoDB: a three-member ``clustersim`` replica set; one thread writes with mongomancy's
  ``Engine.insert_one`` in a loop while the primary is killed.
* EventStore: a three-node ``clustersim.eventstore`` cluster; one photonpump client, which found
  the leader through gossip, publishes one event at a time while the leader is killed.

Each acknowledged write is timestamped. The script prints writes per second before and after,
the longest pause from the failover on, when the client saw the new primary or leader, the
errors the application saw and whether the stored count matches; and it writes
``mongo_failover.png`` and ``eventstore_failover.png`` (writes per 100 ms, the failover marked)
into ``docs/assets/bench/`` or ``--out``. Exits 1 if an error reached the application or a write
was lost or doubled. Needs matplotlib (drawn without pyplot: no display, no global state).
Takes about 15 s.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import platform
import sys
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import photonpump
import pymongo
from clustersim.eventstore import Cluster
from clustersim.mongo import ReplicaSet
from matplotlib.figure import Figure
from mongomancy import Engine, PrimarySwitch
from photonpump import discovery
from pymongo.errors import PyMongoError

from resilient_topology.hooks import Reconnected

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "assets" / "bench"
BEFORE = 2.0  # seconds of steady writes shown before the failover
AFTER = 3.0  # seconds shown after it
WARM_UP = 0.5  # seconds of writes before the shown window
ELECTION_DELAY = 0.5  # seconds each simulator stays without a primary / leader after the kill
HEARTBEAT_MS = 500  # pymongo's minimum heartbeatFrequencyMS
REQUEST_TIMEOUT = 10.0  # seconds: photonpump's deadline per request
BIN = 0.1  # seconds per bar: writes per 100 ms


# --- a timeline of acknowledged writes ---------------------------------------------------------


@dataclass
class Timeline:
    """Acknowledged writes of one run, in seconds relative to the failover (negative: before).

    ``marks`` are further moments drawn as dashed lines (when the client saw the new primary),
    as (seconds relative to the failover, label).
    """

    title: str
    subtitle: str
    event: str  # what happened at 0, e.g. "primary killed"
    acks: list[float] = field(default_factory=list)
    marks: list[tuple[float, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    start: float = -BEFORE  # first second shown
    end: float = AFTER  # last second shown

    def counts(self) -> list[int]:
        """Writes acknowledged in each BIN-long slice from ``start`` to ``end``."""
        slices = math.ceil(round((self.end - self.start) / BIN, 6))
        counts = [0] * slices
        for at in self.acks:
            index = math.floor((at - self.start) / BIN)
            if 0 <= index < slices:
                counts[index] += 1
        return counts

    def before(self) -> list[float]:
        """Acknowledgements in the shown window before the failover."""
        return [at for at in self.acks if self.start <= at < 0]

    def after(self) -> list[float]:
        """Acknowledgements from the failover to the end of the shown window."""
        return [at for at in self.acks if 0 <= at <= self.end]

    def pause(self) -> tuple[float, float]:
        """The longest stretch without an acknowledgement from the failover on.

        (from, to) in seconds relative to the failover: from the acknowledgement that precedes
        it (possibly the last one before the failover) to the one that ends it, or ``end``.
        """
        before, after = self.before(), sorted(self.after())
        moments = [max(before) if before else self.start, *after, self.end]
        return max(itertools.pairwise(moments), key=lambda gap: gap[1] - gap[0])


def per_second(acks: list[float], seconds: float) -> float:
    return len(acks) / seconds if seconds > 0 else 0.0


def draw(timeline: Timeline, path: Path) -> None:
    """A bar per 100 ms, the failover as a red line at 0, other marks dashed; saved as PNG."""
    counts = timeline.counts()
    lefts = [timeline.start + i * BIN for i in range(len(counts))]
    figure = Figure(figsize=(9, 4.5), dpi=100, layout="constrained")
    axes = figure.subplots()
    figure.suptitle(timeline.title, x=0.01, ha="left", fontsize=13, fontweight="bold")
    subtitle = "\n".join(textwrap.wrap(timeline.subtitle, 120))
    axes.set_title(subtitle, loc="left", fontsize=9, color="#444444")
    axes.bar(lefts, counts, width=BIN, align="edge", color="#4c72b0", edgecolor="#35507d")
    axes.set_ylim(0, (max(counts, default=0) or 1) * 1.3)
    axes.set_xlim(timeline.start, timeline.end)
    first, last = timeline.pause()
    axes.axvspan(
        first,
        last,
        color="#c0392b",
        alpha=0.12,
        linewidth=0,
        label=f"no write acknowledged: {(last - first) * 1000:,.0f} ms",
    )
    axes.axvline(0, color="#c0392b", linewidth=2, label=f"{timeline.event} (0 ms)")
    axes.annotate(
        timeline.event,
        xy=(0, 0.93),
        xycoords=axes.get_xaxis_transform(),  # x in seconds, y as a fraction of the height
        xytext=(-6, 0),
        textcoords="offset points",
        ha="right",
        va="center",
        color="#c0392b",
        fontweight="bold",
        bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none"},
    )
    for at, label in timeline.marks:
        axes.axvline(
            at,
            color="#2d7d46",
            linewidth=1.5,
            linestyle="--",
            label=f"{label} ({at * 1000:+,.0f} ms)",
        )
    figure.legend(loc="outside lower center", ncols=3, frameon=False, fontsize=9)
    axes.set_xlabel("seconds since the failover")
    axes.set_ylabel("acknowledged writes per 100 ms")
    axes.grid(axis="y", color="#dddddd", linewidth=0.8)
    axes.set_axisbelow(True)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, metadata={"Software": None})


def machine() -> str:
    return (
        f"{datetime.now(UTC):%Y-%m-%d}, {platform.system()} {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )


# --- MongoDB: mongomancy's engine across a primary kill ----------------------------------------


def mongo_run() -> tuple[Timeline, int, bool]:
    """The timeline, the documents stored, and whether they are exactly the acknowledged ones."""
    timeline = Timeline(
        title="MongoDB: mongomancy Engine.insert_one across a primary kill",
        subtitle=(
            f"clustersim replica set, 3 members, {ELECTION_DELAY * 1000:.0f} ms without a "
            f"primary; pymongo {pymongo.__version__}, heartbeatFrequencyMS={HEARTBEAT_MS}; "
            f"one writer thread; {machine()}"
        ),
        event="primary killed",
    )
    stop = threading.Event()
    acked: list[float] = []  # monotonic times, made relative below
    switches: list[tuple[float, PrimarySwitch]] = []
    with (
        ReplicaSet(members=3, name="rs0", election_delay=ELECTION_DELAY) as rs,
        Engine(rs.uri, heartbeatFrequencyMS=HEARTBEAT_MS) as engine,
    ):
        engine.hooks.register(PrimarySwitch, lambda e: switches.append((time.monotonic(), e)))
        things = engine.get_database("bench").timeline

        def writer() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    engine.insert_one(things, {"n": n})
                except PyMongoError as exc:
                    timeline.errors.append(f"{type(exc).__name__}: {exc}")
                else:
                    acked.append(time.monotonic())

        thread = threading.Thread(target=writer, name="bench-mongo-writer")
        thread.start()
        try:
            time.sleep(WARM_UP + BEFORE)
            primary = rs.primary
            if primary is None:
                raise RuntimeError("the set has no primary to kill")
            killed_at = time.monotonic()
            rs.kill(primary)
            time.sleep(AFTER)
        finally:
            stop.set()
            thread.join()
        stored = engine.count_documents(things, {})
        exact = stored == len(acked) == len(engine.distinct(things, "n"))
    timeline.acks = [at - killed_at for at in acked]
    elected = [at for at, e in switches if at > killed_at and e.reason == "election"]
    if elected:
        timeline.marks.append((elected[0] - killed_at, "engine sees the new primary"))
    return timeline, stored, exact


# --- EventStore: photonpump across a leader kill ----------------------------------------------


async def eventstore_writes(es: Cluster, timeline: Timeline) -> list[uuid.UUID]:
    """Publish one event at a time while the leader is killed; the ids acknowledged."""
    client = photonpump.connect(
        discovery_host=",".join(es.gossip_seeds),
        selector=discovery.prefer_master,
        request_timeout=REQUEST_TIMEOUT,
    )
    reconnected: list[float] = []
    client.hooks.register(Reconnected, lambda event: reconnected.append(time.monotonic()))
    acked: list[float] = []
    ids: list[uuid.UUID] = []
    stop = asyncio.Event()

    async def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            event_id = uuid.uuid4()
            try:
                result = await client.publish_event(
                    "timeline", "tick", {"n": n}, id=event_id, require_master=True
                )
            except photonpump.exceptions.PhotonPumpException as exc:
                timeline.errors.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.01)  # never a busy loop that starves the stop
                continue
            if not result.succeeded:
                timeline.errors.append(f"write not applied: {result.result}")
                await asyncio.sleep(0.01)
                continue
            acked.append(time.monotonic())
            ids.append(event_id)

    async with client:
        await client.ping()
        task = asyncio.create_task(writer())
        try:
            await asyncio.sleep(WARM_UP + BEFORE)
            leader = es.leader
            if leader is None:
                raise RuntimeError("the cluster has no leader to kill")
            killed_at = time.monotonic()
            await asyncio.to_thread(es.kill, leader)
            await asyncio.sleep(AFTER)
        finally:
            stop.set()
            await task
    timeline.acks = [at - killed_at for at in acked]
    later = [at for at in reconnected if at > killed_at]
    if later:
        timeline.marks.append((later[0] - killed_at, "client reconnected to the new leader"))
    return ids


def eventstore_run() -> tuple[Timeline, int, bool]:
    """The timeline, the events stored, and whether they are exactly the acknowledged ones."""
    timeline = Timeline(
        title="EventStore: photonpump publish_event across a leader kill",
        subtitle=(
            f"clustersim.eventstore cluster, 3 nodes, {ELECTION_DELAY * 1000:.0f} ms without a "
            f"leader; gossip discovery, prefer_master, require_master=True; one writer; "
            f"{machine()}"
        ),
        event="leader killed",
    )
    with Cluster(nodes=3, election_delay=ELECTION_DELAY) as es:
        ids = asyncio.run(eventstore_writes(es, timeline))
        stored = [uuid.UUID(bytes_le=e.event_id) for e in es.state.log.stream_events("timeline")]
    # Exactly once, in order: the stream holds the acknowledged ids and nothing else.
    return timeline, len(stored), stored == ids


# --- report -----------------------------------------------------------------------------------


def report(timeline: Timeline, stored: int, exact: bool, unit: str) -> bool:
    """Print the figures of one run; True if it was clean (no error, nothing lost or doubled)."""
    before, after = timeline.before(), timeline.after()
    first, last = timeline.pause()
    counts = timeline.counts()
    shown = [c for i, c in enumerate(counts) if timeline.start + (i + 1) * BIN <= 0]
    print(timeline.title)
    print(f"  {timeline.subtitle}")
    print(f"  {unit} acknowledged: {len(before)} in {BEFORE:.0f} s before, {len(after)} after")
    print(
        f"  rate before: {per_second(before, BEFORE):,.0f}/s "
        f"(per 100 ms: min {min(shown, default=0)}, max {max(shown, default=0)}); "
        f"rate in the last second: {per_second([a for a in after if a >= AFTER - 1], 1.0):,.0f}/s"
    )
    print(
        f"  no acknowledgement for {(last - first) * 1000:,.0f} ms: "
        f"from {first * 1000:+,.0f} ms to {last * 1000:+,.0f} ms around the failover"
    )
    for at, label in timeline.marks:
        print(f"  {label}: {at * 1000:+,.0f} ms")
    acked = len(timeline.acks)
    verdict = "each exactly once" if exact else "NOT exactly the acknowledged ones"
    print(f"  errors seen by the application: {len(timeline.errors)}")
    print(f"  stored {stored:,}, acknowledged {acked:,}: {verdict}")
    for error in timeline.errors[:5]:
        print(f"  error: {error}", file=sys.stderr)
    print(flush=True)
    return not timeline.errors and exact


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder for the PNGs ({OUT})")
    args = parser.parse_args(argv)
    out: Path = args.out
    print("failover timelines: acknowledged writes per 100 ms across a failover")
    print(f"machine   {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"date      {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"versions  Python {platform.python_version()}, pymongo {pymongo.__version__}, ", end="")
    print(f"photonpump {photonpump.__version__}", end="\n\n", flush=True)

    clean = True
    for run, unit, name in (
        (mongo_run, "inserts", "mongo_failover.png"),
        (eventstore_run, "events", "eventstore_failover.png"),
    ):
        timeline, stored, exact = run()
        clean &= report(timeline, stored, exact, unit)
        draw(timeline, out / name)
        print(f"  wrote {out / name}\n", flush=True)
    if not clean:
        print("FAILED: an error reached the application, or a write was lost or doubled")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())

"""Steps 5-7: photonpump finds the leader, publishes and reads back; a catch-up subscription
through a leader kill; a persistent subscription acknowledging every event.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack

from clustersim.eventstore import Cluster
from photonpump import Client

from demo.console import Narrator, StepView
from demo.eventstore_client import BOUND, delete_streams, new_client, publish, until
from demo.plan import EventStoreTarget
from demo.records import CatchUpRecord, DemoReport, Failover, PersistentRecord, ReadRecord, ms
from demo.summary import once_in_order
from resilient_topology.hooks import LeaderChanged, PrimaryChanged, Reconnected

__all__ = ["run_eventstore"]

GRACE = 0.3  # seconds to keep listening after the last expected event, to catch duplicates
PACE = 0.005  # seconds between live publishes
NO_KILL = "a real cluster: the demo never stops a node"


async def run_eventstore(
    narrator: Narrator,
    target: EventStoreTarget,
    cluster: Cluster | None,
    report: DemoReport,
    events: int,
) -> None:
    """Fills ``report.read``, ``report.catch_up`` and ``report.persistent``, in that order."""
    if cluster is not None:
        seeds = list(cluster.gossip_seeds)
    else:
        seeds = [f"{host}:{port}" for host, port in target.addresses]
    run = uuid.uuid4().hex[:8]
    streams = [f"demo-{run}-{name}" for name in ("ledger", "followed", "billing")]
    async with AsyncExitStack() as stack:
        writer = await stack.enter_async_context(new_client(target, seeds))
        stack.push_async_callback(delete_streams, writer, streams)
        report.read = await _publish_and_read(narrator, writer, cluster, streams[0], events)
        reader = await stack.enter_async_context(new_client(target, seeds))
        report.catch_up = await _catch_up(narrator, writer, reader, cluster, streams[1], events)
        report.persistent = await _persistent(narrator, writer, streams[2], f"demo-{run}", events)


async def _publish_and_read(
    narrator: Narrator, client: Client, cluster: Cluster | None, stream: str, count: int
) -> ReadRecord:
    with narrator.step(
        "photonpump: discover the leader, publish, read back",
        doing=f"a client given only the gossip seeds pings, publishes {count} events to "
        f"{stream!r} one by one, then reads the stream forward.",
        expect="the client connects to the leader; the read returns every event once, in the "
        "order published.",
        columns=("what", "observed", "time"),
    ) as view:
        view.progress("discovering the leader through gossip")
        started = time.monotonic()
        async with asyncio.timeout(BOUND):
            await client.ping()
        address = client.connection_address
        view.row("connected to", str(address), ms(time.monotonic() - started))
        if cluster is not None and cluster.leader is not None:
            view.row("leader per the cluster", cluster.tcp_addresses[cluster.leader], "")
        published: list[str] = []
        started = time.monotonic()
        view.progress(f"publishing {count} events")
        await publish(client, stream, count, published)
        view.row("published", f"{len(published)} events", ms(time.monotonic() - started))
        started = time.monotonic()
        async with asyncio.timeout(BOUND):
            read = [str(e.id) async for e in client.iter(stream, batch_size=50)]
        view.row("read back", f"{len(read)} events", ms(time.monotonic() - started))
        record = ReadRecord(tuple(published), tuple(read))
        view.finish(once_in_order(record.published, record.read_back), read == published)
    return record


async def _catch_up(
    narrator: Narrator,
    writer: Client,
    reader: Client,
    cluster: Cluster | None,
    stream: str,
    count: int,
) -> CatchUpRecord:
    history, live = count // 2, count + count // 2
    kill_before = history + live // 2 if cluster is not None else None
    with narrator.step(
        "photonpump: a catch-up subscription"
        + (" across a leader kill" if kill_before is not None else " (leader kill skipped)"),
        doing=f"{history} events are published, a second client subscribes from event 0, "
        f"then {live} more are published one by one"
        + (
            f"; the leader is killed before event {kill_before} and restarted at the end."
            if kill_before is not None
            else ". Leader kill SKIPPED: on a real cluster the demo cannot stop the leader "
            "(stop its process yourself during this step to see the same)."
        ),
        expect="the subscriber gets the history then the live events, each exactly once, in "
        "order"
        + (", the reader and writer reconnecting to the new leader." if kill_before else "."),
        columns=("time", "event", "detail"),
    ) as view:
        leaders: list[PrimaryChanged] = []
        hooks = getattr(writer.discoverer, "hooks", None)
        if hooks is not None:
            hooks.register(LeaderChanged, leaders.append)
        killed_at = 0.0  # when the leader was killed; 0 until then

        def connected(who: str) -> Callable[[Reconnected], None]:
            def receiver(event: Reconnected) -> None:
                verb = "reconnected" if killed_at else "connected"
                view.row(f"{view.elapsed():.2f}s", f"{who} {verb}", f"to {event.address}")

            return receiver

        reader.hooks.register(Reconnected, connected("reader"))
        writer.hooks.register(Reconnected, connected("writer"))
        published: list[str] = []
        await publish(writer, stream, history, published)
        async with asyncio.timeout(BOUND):
            subscription = await reader.subscribe_to(stream, start_from=0)
        received: list[str] = []

        async def consume() -> None:
            async for event in subscription.events:
                received.append(str(event.id))

        consumer = asyncio.create_task(consume(), name="demo-catch-up")
        failover: Failover | None = None
        if kill_before is None:
            failover = Failover("EventStore", "leader kill", skipped=NO_KILL)
        killed: int | None = None
        try:
            for n in range(history, history + live):
                if n == kill_before and cluster is not None and cluster.leader is not None:
                    killed = cluster.leader
                    killed_at = time.monotonic()
                    async with asyncio.timeout(BOUND):
                        await cluster.akill(killed)
                    failover = Failover(
                        "EventStore", f"killed leader {cluster.tcp_addresses[killed]}"
                    )
                    view.row(f"{view.elapsed():.2f}s", "fault", failover.fault)
                    view.note(f"before event {n}: {failover.fault}")
                await publish(writer, stream, 1, published)
                if failover is not None and failover.resumed is None and not failover.skipped:
                    failover = _resumed(view, failover, killed_at, leaders)
                view.progress(
                    "publishing live events" + (" after the kill" if killed is not None else ""),
                    n + 1,
                    history + live,
                    detail=f"subscriber has {len(received)}",
                )
                await asyncio.sleep(PACE)
            await until(lambda: len(received) >= len(published) or consumer.done())
            await asyncio.sleep(GRACE)  # a duplicate would arrive now
        finally:
            await subscription.unsubscribe()
            async with asyncio.timeout(BOUND):
                await asyncio.gather(consumer, return_exceptions=True)
        if killed is not None and cluster is not None:
            async with asyncio.timeout(BOUND):
                await cluster.arestart(killed)
            view.row(
                f"{view.elapsed():.2f}s", "recovery", f"restarted {cluster.tcp_addresses[killed]}"
            )
        record = CatchUpRecord(
            tuple(published),
            tuple(received),
            leader_killed=kill_before is not None,
            failovers=(failover,) if failover is not None else (),
            planned_failovers=1,
        )
        view.finish(once_in_order(record.published, record.received), received == published)
    return record


def _resumed(
    view: StepView, failover: Failover, killed_at: float, leaders: list[PrimaryChanged]
) -> Failover:
    now = time.monotonic()
    seen = [e.at - killed_at for e in leaders if e.new is not None and e.at >= killed_at]
    done = Failover(failover.system, failover.fault, min(seen, default=None), now - killed_at)
    view.row(
        f"{view.elapsed():.2f}s",
        "first publish acknowledged",
        f"{ms(now - killed_at)} after the kill",
    )
    view.note(done.describe())
    return done


async def _persistent(
    narrator: Narrator, client: Client, stream: str, group: str, count: int
) -> PersistentRecord:
    with narrator.step(
        "photonpump: a persistent subscription with acks",
        doing=f"group {group!r} is created on {stream!r}, a consumer connects, {count} events "
        "are published, and the consumer acknowledges each one it gets.",
        expect="every event is delivered and acknowledged (at least once: a redelivery is "
        "reported, not a failure).",
        columns=("what", "count"),
    ) as view:
        async with asyncio.timeout(BOUND):
            await client.create_subscription(group, stream, start_from=0)
            subscription = await client.connect_subscription(group, stream)
        delivered: list[str] = []
        acked: list[str] = []

        async def consume() -> None:
            async for event in subscription.events:
                delivered.append(str(event.id))
                await subscription.ack(event)
                acked.append(str(event.id))

        consumer = asyncio.create_task(consume(), name="demo-persistent")
        published: list[str] = []
        try:
            view.progress(f"publishing {count} events")
            await publish(client, stream, count, published)
            view.progress("waiting for every acknowledgement")
            await until(lambda: set(published) <= set(acked) or consumer.done())
            await asyncio.sleep(GRACE)  # a redelivery would arrive now
        finally:
            await subscription.stop()
            async with asyncio.timeout(BOUND):
                await asyncio.gather(consumer, return_exceptions=True)
            await _delete_group(view, client, group, stream)
        record = PersistentRecord(tuple(published), tuple(delivered), tuple(acked))
        view.row("published", str(len(published)))
        view.row("delivered", str(len(delivered)))
        view.row("acknowledged", str(len(set(acked))))
        view.row("redelivered", str(len(delivered) - len(set(delivered))))
        missing = len(set(published) - set(acked))
        view.finish(
            f"{len(set(acked))} of {len(published)} acknowledged, {missing} missing", not missing
        )
    return record


async def _delete_group(view: StepView, client: Client, group: str, stream: str) -> None:
    """The group goes away with the demo; failing to delete it is shown, not the step's result."""
    try:
        async with asyncio.timeout(BOUND):
            await client.delete_subscription(group, stream)
    except Exception as exc:
        view.note(f"could not delete group {group!r}: {type(exc).__name__}: {exc}", style="red")

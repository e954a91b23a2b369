"""Runs the plan: starts the embedded simulators it needs, the steps in order, and closes all.

A part that fails (an exception, or its time bound) is recorded in the report and the next part
still runs, so one broken piece shows as failed invariants instead of hiding the others.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pymo
from clustersim.eventstore import Cluster
from clustersim.mongo import ReplicaSet

from demo.console import LogToSteps, Narrator, describe_error
from demo.eventstore_steps import run_eventstore
from demo.faults import KillPrimary, MongoFaults, StepDownPrimary
from demo.mongo_steps import CLIENT_OPTIONS, run_mongo
from demo.plan import Plan
from demo.pymo_step import run_pymo
from demo.records import DemoReport

__all__ = ["STEPS", "open_sockets", "run"]

STEPS = 7
ELECTION_DELAY = 0.4  # seconds the simulators stay without a primary/leader after a kill
PART_BOUND = 60.0  # seconds a whole part may take before it is abandoned as failed


async def run(plan: Plan, narrator: Narrator) -> DemoReport:
    """Every step of ``plan``; the report holds what was measured and what went wrong."""
    report = DemoReport()
    handler = LogToSteps(narrator)
    root = logging.getLogger()
    root.addHandler(handler)  # library warnings show in their step, not as stray stderr lines
    try:
        narrator.heading("Resilient Datastore Toolkit · demo")
        for line in plan.describe():
            narrator.say(f"  {line}")
        async with AsyncExitStack() as stack:
            uri = plan.mongo.uri
            faults: MongoFaults | None = None
            if uri is None:
                rs = await stack.enter_async_context(ReplicaSet(members=3, name="rs0"))
                rs.election_delay = ELECTION_DELAY
                uri, faults = rs.uri, KillPrimary(rs)
            cluster: Cluster | None = None
            if plan.eventstore.embedded:
                cluster = Cluster(3, gossip="v20", election_delay=ELECTION_DELAY)
                await stack.enter_async_context(cluster)
            await _part(narrator, report, "pymo", 1, lambda: _pymo(narrator, uri, report))
            if report.pymo is not None and report.pymo.healthy_async is not None:
                await _part(
                    narrator,
                    report,
                    "MongoDB",
                    4,
                    lambda: _mongo(narrator, uri, faults, report, plan.writes),
                )
            else:  # nothing would answer: skip at once rather than wait out every timeout
                report.errors.append("MongoDB: skipped, pymo found no writable primary")
                narrator.skip_to(4, "because pymo found no writable primary at the target")
            await _part(
                narrator,
                report,
                "EventStore",
                STEPS,
                lambda: run_eventstore(narrator, plan.eventstore, cluster, report, plan.events),
            )
        await asyncio.sleep(0)  # let closed transports finish their callbacks
        current = asyncio.current_task()
        left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        report.leaks = [f"task {t.get_name()}" for t in left]
    finally:
        root.removeHandler(handler)
    return report


async def _pymo(narrator: Narrator, uri: str, report: DemoReport) -> None:
    report.pymo = await run_pymo(narrator, uri)


async def _mongo(
    narrator: Narrator, uri: str, faults: MongoFaults | None, report: DemoReport, writes: int
) -> None:
    if faults is not None:
        await run_mongo(narrator, uri, faults, report, writes)
        return
    client: Any = await pymo.async_mongo_client(uri, **CLIENT_OPTIONS)  # for replSetStepDown
    try:
        await run_mongo(narrator, uri, StepDownPrimary(client), report, writes)
    finally:
        await client.close()


async def _part(
    narrator: Narrator,
    report: DemoReport,
    name: str,
    last_step: int,
    work: Callable[[], Awaitable[None]],
) -> None:
    try:
        async with asyncio.timeout(PART_BOUND):
            await work()
    except Exception as exc:
        report.errors.append(f"{name}: {describe_error(exc)}")
        narrator.skip_to(last_step, f"after the failure in the {name} part")


def open_sockets() -> int | None:
    """Sockets this process holds (Linux), to show none is left behind; None where unknown."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    count = 0
    for fd in fds:
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            continue
    return count

"""The core's own monitor: one asyncio task per server, checking it and feeding the state machine.

Used where no driver monitors the deployment already (photonpump's gossip, custom drivers). The
Mongo packages do not run it: pymongo monitors, and :mod:`resilient_topology.mongo` translates.

Each check's result goes through a pure transition; the monitor then publishes the new state to
its waiter, hands events to listeners, and performs the transition's actions (start or stop a
server's task, check a server now, clear a pool). No await happens between computing a transition
and storing it, so transitions never interleave.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ..address import Address
from ..errors import ConfigurationError
from ..events import (
    SdamEvent,
    ServerHeartbeatFailed,
    ServerHeartbeatStarted,
    ServerHeartbeatSucceeded,
)
from ..heartbeat import HeartbeatTracker
from ..hooks import HookRegistry, topology_hook_events
from ..sdam import CheckNow, ClearPool, StartMonitoring, StopMonitoring, TopologyState, Transition
from ..settings import TopologySettings
from ..topology import TopologyDescription
from ._async.waiter import AsyncTopologyWaiter
from ._backends import AsyncEvent

__all__ = ["AsyncMonitor", "Probe"]

logger = logging.getLogger("resilient_topology.monitor")

# The SDAM spec's floor between two checks of one server, even when asked to check at once.
MIN_CHECK_INTERVAL = 0.5


class Probe(Protocol):
    """Checks one server; returns its reply or raises. ``timeout`` bounds the whole check."""

    async def check(self, address: Address, timeout: float) -> Mapping[str, Any]: ...


OnReply = Callable[[TopologyState, Address, Mapping[str, Any], float, float], Transition]
OnFailure = Callable[[TopologyState, Address, BaseException, float], Transition]
EventListener = Callable[[SdamEvent], None]
PoolClearer = Callable[[ClearPool], None]


def _sdam_reply(
    state: TopologyState, address: Address, reply: Mapping[str, Any], rtt: float, now: float
) -> Transition:
    return state.on_check_succeeded(address, reply, round_trip_time=rtt, now=now)


def _sdam_failure(
    state: TopologyState, address: Address, error: BaseException, now: float
) -> Transition:
    return state.on_check_failed(address, error, now=now)


class AsyncMonitor:
    """Monitors a deployment with ``probe``; an async context manager with idempotent close.

    ``on_reply``/``on_failure`` turn a check's outcome into a transition: by default the MongoDB
    SDAM rules over hello replies; photonpump passes gossip rules instead.
    """

    def __init__(
        self,
        settings: TopologySettings,
        probe: Probe,
        *,
        topology_id: str = "monitor",
        check_timeout: float | None = None,
        on_reply: OnReply = _sdam_reply,
        on_failure: OnFailure = _sdam_failure,
        listeners: tuple[EventListener, ...] = (),
        on_clear_pool: PoolClearer | None = None,
        hooks: HookRegistry | None = None,
        initial: TopologyDescription | None = None,
    ) -> None:
        timeout = settings.heartbeat_frequency if check_timeout is None else check_timeout
        if timeout <= 0:
            raise ConfigurationError("check_timeout must be positive")
        self._settings = settings
        self._probe = probe
        self._topology_id = topology_id
        self._check_timeout = timeout
        self._on_reply = on_reply
        self._on_failure = on_failure
        self._listeners = listeners
        self._on_clear_pool = on_clear_pool
        self._hooks = hooks
        self._initial = initial
        self._state: TopologyState | None = None
        self._tracker = HeartbeatTracker.for_seeds(settings.seeds)
        self._waiter: AsyncTopologyWaiter[TopologyDescription] | None = None
        self._tasks: dict[Address, asyncio.Task[None]] = {}
        self._wake: dict[Address, AsyncEvent] = {}
        self._started = False
        self._closed = False

    # --- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> AsyncMonitor:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def start(self) -> None:
        """Open the topology and start one check task per seed (on the running loop)."""
        if self._started:
            raise ConfigurationError("a monitor starts once")
        asyncio.get_running_loop()  # fail early and clearly outside a loop
        self._started = True
        opened = TopologyState.open(self._settings, self._topology_id, self._initial)
        self._waiter = AsyncTopologyWaiter(opened.state.description)
        self._apply(opened)

    async def aclose(self) -> None:
        """Stop every task and publish the closing events. Idempotent."""
        if self._closed:
            return
        self._closed = True
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._state is not None:
            self._emit(self._state.close().events)
        if self._waiter is not None:
            self._waiter.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if self._started and not self._closed:
            _warn(f"unclosed {type(self).__name__}", ResourceWarning, source=self, stacklevel=1)

    # --- what callers read --------------------------------------------------------------------

    @property
    def description(self) -> TopologyDescription:
        return self._require_waiter().current

    @property
    def state(self) -> TopologyState:
        if self._state is None:
            raise ConfigurationError("the monitor has not been started")
        return self._state

    @property
    def heartbeats(self) -> HeartbeatTracker:
        return self._tracker

    @property
    def waiter(self) -> AsyncTopologyWaiter[TopologyDescription]:
        return self._require_waiter()

    async def wait_for(
        self,
        predicate: Callable[[TopologyDescription], bool],
        timeout: float | None = None,
        *,
        what: str = "a suitable server",
    ) -> TopologyDescription:
        """Wait until ``predicate`` holds; ``timeout`` defaults to the server-selection timeout."""
        limit = self._settings.server_selection_timeout if timeout is None else timeout
        return await self._require_waiter().wait_for(predicate, limit, what=what)

    def request_check(self, address: Address) -> None:
        """Check ``address`` as soon as the minimum interval allows."""
        event = self._wake.get(address)
        if event is not None:
            event.set()

    # --- the per-server loop ------------------------------------------------------------------

    async def _run(self, address: Address) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self._check(address)
            event = self._wake[address]
            woken = await event.wait(self._settings.heartbeat_frequency)
            if woken:
                self._wake[address] = AsyncEvent()
                pause = started + MIN_CHECK_INTERVAL - loop.time()
                if pause > 0:
                    await asyncio.sleep(pause)

    async def _check(self, address: Address) -> None:
        loop = asyncio.get_running_loop()
        was_known = self._known(address)
        outcome = await self._probe_once(address, loop)
        if isinstance(outcome, BaseException) and was_known:
            # The spec retries a known server once at once: one dropped socket is not an outage.
            outcome = await self._probe_once(address, loop)
        state = self.state
        if isinstance(outcome, BaseException):
            transition = self._on_failure(state, address, outcome, loop.time())
        else:
            reply, _ = outcome
            average = self._tracker.average_rtt(address)
            rtt = 0.0 if average is None else average
            try:
                transition = self._on_reply(state, address, reply, rtt, loop.time())
            except Exception as exc:  # a reply the rules reject is a failed check, not a crash
                transition = self._on_failure(state, address, exc, loop.time())
        self._apply(transition)
        if self._hooks:
            # Receivers run in order, after the new state is visible to waiters; a slow
            # receiver delays only this server's next check.
            for event in topology_hook_events(
                state.description, transition.state.description, loop.time()
            ):
                await self._hooks.dispatch(event)

    async def _probe_once(
        self, address: Address, loop: asyncio.AbstractEventLoop
    ) -> tuple[Mapping[str, Any], float] | BaseException:
        started = loop.time()
        self._tracker = self._tracker.started(address, started)
        self._emit((ServerHeartbeatStarted(address, awaited=False),))
        try:
            async with asyncio.timeout(self._check_timeout):
                reply = await self._probe.check(address, self._check_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            now = loop.time()
            self._tracker = self._tracker.failed(address, now, exc, duration=now - started)
            self._emit((ServerHeartbeatFailed(address, now - started, repr(exc), awaited=False),))
            return exc
        now = loop.time()
        self._tracker = self._tracker.succeeded(address, now, now - started)
        self._emit((ServerHeartbeatSucceeded(address, now - started, reply, awaited=False),))
        return reply, now - started

    def _known(self, address: Address) -> bool:
        server = self.state.description.servers.get(address)
        return server is not None and server.is_known

    # --- applying transitions -----------------------------------------------------------------

    def _apply(self, transition: Transition) -> None:
        self._state = transition.state
        self._require_waiter().publish(transition.state.description)
        self._emit(transition.events)
        for action in transition.actions:
            if isinstance(action, StartMonitoring):
                self._start_task(action.address)
            elif isinstance(action, StopMonitoring):
                task = self._tasks.pop(action.address, None)
                self._wake.pop(action.address, None)
                if task is not None:
                    task.cancel()
            elif isinstance(action, CheckNow):
                self.request_check(action.address)
            elif self._on_clear_pool is not None:  # ClearPool: pools belong to the caller
                self._call_safely(self._on_clear_pool, action)

    def _start_task(self, address: Address) -> None:
        if self._closed or address in self._tasks:
            return
        self._wake[address] = AsyncEvent()
        task = asyncio.get_running_loop().create_task(
            self._run(address), name=f"resilient-topology-monitor {address}"
        )
        self._tasks[address] = task
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("monitor task %s died", task.get_name(), exc_info=task.exception())

    def _emit(self, events: tuple[SdamEvent, ...]) -> None:
        for event in events:
            for listener in self._listeners:
                self._call_safely(listener, event)

    @staticmethod
    def _call_safely(receiver: Callable[[Any], None], value: object) -> None:
        try:
            receiver(value)
        except Exception:
            logger.exception("a monitor listener failed on %r; the others still run", value)

    def _require_waiter(self) -> AsyncTopologyWaiter[TopologyDescription]:
        if self._waiter is None:
            raise ConfigurationError("the monitor has not been started")
        return self._waiter

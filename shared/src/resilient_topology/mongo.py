"""Adapter: pymongo's monitoring events in, the core's topology state out.

pymongo already monitors every server (one monitor per client); this module does not start a
second one. Register a :class:`PymongoTopologyAdapter` as an event listener of a ``MongoClient``
or ``AsyncMongoClient`` and it feeds each heartbeat through the core's reducer and heartbeat
tracker, then hands a :class:`TopologySnapshot` to its subscribers (waiters, hooks).

Heartbeats are used rather than pymongo's own description-changed events because pymongo
delivers those from a queue drained about once a second; heartbeat events arrive at once.
Listeners of a sync client run on pymongo's monitor threads, those of an async client on the
event loop: the adapter's state is guarded by a lock held only while computing, never while
calling out.

Requires the ``mongo`` extra (``pip install resilient-topology[mongo]``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Self

try:
    import pymongo.errors
    from pymongo import monitoring
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "resilient_topology.mongo needs pymongo: pip install 'resilient-topology[mongo]'"
    ) from exc

from . import errors
from .address import Address
from .heartbeat import HeartbeatTracker
from .hooks import HookRegistry, TopologyHookEvent, topology_hook_events
from .sdam import TopologyState, Transition
from .server import ServerDescription, TopologyVersion, topology_version_from
from .settings import TopologySettings
from .topology import TopologyDescription

__all__ = [
    "PymongoHeartbeatAdapter",
    "PymongoTopologyAdapter",
    "TopologySnapshot",
    "map_pymongo_errors",
    "translate_pymongo_error",
]

logger = logging.getLogger("resilient_topology.mongo")


@dataclass(frozen=True, slots=True)
class TopologySnapshot:
    """What the adapter knows after one event: the topology and the heartbeat history."""

    description: TopologyDescription
    heartbeats: HeartbeatTracker


Subscriber = Callable[[TopologySnapshot], None]


class PymongoHeartbeatAdapter(monitoring.ServerHeartbeatListener):
    """A pymongo heartbeat listener that keeps the core's view of the deployment current.

    Heartbeats only: pymongo then runs no event-queue thread for this client, so
    ``client.close()`` returns at once. :class:`PymongoTopologyAdapter` also follows the
    Unknown markings pymongo makes after application errors.
    """

    def __init__(
        self,
        settings: TopologySettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        topology_id: str = "pymongo",
        hooks: HookRegistry | None = None,
    ) -> None:
        self._clock = clock
        self._hooks = hooks
        self._hook_tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()
        self._state = TopologyState.open(settings, topology_id).state
        self._tracker = HeartbeatTracker.for_seeds(settings.seeds)
        self._subscribers: list[Subscriber] = []
        self._transition_listeners: list[Callable[[Transition], None]] = []

    @classmethod
    def from_uri(cls, uri: str, **kwargs: Any) -> Self:
        return cls(TopologySettings.from_uri(uri), **kwargs)

    # --- what callers read and subscribe to ---------------------------------------------------

    @property
    def snapshot(self) -> TopologySnapshot:
        with self._lock:
            return TopologySnapshot(self._state.description, self._tracker)

    @property
    def description(self) -> TopologyDescription:
        return self.snapshot.description

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber`` with every new snapshot; returns a function that unsubscribes."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(subscriber)

        return unsubscribe

    def on_transition(self, listener: Callable[[Transition], None]) -> None:
        """Receive each state transition (events and actions) computed from pymongo's events."""
        self._transition_listeners.append(listener)

    # --- pymongo ServerHeartbeatListener ------------------------------------------------------

    def started(self, event: Any) -> None:
        """pymongo calls ``started`` for heartbeats, servers and topologies alike."""
        if isinstance(event, monitoring.ServerHeartbeatStartedEvent):
            address = _address(event.connection_id)
            self._update(
                lambda s, t: (None, t.started(address, self._clock(), awaited=event.awaited))
            )

    def succeeded(self, event: monitoring.ServerHeartbeatSucceededEvent) -> None:
        address = _address(event.connection_id)
        document = event.reply.document
        awaited = bool(event.awaited)

        def step(
            state: TopologyState, tracker: HeartbeatTracker
        ) -> tuple[Transition, HeartbeatTracker]:
            now = self._clock()
            # An awaited (streaming) hello waits for a change: its duration is not a round trip.
            rtt = None if awaited else float(event.duration)
            tracker = tracker.succeeded(
                address, now, rtt, awaited=awaited, reply_kind=_server_type_name(document)
            )
            average = tracker.average_rtt(address)
            transition = state.on_check_succeeded(
                address, document, round_trip_time=average, now=now
            )
            return transition, tracker

        self._update(step)

    def failed(self, event: monitoring.ServerHeartbeatFailedEvent) -> None:
        address = _address(event.connection_id)
        error = event.reply

        def step(
            state: TopologyState, tracker: HeartbeatTracker
        ) -> tuple[Transition, HeartbeatTracker]:
            now = self._clock()
            tracker = tracker.failed(
                address, now, error, duration=float(event.duration), awaited=bool(event.awaited)
            )
            return state.on_check_failed(address, error, now=now), tracker

        self._update(step)

    # --- internals ----------------------------------------------------------------------------

    def _update(
        self,
        step: Callable[
            [TopologyState, HeartbeatTracker], tuple[Transition | None, HeartbeatTracker]
        ],
    ) -> None:
        try:
            with self._lock:
                previous = self._state.description
                transition, tracker = step(self._state, self._tracker)
                self._tracker = tracker
                if transition is not None:
                    self._state = transition.state
                snapshot = TopologySnapshot(self._state.description, tracker)
        except Exception:
            # pymongo would log and drop an exception raised here; say what was lost.
            logger.exception("could not apply a pymongo monitoring event to the topology")
            return
        for listener in list(self._transition_listeners) if transition is not None else ():
            _call_safely(listener, transition)
        for subscriber in list(self._subscribers):
            _call_safely(subscriber, snapshot)
        if self._hooks and transition is not None:
            self._fire_hooks(topology_hook_events(previous, snapshot.description, self._clock()))

    def _fire_hooks(self, events: tuple[TopologyHookEvent, ...]) -> None:
        """Sync clients call plain receivers here; on an event loop, every receiver runs in order
        in one task the adapter keeps until it ends (see :meth:`wait_for_hooks`)."""
        if not events or self._hooks is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            for event in events:
                self._hooks.dispatch_sync(event)
            return
        task = loop.create_task(_dispatch_in_order(self._hooks, events))
        self._hook_tasks.add(task)
        task.add_done_callback(self._hook_tasks.discard)

    async def wait_for_hooks(self) -> None:
        """Wait until every hook dispatch started on the event loop has finished."""
        while self._hook_tasks:
            await asyncio.gather(*tuple(self._hook_tasks), return_exceptions=True)


class PymongoTopologyAdapter(
    PymongoHeartbeatAdapter, monitoring.ServerListener, monitoring.TopologyListener
):
    """The heartbeat adapter, also following pymongo's server descriptions.

    Registering server and topology listeners makes pymongo queue those events on a thread of
    its own, which ``client.close()`` waits for (up to about half a second); prefer
    :class:`PymongoHeartbeatAdapter` where application-error markings do not matter.
    """

    # --- pymongo ServerListener / TopologyListener --------------------------------------------

    def opened(self, event: Any) -> None:
        """Membership is computed by the core's reducer from heartbeats; nothing to do."""

    def closed(self, event: Any) -> None:
        """See :meth:`opened`."""

    def description_changed(self, event: Any) -> None:
        """Follow pymongo when it marks a server Unknown after an application error.

        Those markings (a "not primary" reply, a dropped connection) never show up as heartbeats,
        so they are taken from pymongo's own server description here.
        """
        if not isinstance(event, monitoring.ServerDescriptionChangedEvent):
            return
        new = event.new_description
        if new.is_server_type_known:
            return
        address = _address(event.server_address)
        topology_version = _topology_version(new.topology_version)

        def step(
            state: TopologyState, tracker: HeartbeatTracker
        ) -> tuple[Transition, HeartbeatTracker]:
            current = state.description.servers.get(address)
            if current is None or not current.is_known:
                return Transition(state), tracker
            unknown = ServerDescription.unknown(
                address, new.error, topology_version=topology_version, now=self._clock()
            )
            return state.apply(unknown), tracker

        self._update(step)


async def _dispatch_in_order(hooks: HookRegistry, events: tuple[TopologyHookEvent, ...]) -> None:
    for event in events:
        await hooks.dispatch(event)


def _call_safely(receiver: Callable[[Any], None], value: object) -> None:
    try:
        receiver(value)
    except Exception:
        logger.exception("a topology subscriber failed; the others still run")


def _address(pair: tuple[str, int | None]) -> Address:
    return Address.of(pair)


def _server_type_name(document: Mapping[str, Any]) -> str | None:
    try:
        return ServerDescription.from_hello(
            Address("reply", 1), document, round_trip_time=None, now=0.0
        ).server_type.value
    except errors.InvalidHelloReply:
        return None


def _topology_version(value: Any) -> TopologyVersion | None:
    if not isinstance(value, Mapping):
        return None
    try:
        return topology_version_from(value, "pymongo")
    except errors.InvalidHelloReply:
        return None


# --- error translation ------------------------------------------------------------------------

_TRANSLATIONS: tuple[tuple[type[BaseException], type[errors.TopologyError]], ...] = (
    (pymongo.errors.ServerSelectionTimeoutError, errors.ServerSelectionTimeout),
    (pymongo.errors.ConnectionFailure, errors.ConnectionFailure),
    (pymongo.errors.ConfigurationError, errors.ConfigurationError),
    (pymongo.errors.InvalidURI, errors.ConfigurationError),
    (pymongo.errors.ProtocolError, errors.RemoteProtocolError),
)


def translate_pymongo_error(exc: BaseException) -> errors.TopologyError | None:
    """The core error for a pymongo error (most specific match first), or ``None``."""
    for foreign, native in _TRANSLATIONS:
        if isinstance(exc, foreign):
            labels = getattr(exc, "_error_labels", ()) or ()
            translated = native(str(exc), labels=labels)
            translated.__cause__ = exc
            return translated
    return None


@contextlib.contextmanager
def map_pymongo_errors() -> Iterator[None]:
    """Re-raise pymongo's errors as the core's, keeping the original as ``__cause__``."""
    try:
        yield
    except pymongo.errors.PyMongoError as exc:
        translated = translate_pymongo_error(exc)
        if translated is None:
            raise
        raise translated from exc

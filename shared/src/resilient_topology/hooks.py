"""Typed reconnect hooks: one event class per moment, and a registry that can be frozen.

Modelled on aiohttp's ``TraceConfig``: each moment a client may want to hear about (the topology
or one server changed, the primary or leader moved, a reconnect is scheduled, succeeded or was
abandoned) has its own frozen event class carrying the facts and the time ``at`` which it
happened, on the caller's clock. Receivers register for an exact event class; subclasses are not
matched, so the set of receivers an event reaches is plain to see.

Receivers may be plain callables or coroutine functions. :meth:`HookRegistry.dispatch` (async)
runs both kinds; :meth:`HookRegistry.dispatch_sync` runs the plain ones and skips coroutine
functions with a warning logged once per receiver, because a sync driver has no loop to run them
on and blocking on one would be worse. Sync clients can call :meth:`HookRegistry.require_sync`
at start-up to turn that into an early :class:`ConfigurationError`.

A receiver that raises :class:`Exception` is logged (logger ``resilient_topology.hooks``, with
the traceback) and the remaining receivers still run: a buggy listener must not break
reconnection. ``KeyboardInterrupt``, ``SystemExit`` and ``CancelledError`` are not swallowed.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeAlias, TypeVar, cast

from .address import Address
from .errors import ConfigurationError
from .server import ServerDescription
from .topology import TopologyDescription

__all__ = [
    "HOOK_EVENT_TYPES",
    "HookEvent",
    "HookRegistry",
    "LeaderChanged",
    "PrimaryChanged",
    "Receiver",
    "ReconnectGivenUp",
    "Reconnected",
    "Reconnecting",
    "ServerChanged",
    "TopologyChanged",
    "TopologyHookEvent",
    "topology_hook_events",
]

logger = logging.getLogger("resilient_topology.hooks")

E = TypeVar("E")

Receiver: TypeAlias = Callable[[E], Awaitable[None] | None]
"""A plain callable returning ``None``, or a coroutine function; called with the event."""


# Descriptions are typed with the core's own classes: MongoDB and EventStore both reduce to
# TopologyDescription / ServerDescription, so receivers get full types without casts.


@dataclass(frozen=True, slots=True)
class TopologyChanged:
    """The topology description changed (the core never reports an equal one)."""

    previous: TopologyDescription
    new: TopologyDescription
    at: float


@dataclass(frozen=True, slots=True)
class ServerChanged:
    """The description of the server at ``address`` changed."""

    address: Address
    previous: ServerDescription
    new: ServerDescription
    at: float


@dataclass(frozen=True, slots=True)
class PrimaryChanged:
    """The writable member moved: a MongoDB primary or an EventStore leader.

    ``None`` on either side means there was, or now is, no such member.
    """

    previous: Address | None
    new: Address | None
    at: float


LeaderChanged = PrimaryChanged
"""The EventStore name for :class:`PrimaryChanged`; the same class, so one registration serves."""


@dataclass(frozen=True, slots=True)
class Reconnecting:
    """Attempt number ``attempt`` will start after ``delay`` seconds, because of ``error``."""

    attempt: int
    delay: float
    error: BaseException | None
    at: float

    def __post_init__(self) -> None:
        _check_attempt(self.attempt)
        if not self.delay >= 0:
            raise ConfigurationError(f"delay must be a non-negative number, got {self.delay}")


@dataclass(frozen=True, slots=True)
class Reconnected:
    """Attempt number ``attempt`` reached the server at ``address``."""

    attempt: int
    address: Address
    at: float

    def __post_init__(self) -> None:
        _check_attempt(self.attempt)


@dataclass(frozen=True, slots=True)
class ReconnectGivenUp:
    """The retry policy ran out after ``attempts`` attempts; ``error`` is the last failure."""

    attempts: int
    error: BaseException | None
    at: float


HookEvent: TypeAlias = (
    TopologyChanged | ServerChanged | PrimaryChanged | Reconnecting | Reconnected | ReconnectGivenUp
)

HOOK_EVENT_TYPES: tuple[type[HookEvent], ...] = (
    TopologyChanged,
    ServerChanged,
    PrimaryChanged,
    Reconnecting,
    Reconnected,
    ReconnectGivenUp,
)


@dataclass(slots=True)
class _Entry:
    receiver: Callable[[object], Awaitable[None] | None]
    is_async: bool
    warned: bool = False


class HookRegistry:
    """Receivers by exact event class, in registration order; frozen before use.

    Any class can serve as an event type, so packages may dispatch events of their own through
    the same registry. Registering the same receiver twice for one event type is refused: it is
    nearly always a mistake, and it would make :meth:`unregister` ambiguous.
    """

    __slots__ = ("_entries", "_frozen")

    def __init__(self) -> None:
        self._entries: dict[type[object], list[_Entry]] = {}
        self._frozen = False

    # --- configuration ------------------------------------------------------------------------

    def register(self, event_type: type[E], receiver: Receiver[E]) -> Receiver[E]:
        """Call ``receiver`` for every dispatched event of exactly ``event_type``.

        Returns ``receiver``, so a bound method or lambda can be kept for :meth:`unregister`.
        """
        self._check_open("register")
        if not isinstance(event_type, type):
            raise ConfigurationError(f"event_type must be a class, got {event_type!r}")
        if not callable(receiver):
            raise ConfigurationError(f"receiver must be callable, got {receiver!r}")
        entries = self._entries.setdefault(event_type, [])
        if any(entry.receiver == receiver for entry in entries):
            raise ConfigurationError(
                f"{receiver!r} is already registered for {event_type.__name__}"
            )
        entries.append(
            _Entry(
                cast(Callable[[object], Awaitable[None] | None], receiver),
                _is_async_callable(receiver),
            )
        )
        return receiver

    def on(self, event_type: type[E]) -> Callable[[Receiver[E]], Receiver[E]]:
        """Decorator form of :meth:`register`."""

        def decorate(receiver: Receiver[E]) -> Receiver[E]:
            return self.register(event_type, receiver)

        return decorate

    def unregister(self, event_type: type[E], receiver: Receiver[E]) -> None:
        """Stop calling ``receiver`` for ``event_type``; raises if it was not registered."""
        self._check_open("unregister")
        entries = self._entries.get(event_type, [])
        for index, entry in enumerate(entries):
            if entry.receiver == receiver:
                del entries[index]
                if not entries:
                    del self._entries[event_type]
                return
        raise ConfigurationError(f"{receiver!r} is not registered for {event_type.__name__}")

    def freeze(self) -> HookRegistry:
        """Fix the set of receivers; later changes raise :class:`ConfigurationError`.

        Drivers freeze the registry they are given, so what runs is what was configured at
        start-up. Freezing twice is allowed. Returns the registry for chaining.
        """
        self._frozen = True
        return self

    @property
    def frozen(self) -> bool:
        return self._frozen

    def require_sync(self) -> None:
        """Raise :class:`ConfigurationError` if any receiver is a coroutine function.

        For sync drivers, which cannot run async receivers and would otherwise only skip them.
        """
        names = [
            f"{event_type.__name__}: {entry.receiver!r}"
            for event_type, entries in self._entries.items()
            for entry in entries
            if entry.is_async
        ]
        if names:
            raise ConfigurationError(
                "a synchronous client cannot run async hook receivers: " + ", ".join(names)
            )

    # --- queries ------------------------------------------------------------------------------

    def receivers(self, event_type: type[E]) -> tuple[Receiver[E], ...]:
        """The receivers for exactly ``event_type``, in registration order."""
        return tuple(entry.receiver for entry in self._entries.get(event_type, ()))

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __repr__(self) -> str:
        count = sum(len(entries) for entries in self._entries.values())
        state = "frozen" if self._frozen else "open"
        return f"<HookRegistry {state}, {count} receiver{'s' if count != 1 else ''}>"

    # --- dispatch -----------------------------------------------------------------------------

    def dispatch_sync(self, event: object) -> None:
        """Call the plain receivers for ``event``, skipping coroutine functions (logged once)."""
        for entry in tuple(self._entries.get(type(event), ())):
            if entry.is_async:
                if not entry.warned:
                    entry.warned = True
                    logger.warning(
                        "skipping async hook receiver %r for %s: dispatched synchronously",
                        entry.receiver,
                        type(event).__name__,
                    )
                continue
            try:
                result = entry.receiver(event)
            except Exception:
                _log_failure(entry, event)
                continue
            if inspect.isawaitable(result):
                # Async in disguise (a lambda returning a coroutine): nothing can await it here.
                if inspect.iscoroutine(result):
                    result.close()
                entry.is_async = True
                entry.warned = True
                logger.warning(
                    "hook receiver %r for %s returned an awaitable under synchronous dispatch; "
                    "it was not awaited and will be skipped from now on",
                    entry.receiver,
                    type(event).__name__,
                )

    async def dispatch(self, event: object) -> None:
        """Call every receiver for ``event`` in order, awaiting the async ones one by one."""
        for entry in tuple(self._entries.get(type(event), ())):
            try:
                result = entry.receiver(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                _log_failure(entry, event)

    def _check_open(self, verb: str) -> None:
        if self._frozen:
            raise ConfigurationError(f"cannot {verb} a hook receiver: the registry is frozen")


def _check_attempt(attempt: int) -> None:
    if attempt < 1:
        raise ConfigurationError(f"attempt must be at least 1, got {attempt}")


def _is_async_callable(receiver: object) -> bool:
    if inspect.iscoroutinefunction(receiver):
        return True
    call = getattr(receiver, "__call__", None)  # noqa: B004 - an object with async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def _log_failure(entry: _Entry, event: object) -> None:
    logger.error(
        "hook receiver %r failed on %s; other receivers still run",
        entry.receiver,
        type(event).__name__,
        exc_info=True,
    )


TopologyHookEvent: TypeAlias = TopologyChanged | ServerChanged | PrimaryChanged


def topology_hook_events(
    previous: TopologyDescription, new: TopologyDescription, at: float
) -> tuple[TopologyHookEvent, ...]:
    """The hook events that going from ``previous`` to ``new`` amounts to, in a stable order.

    Servers that appeared or disappeared are reported through :class:`TopologyChanged` only;
    :class:`ServerChanged` is for a server present on both sides whose description changed.
    """
    if previous == new:
        return ()
    events: list[TopologyHookEvent] = [TopologyChanged(previous, new, at)]
    for address, after in new.servers.items():
        before = previous.servers.get(address)
        if before is not None and before != after:
            events.append(ServerChanged(address, before, after, at))
    old_primary, new_primary = previous.primary, new.primary
    old_address = None if old_primary is None else old_primary.address
    new_address = None if new_primary is None else new_primary.address
    if old_address != new_address:
        events.append(PrimaryChanged(old_address, new_address, at))
    return tuple(events)

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging

import pytest

from resilient_topology import TopologyState
from resilient_topology._types import ServerType, TopologyType
from resilient_topology.address import Address
from resilient_topology.errors import ConfigurationError, ConnectionFailure
from resilient_topology.hooks import (
    HOOK_EVENT_TYPES,
    HookRegistry,
    LeaderChanged,
    PrimaryChanged,
    Reconnected,
    ReconnectGivenUp,
    Reconnecting,
    ServerChanged,
    TopologyChanged,
    topology_hook_events,
)
from resilient_topology.server import ServerDescription
from resilient_topology.settings import TopologySettings
from resilient_topology.topology import TopologyDescription

A = Address("a", 27017)
B = Address("b", 27017)
LOGGER = "resilient_topology.hooks"


def reconnecting(attempt: int = 1) -> Reconnecting:
    return Reconnecting(attempt=attempt, delay=0.5, error=ConnectionFailure("down"), at=10.0)


# --- events -------------------------------------------------------------------------------------


def test_events_are_frozen_values() -> None:
    event = PrimaryChanged(previous=A, new=B, at=1.0)
    assert event == PrimaryChanged(A, B, 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.new = A  # type: ignore[misc]
    assert not hasattr(event, "__dict__")


def test_every_event_has_a_time() -> None:
    for event_type in HOOK_EVENT_TYPES:
        assert "at" in {f.name for f in dataclasses.fields(event_type)}


def test_leader_changed_is_primary_changed() -> None:
    assert LeaderChanged is PrimaryChanged
    assert PrimaryChanged(None, A, 0.0).previous is None


def test_description_events_carry_core_descriptions() -> None:
    settings = TopologySettings(seeds=(A,))
    before = TopologyDescription.initial(settings)
    after = dataclasses.replace(before, topology_type=TopologyType.ReplicaSetNoPrimary)
    changed = TopologyChanged(previous=before, new=after, at=3.0)
    assert changed.new.topology_type is TopologyType.ReplicaSetNoPrimary

    old = ServerDescription.unknown(A)
    new = dataclasses.replace(old, server_type=ServerType.RSSecondary)
    server_changed = ServerChanged(address=A, previous=old, new=new, at=3.0)
    assert server_changed.new.server_type is ServerType.RSSecondary


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: Reconnecting(0, 1.0, None, 0.0), "attempt must be at least 1"),
        (lambda: Reconnecting(1, -1.0, None, 0.0), "delay must be a non-negative"),
        (lambda: Reconnecting(1, float("nan"), None, 0.0), "delay must be a non-negative"),
        (lambda: Reconnected(0, A, 0.0), "attempt must be at least 1"),
    ],
)
def test_events_validate(build, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        build()


# --- registration -------------------------------------------------------------------------------


def test_registration_order_is_kept() -> None:
    registry = HookRegistry()
    calls: list[str] = []
    for name in ("first", "second", "third"):
        registry.register(Reconnecting, functools.partial(lambda n, e: calls.append(n), name))
    registry.dispatch_sync(reconnecting())
    assert calls == ["first", "second", "third"]


def test_register_returns_the_receiver_and_on_decorates() -> None:
    registry = HookRegistry()
    seen: list[object] = []

    def receiver(event: Reconnected) -> None:
        seen.append(event)

    assert registry.register(Reconnected, receiver) is receiver

    @registry.on(ReconnectGivenUp)
    def given_up(event: ReconnectGivenUp) -> None:
        seen.append(event)

    assert registry.receivers(Reconnected) == (receiver,)
    assert registry.receivers(ReconnectGivenUp) == (given_up,)
    assert registry.receivers(Reconnecting) == ()


def test_dispatch_is_by_exact_type() -> None:
    registry = HookRegistry()
    seen: list[object] = []

    class Base:
        pass

    class Derived(Base):
        pass

    registry.register(Base, seen.append)
    registry.dispatch_sync(Derived())
    assert seen == []
    base = Base()
    registry.dispatch_sync(base)
    assert seen == [base]


def test_events_without_receivers_are_ignored() -> None:
    registry = HookRegistry()
    assert not registry
    registry.dispatch_sync(reconnecting())
    asyncio.run(registry.dispatch(reconnecting()))


def test_duplicate_registration_is_refused() -> None:
    registry = HookRegistry()
    seen: list[object] = []
    registry.register(Reconnecting, seen.append)
    with pytest.raises(ConfigurationError, match="already registered for Reconnecting"):
        registry.register(Reconnecting, seen.append)
    registry.register(Reconnected, seen.append)  # another event type is fine


def test_unregister() -> None:
    registry = HookRegistry()
    seen: list[object] = []
    registry.register(Reconnecting, seen.append)
    registry.unregister(Reconnecting, seen.append)
    registry.dispatch_sync(reconnecting())
    assert seen == []
    assert not registry
    with pytest.raises(ConfigurationError, match="is not registered for Reconnecting"):
        registry.unregister(Reconnecting, seen.append)


@pytest.mark.parametrize(
    ("event_type", "receiver", "fragment"),
    [("Reconnecting", print, "event_type must be a class"), (Reconnecting, 42, "must be callable")],
)
def test_register_checks_arguments(event_type, receiver, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        HookRegistry().register(event_type, receiver)


def test_frozen_registry_refuses_changes() -> None:
    registry = HookRegistry()
    seen: list[object] = []
    registry.register(Reconnecting, seen.append)
    assert registry.freeze() is registry
    assert registry.frozen
    registry.freeze()  # idempotent
    with pytest.raises(ConfigurationError, match="frozen"):
        registry.register(Reconnected, seen.append)
    with pytest.raises(ConfigurationError, match="frozen"):
        registry.unregister(Reconnecting, seen.append)
    with pytest.raises(ConfigurationError, match="frozen"):
        registry.on(Reconnected)(seen.append)
    event = reconnecting()
    registry.dispatch_sync(event)
    assert seen == [event]
    assert "frozen, 1 receiver" in repr(registry)


# --- failure isolation ----------------------------------------------------------------------------


def test_failing_receiver_is_logged_and_isolated(caplog: pytest.LogCaptureFixture) -> None:
    registry = HookRegistry()
    seen: list[object] = []

    def broken(event: Reconnecting) -> None:
        raise RuntimeError("receiver bug")

    registry.register(Reconnecting, broken)
    registry.register(Reconnecting, seen.append)
    event = reconnecting()
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        registry.dispatch_sync(event)
    assert seen == [event]
    [record] = caplog.records
    assert record.name == LOGGER
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert "Reconnecting" in record.getMessage()


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit, asyncio.CancelledError])
def test_base_exceptions_propagate_from_sync_dispatch(exc_type: type[BaseException]) -> None:
    registry = HookRegistry()
    seen: list[object] = []

    def interrupt(event: Reconnecting) -> None:
        raise exc_type()

    registry.register(Reconnecting, interrupt)
    registry.register(Reconnecting, seen.append)
    with pytest.raises(exc_type):
        registry.dispatch_sync(reconnecting())
    assert seen == []


# --- sync dispatch of async receivers -------------------------------------------------------------


def test_sync_dispatch_skips_async_receivers_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = HookRegistry()
    seen: list[object] = []

    async def async_receiver(event: Reconnecting) -> None:
        seen.append(("async", event))

    registry.register(Reconnecting, async_receiver)
    registry.register(Reconnecting, seen.append)
    first, second = reconnecting(1), reconnecting(2)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        registry.dispatch_sync(first)
        registry.dispatch_sync(second)
    assert seen == [first, second]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipping async hook receiver" in warnings[0].getMessage()


def test_disguised_async_receiver_is_closed_not_leaked(caplog: pytest.LogCaptureFixture) -> None:
    registry = HookRegistry()
    awaited: list[object] = []

    async def work(event: object) -> None:
        awaited.append(event)

    registry.register(Reconnecting, lambda event: work(event))  # looks sync, returns a coroutine
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        registry.dispatch_sync(reconnecting())  # no "never awaited" RuntimeWarning either
        registry.dispatch_sync(reconnecting())
    assert awaited == []
    assert len(caplog.records) == 1
    assert "returned an awaitable" in caplog.records[0].getMessage()


def test_async_callable_objects_are_detected() -> None:
    class Receiver:
        async def __call__(self, event: Reconnecting) -> None:
            pass

    registry = HookRegistry()
    registry.register(Reconnecting, Receiver())
    with pytest.raises(ConfigurationError, match="cannot run async hook receivers"):
        registry.require_sync()


def test_require_sync_names_the_async_receivers() -> None:
    registry = HookRegistry()

    async def on_reconnected(event: Reconnected) -> None:
        pass

    registry.register(Reconnecting, print)
    registry.require_sync()
    registry.register(Reconnected, on_reconnected)
    with pytest.raises(ConfigurationError, match=r"Reconnected: .*on_reconnected"):
        registry.require_sync()


# --- async dispatch -----------------------------------------------------------------------------


def test_async_dispatch_runs_both_kinds_in_order() -> None:
    registry = HookRegistry()
    calls: list[str] = []

    def sync_receiver(event: Reconnected) -> None:
        calls.append("sync")

    async def async_receiver(event: Reconnected) -> None:
        await asyncio.sleep(0)
        calls.append("async")

    async def partial_receiver(label: str, event: Reconnected) -> None:
        calls.append(label)

    registry.register(Reconnected, async_receiver)
    registry.register(Reconnected, sync_receiver)
    registry.register(Reconnected, functools.partial(partial_receiver, "partial"))
    asyncio.run(registry.dispatch(Reconnected(attempt=2, address=A, at=5.0)))
    assert calls == ["async", "sync", "partial"]


def test_async_dispatch_isolates_failures(caplog: pytest.LogCaptureFixture) -> None:
    registry = HookRegistry()
    seen: list[object] = []

    async def broken(event: ReconnectGivenUp) -> None:
        await asyncio.sleep(0)
        raise ValueError("late failure")

    def broken_sync(event: ReconnectGivenUp) -> None:
        raise KeyError("early failure")

    registry.register(ReconnectGivenUp, broken)
    registry.register(ReconnectGivenUp, broken_sync)
    registry.register(ReconnectGivenUp, seen.append)
    event = ReconnectGivenUp(attempts=3, error=None, at=9.0)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        asyncio.run(registry.dispatch(event))
    assert seen == [event]
    assert [type(r.exc_info[1]) for r in caplog.records if r.exc_info] == [ValueError, KeyError]


def test_async_dispatch_lets_cancellation_through() -> None:
    registry = HookRegistry()
    seen: list[object] = []

    async def cancelled(event: Reconnecting) -> None:
        raise asyncio.CancelledError

    registry.register(Reconnecting, cancelled)
    registry.register(Reconnecting, seen.append)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(registry.dispatch(reconnecting()))
    assert seen == []


def test_receivers_may_not_change_the_dispatch_in_progress() -> None:
    registry = HookRegistry()
    calls: list[str] = []

    def second(event: Reconnecting) -> None:
        calls.append("second")

    def first(event: Reconnecting) -> None:
        calls.append("first")
        registry.register(Reconnecting, second)

    registry.register(Reconnecting, first)
    registry.dispatch_sync(reconnecting())
    assert calls == ["first"]


def test_topology_hook_events_report_server_and_primary_moves() -> None:
    a = Address("a", 27017)
    state = TopologyState.open(TopologySettings.of(["a", "b"], replica_set_name="rs"), "t").state

    def hello(primary: bool) -> dict[str, object]:
        return {
            "ok": 1,
            "setName": "rs",
            "isWritablePrimary": primary,
            "secondary": not primary,
            "hosts": ["a:27017", "b:27017"],
            "maxWireVersion": 21,
        }

    first = state.on_check_succeeded(a, hello(True), round_trip_time=0.0, now=1).state
    events = topology_hook_events(state.description, first.description, at=1.0)
    assert [type(e) for e in events] == [TopologyChanged, ServerChanged, PrimaryChanged]
    assert events[-1] == PrimaryChanged(None, a, 1.0)
    second = first.on_check_succeeded(a, hello(False), round_trip_time=0.0, now=2).state
    moved = topology_hook_events(first.description, second.description, at=2.0)
    assert moved[-1] == PrimaryChanged(a, None, 2.0)
    assert topology_hook_events(second.description, second.description, at=3.0) == ()

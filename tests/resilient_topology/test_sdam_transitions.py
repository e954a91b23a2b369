"""Events and actions the monitoring state machine returns for drivers to perform."""

from __future__ import annotations

from resilient_topology import (
    ApplicationError,
    CheckNow,
    ClearPool,
    ErrorKind,
    HandshakePhase,
    ServerClosed,
    ServerDescriptionChanged,
    ServerOpening,
    ServerType,
    StartMonitoring,
    StopMonitoring,
    TopologyDescriptionChanged,
    TopologyOpening,
    TopologySettings,
    TopologyState,
    TopologyType,
)
from resilient_topology.address import Address

A, B, C = Address("a", 27017), Address("b", 27017), Address("c", 27017)
TV = {"processId": b"\x00" * 12, "counter": 5}


def primary(*hosts: str, **extra: object) -> dict[str, object]:
    return {
        "ok": 1,
        "setName": "rs",
        "isWritablePrimary": True,
        "hosts": list(hosts),
        "maxWireVersion": 21,
        **extra,
    }


def opened(uri: str = "mongodb://a,b/?replicaSet=rs") -> TopologyState:
    return TopologyState.open(TopologySettings.from_uri(uri), "t").state


def test_open_publishes_opening_events_and_starts_monitors() -> None:
    transition = TopologyState.open(TopologySettings.from_uri("mongodb://a,b"), "t")
    kinds = [type(e) for e in transition.events]
    assert kinds == [TopologyOpening, TopologyDescriptionChanged, ServerOpening, ServerOpening]
    assert transition.actions == (StartMonitoring(A), StartMonitoring(B))


def test_load_balancer_is_never_monitored() -> None:
    transition = TopologyState.open(
        TopologySettings.from_uri("mongodb://a/?loadBalanced=true"), "t"
    )
    assert transition.actions == ()
    assert transition.state.description.servers[A].server_type is ServerType.LoadBalancer


def test_discovery_adds_and_removes_members_with_monitor_actions() -> None:
    transition = opened().on_check_succeeded(
        A, primary("a:27017", "c:27017"), round_trip_time=0.001, now=1
    )
    assert set(transition.state.description.servers) == {A, C}
    assert StartMonitoring(C) in transition.actions
    assert StopMonitoring(B) in transition.actions
    kinds = [type(e) for e in transition.events]
    assert kinds == [
        ServerDescriptionChanged,
        ServerOpening,
        ServerClosed,
        TopologyDescriptionChanged,
    ]


def test_equal_reply_publishes_nothing() -> None:
    first = opened().on_check_succeeded(
        A, primary("a:27017", "b:27017"), round_trip_time=0.001, now=1
    )
    again = first.state.on_check_succeeded(
        A, primary("a:27017", "b:27017"), round_trip_time=0.5, now=2
    )
    assert again.events == ()
    assert again.actions == ()


def test_failed_check_marks_unknown_and_clears_pool() -> None:
    state = (
        opened()
        .on_check_succeeded(A, primary("a:27017", "b:27017"), round_trip_time=0.001, now=1)
        .state
    )
    transition = state.on_check_failed(A, ConnectionResetError("reset"), now=2)
    assert transition.state.description.topology_type is TopologyType.ReplicaSetNoPrimary
    assert transition.actions[-1] == ClearPool(A, 1)
    assert transition.state.pool_generation(A) == 1


def test_unparseable_reply_is_a_failed_check() -> None:
    transition = opened().on_check_succeeded(A, {"ok": 1, "hosts": 7}, round_trip_time=0.0, now=1)
    server = transition.state.description.servers[A]
    assert server.server_type is ServerType.Unknown
    assert server.error is not None
    assert "hosts" in server.error


def test_state_change_error_requests_a_check_and_keeps_pool_on_modern_servers() -> None:
    state = (
        opened()
        .on_check_succeeded(
            A, primary("a:27017", "b:27017", topologyVersion=TV), round_trip_time=0.001, now=1
        )
        .state
    )
    error = ApplicationError(
        A,
        ErrorKind.COMMAND,
        max_wire_version=21,
        reply={"ok": 0, "code": 10107, "topologyVersion": {**TV, "counter": 6}},
    )
    transition = state.on_application_error(error)
    assert transition.state.description.servers[A].server_type is ServerType.Unknown
    assert CheckNow(A) in transition.actions
    assert not any(isinstance(a, ClearPool) for a in transition.actions)
    stale = ApplicationError(
        A, ErrorKind.COMMAND, reply={"ok": 0, "code": 10107, "topologyVersion": TV}
    )
    assert transition.state.on_application_error(stale).actions == ()


def test_shutdown_error_clears_pool() -> None:
    state = (
        opened()
        .on_check_succeeded(A, primary("a:27017", "b:27017"), round_trip_time=0.001, now=1)
        .state
    )
    transition = state.on_application_error(
        ApplicationError(A, ErrorKind.COMMAND, max_wire_version=21, reply={"ok": 0, "code": 91})
    )
    assert ClearPool(A, 1) in transition.actions


def test_network_errors_by_phase() -> None:
    state = (
        opened()
        .on_check_succeeded(A, primary("a:27017", "b:27017"), round_trip_time=0.001, now=1)
        .state
    )
    unchanged = [
        ApplicationError(A, ErrorKind.TIMEOUT),  # a slow operation
        ApplicationError(A, ErrorKind.TIMEOUT, HandshakePhase.BEFORE),  # connecting / hello
        ApplicationError(A, ErrorKind.NETWORK, HandshakePhase.BEFORE),
        ApplicationError(A, ErrorKind.NETWORK, labels=frozenset({"SystemOverloadedError"})),
    ]
    for error in unchanged:
        assert state.on_application_error(error).state is state, error
    for error in (
        ApplicationError(A, ErrorKind.NETWORK),
        ApplicationError(A, ErrorKind.TIMEOUT, HandshakePhase.AUTHENTICATION),
        ApplicationError(A, ErrorKind.NETWORK, HandshakePhase.AUTHENTICATION),
    ):
        transition = state.on_application_error(error)
        assert transition.state.description.servers[A].server_type is ServerType.Unknown, error
        assert ClearPool(A, 1) in transition.actions
        assert not any(isinstance(a, CheckNow) for a in transition.actions)


def test_overloaded_handshake_failure_is_ignored() -> None:
    state = (
        opened()
        .on_check_succeeded(A, primary("a:27017", "b:27017"), round_trip_time=0.001, now=1)
        .state
    )
    reply = {"ok": 0, "code": 462, "errorLabels": ["SystemOverloadedError", "RetryableError"]}
    error = ApplicationError(A, ErrorKind.COMMAND, HandshakePhase.BEFORE, reply=reply)
    assert state.on_application_error(error).state is state


def test_load_balancer_stays_known_and_only_its_pool_is_cleared() -> None:
    settings = TopologySettings.from_uri("mongodb://a/?loadBalanced=true")
    state = TopologyState.open(settings, "t").state
    transition = state.on_application_error(ApplicationError(A, ErrorKind.NETWORK))
    assert transition.state.description.servers[A].server_type is ServerType.LoadBalancer
    assert transition.actions == (ClearPool(A, 1),)
    shutdown = ApplicationError(A, ErrorKind.COMMAND, reply={"ok": 0, "code": 91})
    after = transition.state.on_application_error(shutdown)
    assert after.actions == (ClearPool(A, 2),)


def test_handshake_command_failure_marks_unknown() -> None:
    state = (
        opened()
        .on_check_succeeded(A, primary("a:27017", "b:27017"), round_trip_time=0.001, now=1)
        .state
    )
    error = ApplicationError(
        A, ErrorKind.COMMAND, HandshakePhase.BEFORE, reply={"ok": 0, "code": 18, "errmsg": "auth"}
    )
    transition = state.on_application_error(error)
    assert transition.state.description.servers[A].server_type is ServerType.Unknown
    assert ClearPool(A, 1) in transition.actions


def test_error_from_an_old_pool_generation_is_ignored() -> None:
    state = opened().on_check_failed(A, "down", now=1).state
    assert state.pool_generation(A) == 1
    old = ApplicationError(A, ErrorKind.NETWORK, generation=0)
    assert state.on_application_error(old).state is state


def test_secondary_naming_an_unknown_primary_asks_for_a_check() -> None:
    reply = {
        "ok": 1,
        "setName": "rs",
        "secondary": True,
        "hosts": ["a:27017", "b:27017"],
        "primary": "b:27017",
        "maxWireVersion": 21,
    }
    transition = opened().on_check_succeeded(A, reply, round_trip_time=0.001, now=1)
    assert CheckNow(B) in transition.actions
    assert transition.state.description.servers[B].server_type is ServerType.PossiblePrimary


def test_close_stops_every_monitor() -> None:
    transition = opened().close()
    assert set(transition.actions) == {StopMonitoring(A), StopMonitoring(B)}


def test_a_server_removed_by_its_own_reply_is_reported_as_it_answered() -> None:
    reply = primary("a:27017", "b:27017", setName="other")
    transition = opened().on_check_succeeded(A, reply, round_trip_time=0.001, now=1)
    changed, closed, topology = transition.events
    assert isinstance(changed, ServerDescriptionChanged)
    assert changed.new.server_type is ServerType.RSPrimary
    assert changed.new.set_name == "other"
    assert closed == ServerClosed("t", A)
    assert isinstance(topology, TopologyDescriptionChanged)
    assert A not in transition.state.description.servers


def test_description_queries_callers_use() -> None:
    state = (
        opened()
        .on_check_succeeded(A, primary("a:27017", "b:27017"), round_trip_time=0.001, now=1)
        .state
    )
    description = state.description
    assert description.has_writable_server
    assert description.has_readable_server
    assert [s.address for s in description.server_descriptions()] == [A, B]
    assert [s.address for s in description.known_servers] == [A]
    assert ServerType.RSPrimary.is_replica_set_member
    assert not ServerType.Mongos.is_replica_set_member

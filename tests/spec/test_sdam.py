"""Runs every Server Discovery and Monitoring spec file against the core's state machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from resilient_topology.address import Address
from resilient_topology.events import (
    SdamEvent,
    ServerClosed,
    ServerDescriptionChanged,
    ServerOpening,
    TopologyDescriptionChanged,
    TopologyOpening,
)
from resilient_topology.sdam import (
    ApplicationError,
    ErrorKind,
    HandshakePhase,
    TopologyState,
    Transition,
)
from resilient_topology.server import ServerDescription, TopologyVersion
from resilient_topology.settings import TopologySettings
from resilient_topology.topology import TopologyDescription

from ._specdir import check_keys, load, spec_params

SDAM = "server-discovery-and-monitoring"
TOPOLOGY_ID = "42"


@pytest.mark.parametrize("path", spec_params(SDAM))
def test_sdam_spec(path: Path) -> None:
    scenario = load(path)
    check_keys(path.name, scenario, {"description", "uri", "phases"})
    settings = TopologySettings.from_uri(scenario["uri"])
    opened = TopologyState.open(settings, TOPOLOGY_ID)
    state = opened.state
    pending_events: list[SdamEvent] = list(opened.events)
    for index, phase in enumerate(scenario["phases"]):
        where = f"{path.name} phase {index} ({phase.get('description', '')})"
        check_keys(where, phase, {"description", "responses", "applicationErrors", "outcome"})
        for address_text, reply in phase.get("responses", []):
            address = Address.of(address_text)
            if reply:
                transition = state.on_check_succeeded(
                    address, reply, round_trip_time=None, now=float(index)
                )
            else:
                transition = state.on_check_failed(address, "network error", now=float(index))
            state = _follow(transition, pending_events)
        for raw in phase.get("applicationErrors", []):
            state = _follow(
                state.on_application_error(_application_error(raw, where)), pending_events
            )
        outcome = phase["outcome"]
        if "events" in outcome:
            check_keys(where, outcome, {"events"})
            _compare_events(where, outcome["events"], pending_events)
        else:
            _compare_outcome(where, outcome, state)
        pending_events.clear()


def _follow(transition: Transition, events: list[SdamEvent]) -> TopologyState:
    events.extend(transition.events)
    return transition.state


def _application_error(raw: dict[str, Any], where: str) -> ApplicationError:
    check_keys(where, raw, {"address", "generation", "maxWireVersion", "when", "type", "response"})
    return ApplicationError(
        address=Address.of(raw["address"]),
        kind=ErrorKind(raw["type"]),
        phase=HandshakePhase(raw["when"]),
        generation=raw.get("generation"),
        max_wire_version=raw.get("maxWireVersion"),
        reply=raw.get("response", {}),
    )


def _compare_outcome(where: str, outcome: dict[str, Any], state: TopologyState) -> None:
    check_keys(
        where,
        outcome,
        {
            "servers",
            "topologyType",
            "setName",
            "logicalSessionTimeoutMinutes",
            "maxSetVersion",
            "maxElectionId",
            "compatible",
        },
    )
    description = state.description
    expected_servers = {Address.of(a): s for a, s in outcome["servers"].items()}
    assert set(description.servers) == set(expected_servers), where
    for address, expected in expected_servers.items():
        _compare_server(f"{where} server {address}", expected, description.servers[address], state)
    assert description.topology_type.value == outcome["topologyType"], where
    if "setName" in outcome:
        assert description.set_name == outcome["setName"], where
    if "logicalSessionTimeoutMinutes" in outcome:
        expected_timeout = outcome["logicalSessionTimeoutMinutes"]
        assert description.logical_session_timeout_minutes == expected_timeout, where
    if "maxSetVersion" in outcome:
        assert description.max_set_version == outcome["maxSetVersion"], where
    if "maxElectionId" in outcome:
        assert description.max_election_id == outcome["maxElectionId"], where
    if "compatible" in outcome:
        assert description.is_compatible == outcome["compatible"], where


def _compare_server(
    where: str, expected: dict[str, Any], actual: ServerDescription, state: TopologyState
) -> None:
    check_keys(
        where,
        expected,
        {
            "type",
            "setName",
            "setVersion",
            "electionId",
            "topologyVersion",
            "pool",
            "logicalSessionTimeoutMinutes",
            "minWireVersion",
            "maxWireVersion",
            "error",
        },
    )
    assert actual.server_type.value == expected["type"], where
    simple = {
        "setName": actual.set_name,
        "setVersion": actual.set_version,
        "electionId": actual.election_id,
        "logicalSessionTimeoutMinutes": actual.logical_session_timeout_minutes,
        "minWireVersion": actual.min_wire_version,
        "maxWireVersion": actual.max_wire_version,
        "error": actual.error,
    }
    for key, value in simple.items():
        if key in expected:
            assert value == expected[key], f"{where}: {key}"
    if "topologyVersion" in expected:
        assert actual.topology_version == _topology_version(expected["topologyVersion"]), where
    if "pool" in expected:
        check_keys(where, expected["pool"], {"generation"})
        assert state.pool_generation(actual.address) == expected["pool"]["generation"], where


def _topology_version(raw: dict[str, Any] | None) -> TopologyVersion | None:
    if raw is None:
        return None
    return TopologyVersion(raw["processId"], raw["counter"])


# --- monitoring events --------------------------------------------------------------------------


def _compare_events(where: str, expected: list[dict[str, Any]], actual: list[SdamEvent]) -> None:
    rendered = [_render_event(e) for e in actual]
    assert len(rendered) == len(expected), f"{where}: events {rendered}"
    for number, (want, got) in enumerate(zip(expected, rendered, strict=True)):
        _assert_subset(f"{where} event {number}", want, got)


def _assert_subset(where: str, want: Any, got: Any) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{where}: expected a document, got {got!r}"
        unknown = set(want) - set(got)
        assert not unknown, f"{where}: the runner cannot interpret keys {sorted(unknown)}"
        for key, value in want.items():
            _assert_subset(f"{where}.{key}", value, got[key])
    elif isinstance(want, list) and want and isinstance(want[0], dict):
        by_address = {item.get("address"): item for item in got}
        assert len(want) == len(got), f"{where}: {got!r}"
        for item in want:
            _assert_subset(
                f"{where}[{item.get('address')}]", item, by_address.get(item.get("address"))
            )
    elif isinstance(want, list):
        assert sorted(want) == sorted(got), f"{where}: {got!r}"
    else:
        assert want == got, f"{where}: expected {want!r}, got {got!r}"


def _render_event(event: SdamEvent) -> dict[str, Any]:
    if isinstance(event, TopologyOpening):
        return {"topology_opening_event": {"topologyId": event.topology_id}}
    if isinstance(event, TopologyDescriptionChanged):
        return {
            "topology_description_changed_event": {
                "topologyId": event.topology_id,
                "previousDescription": _render_topology(event.previous),
                "newDescription": _render_topology(event.new),
            }
        }
    if isinstance(event, ServerOpening):
        body = {"topologyId": event.topology_id, "address": str(event.address)}
        return {"server_opening_event": body}
    if isinstance(event, ServerClosed):
        return {
            "server_closed_event": {"topologyId": event.topology_id, "address": str(event.address)}
        }
    if isinstance(event, ServerDescriptionChanged):
        return {
            "server_description_changed_event": {
                "topologyId": event.topology_id,
                "address": str(event.address),
                "previousDescription": _render_server(event.previous),
                "newDescription": _render_server(event.new),
            }
        }
    return {type(event).__name__: {}}


def _render_topology(description: TopologyDescription) -> dict[str, Any]:
    return {
        "topologyType": description.topology_type.value,
        "setName": description.set_name,
        "servers": [_render_server(s) for s in description.servers.values()],
    }


def _render_server(server: ServerDescription) -> dict[str, Any]:
    return {
        "address": str(server.address),
        "arbiters": sorted(str(a) for a in server.arbiters),
        "hosts": sorted(str(a) for a in server.hosts),
        "passives": sorted(str(a) for a in server.passives),
        "primary": None if server.primary is None else str(server.primary),
        "setName": server.set_name,
        "type": server.server_type.value,
    }

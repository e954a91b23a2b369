"""Runs every Server Selection and Max Staleness spec file against the core's selectors.

Spec files give durations in milliseconds; the core works in seconds, so values are converted
here, on the way in and on the way out.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from resilient_topology._types import ServerType, TopologyType
from resilient_topology.address import Address
from resilient_topology.errors import ConfigurationError
from resilient_topology.heartbeat import moving_average_rtt
from resilient_topology.selection import (
    Operation,
    ReadMode,
    ReadPreference,
    choose_in_window,
    select_servers,
    suitable_servers,
)
from resilient_topology.server import ServerDescription
from resilient_topology.settings import TopologySettings
from resilient_topology.topology import TopologyDescription

from ._specdir import check_keys, load, spec_params

SELECTION = "server-selection"
MAX_STALENESS = "max-staleness"
NOW = 1_000.0  # the spec's rules never read the clock; any time will do
SEED = 20_240_601
# A description needs settings, and settings need a seed; an empty topology gets this one.
PLACEHOLDER_SEED = Address("placeholder.invalid", 27017)

SCENARIO_KEYS = {
    "topology_description",
    "operation",
    "read_preference",
    "deprioritized_servers",
    "heartbeatFrequencyMS",
    "suitable_servers",
    "in_latency_window",
    "error",
}
SERVER_KEYS = {
    "address",
    "type",
    "avg_rtt_ms",
    "tags",
    "maxWireVersion",
    "lastUpdateTime",
    "lastWrite",
}


@pytest.mark.parametrize("path", spec_params(SELECTION))
def test_server_selection_spec(path: Path) -> None:
    folder = path.parent.name
    if folder == "rtt":
        _run_rtt(path)
    elif folder == "in_window":
        _run_in_window(path)
    else:
        _run_selection(path)


@pytest.mark.parametrize("path", spec_params(MAX_STALENESS))
def test_max_staleness_spec(path: Path) -> None:
    _run_selection(path)


# --- the three kinds of file ---------------------------------------------------------------------


def _run_rtt(path: Path) -> None:
    scenario = load(path)
    check_keys(path.name, scenario, {"avg_rtt_ms", "new_rtt_ms", "new_avg_rtt"})
    previous = scenario["avg_rtt_ms"]
    average = moving_average_rtt(
        None if previous == "NULL" else _seconds(previous), _seconds(scenario["new_rtt_ms"])
    )
    assert average * 1000 == pytest.approx(scenario["new_avg_rtt"], abs=1e-9), path.name


def _run_selection(path: Path) -> None:
    scenario = load(path)
    where = path.name
    check_keys(where, scenario, SCENARIO_KEYS)
    description = _topology(where, scenario["topology_description"], scenario)
    deprioritized = [
        _server(where, raw).address for raw in scenario.get("deprioritized_servers", [])
    ]
    expects_error = scenario.get("error", False)
    if expects_error:
        assert "suitable_servers" not in scenario, f"{where}: both an error and servers expected"
        assert "in_latency_window" not in scenario, f"{where}: both an error and servers expected"
        with pytest.raises(ConfigurationError):
            _parse_and_select(where, scenario, description, deprioritized)
        return
    if "in_latency_window" not in scenario:
        pytest.fail(f"{where}: neither an error nor in_latency_window is expected")
    operation = _operation(where, scenario)
    if "suitable_servers" in scenario:
        suitable = suitable_servers(description, operation, now=NOW, deprioritized=deprioritized)
        _assert_same_servers(f"{where}: suitable", suitable, scenario["suitable_servers"])
    window = select_servers(description, operation, now=NOW, deprioritized=deprioritized)
    _assert_same_servers(f"{where}: in latency window", window, scenario["in_latency_window"])


def _parse_and_select(
    where: str,
    scenario: dict[str, Any],
    description: TopologyDescription,
    deprioritized: list[Address],
) -> None:
    """Both steps, since a spec error may come from the read preference or from selection."""
    operation = _operation(where, scenario)
    suitable_servers(description, operation, now=NOW, deprioritized=deprioritized)


def _run_in_window(path: Path) -> None:
    scenario = load(path)
    where = path.name
    check_keys(
        where,
        scenario,
        {"description", "topology_description", "mocked_topology_state", "iterations", "outcome"},
    )
    description = _topology(where, scenario["topology_description"], scenario)
    counts: dict[Address, int] = {}
    for entry in scenario["mocked_topology_state"]:
        check_keys(where, entry, {"address", "operation_count"})
        counts[Address.of(entry["address"])] = entry["operation_count"]
    window = select_servers(description, ReadPreference(ReadMode.NEAREST), now=NOW)
    rng = random.Random(SEED)
    iterations = scenario["iterations"]
    chosen: Counter[Address] = Counter()
    for _ in range(iterations):
        server = choose_in_window(window, counts, rng.random)
        assert server is not None, where
        chosen[server.address] += 1
    outcome = scenario["outcome"]
    check_keys(where, outcome, {"tolerance", "expected_frequencies"})
    expected = {Address.of(a): f for a, f in outcome["expected_frequencies"].items()}
    assert set(chosen) <= set(expected), f"{where}: chose {sorted(map(str, chosen))}"
    for address, frequency in expected.items():
        observed = chosen[address] / iterations
        if frequency in (0, 1):
            assert observed == frequency, f"{where}: {address} chosen {observed:.3f}"
        else:
            tolerance = outcome["tolerance"]
            assert abs(observed - frequency) <= tolerance, (
                f"{where}: {address} chosen {observed:.3f}"
            )


# --- building core values from spec documents ----------------------------------------------------


def _topology(where: str, raw: dict[str, Any], scenario: dict[str, Any]) -> TopologyDescription:
    check_keys(where, raw, {"type", "servers"})
    servers = {s.address: s for s in (_server(where, item) for item in raw["servers"])}
    options: dict[str, Any] = {}
    if "heartbeatFrequencyMS" in scenario:
        options["heartbeat_frequency"] = _seconds(scenario["heartbeatFrequencyMS"])
    settings = TopologySettings(tuple(servers) or (PLACEHOLDER_SEED,), **options)
    return TopologyDescription(
        topology_type=TopologyType(raw["type"]),
        servers=MappingProxyType(servers),
        settings=settings,
    )


def _server(where: str, raw: dict[str, Any]) -> ServerDescription:
    check_keys(where, raw, SERVER_KEYS)
    last_write = raw.get("lastWrite")
    last_write_date = None
    if last_write is not None:
        check_keys(where, last_write, {"lastWriteDate"})
        last_write_date = _seconds(last_write["lastWriteDate"])
    return ServerDescription(
        address=Address.of(raw["address"]),
        server_type=ServerType(raw["type"]),
        round_trip_time=_optional_seconds(raw.get("avg_rtt_ms")),
        tags=dict(raw.get("tags", {})),
        max_wire_version=raw.get("maxWireVersion"),
        last_update_time=_optional_seconds(raw.get("lastUpdateTime")),
        last_write_date=last_write_date,
    )


def _operation(where: str, scenario: dict[str, Any]) -> Operation:
    """The read preference, parsed even for a write (which ignores it), or ``"write"``."""
    raw = scenario.get("read_preference", {})
    check_keys(where, raw, {"mode", "tag_sets", "maxStalenessSeconds"})
    read_preference = ReadPreference.from_document(raw)
    kind = scenario.get("operation", "read")
    if kind not in ("read", "write"):
        pytest.fail(f"{where}: the runner cannot interpret operation {kind!r}")
    return "write" if kind == "write" else read_preference


def _assert_same_servers(
    where: str, actual: tuple[ServerDescription, ...], expected: list[dict[str, Any]]
) -> None:
    want = sorted((s.address, s.server_type) for s in (_server(where, raw) for raw in expected))
    got = sorted((s.address, s.server_type) for s in actual)
    assert got == want, where


def _seconds(milliseconds: float) -> float:
    return milliseconds / 1000


def _optional_seconds(milliseconds: float | None) -> float | None:
    return None if milliseconds is None else _seconds(milliseconds)

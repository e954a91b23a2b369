"""Runs our own EventStore gossip scenarios (tests/spec/gossip/*.json) against the gossip reducer.

The files follow the SDAM spec's shape: ``seeds``, then ``phases`` whose ``responses`` are
``[source, reply]`` pairs (a gossip document, its raw JSON text, or ``{}`` for a failed fetch)
and whose ``outcome`` describes the cluster view afterwards. Unlike the MongoDB spec files they
are committed and always run. Selector outcomes are checked over many seeded random sources: a
string means always that address, a list means exactly those addresses, ``null`` means none.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from resilient_topology.address import Address
from resilient_topology.eventstore import (
    EVENTSTORE_HTTP_PORT,
    EventStoreClusterSettings,
    apply_gossip_reply,
    gossip_failed,
    leader,
    prefer_follower,
    prefer_leader,
    prefer_read_only_replica,
    select_random,
)
from resilient_topology.server import ServerDescription
from resilient_topology.topology import TopologyDescription

from ._specdir import check_keys, load

GOSSIP_DIR = Path(__file__).resolve().parent / "gossip"
FETCH_FAILED = "gossip fetch failed: connection refused"
RANDOM_SEEDS = range(64)
SELECTORS = {
    "prefer_leader": prefer_leader,
    "prefer_follower": prefer_follower,
    "prefer_read_only_replica": prefer_read_only_replica,
    "select_random": select_random,
}
OUTCOME_KEYS = {"servers", "topologyType", "leader", "maxEpoch", "withClones", *SELECTORS}
SERVER_KEYS = {"type", "state", "tcp", "secureTcp", "http", "tags", "epoch", "error"}


def _scenario_params() -> list[Any]:
    files = sorted(GOSSIP_DIR.rglob("*.json"))
    return [pytest.param(f, id=f.relative_to(GOSSIP_DIR).as_posix()) for f in files]


def test_scenarios_are_present() -> None:
    # Committed files always run; an empty folder would make the runner pass vacuously.
    assert len(_scenario_params()) >= 12


@pytest.mark.parametrize("path", _scenario_params())
def test_gossip_scenario(path: Path) -> None:
    scenario = load(path)
    check_keys(path.name, scenario, {"description", "seeds", "phases"})
    description = EventStoreClusterSettings.of(scenario["seeds"]).initial_description()
    for index, phase in enumerate(scenario["phases"]):
        where = f"{path.name} phase {index} ({phase.get('description', '')})"
        check_keys(where, phase, {"description", "responses", "outcome"})
        for source_text, reply in phase["responses"]:
            source = _address(source_text)
            if reply == {}:
                description = gossip_failed(description, source, FETCH_FAILED, now=float(index))
            else:
                description = apply_gossip_reply(description, source, reply, now=float(index))
        _compare_outcome(where, phase["outcome"], description)


def _address(text: str) -> Address:
    return Address.of(text, EVENTSTORE_HTTP_PORT)


def _text(address: Address | None) -> str | None:
    return None if address is None else str(address)


def _compare_outcome(where: str, outcome: dict[str, Any], description: TopologyDescription) -> None:
    check_keys(where, outcome, OUTCOME_KEYS)
    expected_servers = {_address(a): s for a, s in outcome["servers"].items()}
    actual = sorted(map(str, description.servers))
    assert set(description.servers) == set(expected_servers), f"{where}: servers {actual}"
    for address, expected in expected_servers.items():
        _compare_server(f"{where} server {address}", expected, description.servers[address])
    assert description.topology_type.value == outcome["topologyType"], where
    if "leader" in outcome:
        current = leader(description)
        assert _text(None if current is None else current.address) == outcome["leader"], where
    if "maxEpoch" in outcome:
        assert description.max_set_version == outcome["maxEpoch"], f"{where}: maxEpoch"
    servers = list(description.servers.values())
    _compare_selection(where, outcome, servers, include_clones=False)
    if "withClones" in outcome:
        clones = outcome["withClones"]
        check_keys(f"{where} withClones", clones, set(SELECTORS))
        _compare_selection(f"{where} withClones", clones, servers, include_clones=True)


def _compare_server(where: str, expected: dict[str, Any], actual: ServerDescription) -> None:
    check_keys(where, expected, SERVER_KEYS)
    assert actual.server_type.value == expected["type"], f"{where}: {actual.error}"
    if "state" in expected:
        assert actual.tags.get("state") == expected["state"], f"{where}: state"
    for key, role in (("tcp", "tcp"), ("secureTcp", "secure_tcp"), ("http", "http")):
        if key in expected:
            assert _text(actual.endpoints.get(role)) == expected[key], f"{where}: {key}"
    if "tags" in expected:
        assert dict(actual.tags) == expected["tags"], f"{where}: tags"
    if "epoch" in expected:
        assert actual.set_version == expected["epoch"], f"{where}: epoch"
    if "error" in expected:
        if expected["error"] is None:
            assert actual.error is None, f"{where}: unexpected error {actual.error!r}"
        else:
            assert actual.error is not None, f"{where}: expected an error"
            assert expected["error"] in actual.error, f"{where}: error {actual.error!r}"


def _compare_selection(
    where: str, expected: dict[str, Any], servers: list[ServerDescription], *, include_clones: bool
) -> None:
    for name, selector in SELECTORS.items():
        if name not in expected:
            continue
        picked = {
            _text(
                None
                if (s := selector(servers, rng=rng, include_clones=include_clones)) is None
                else s.address
            )
            for rng in (random.Random(seed) for seed in RANDOM_SEEDS)
        }
        want = expected[name]
        wanted = set(want) if isinstance(want, list) else {want}
        assert picked == wanted, f"{where}: {name} picked {sorted(map(str, picked))}"

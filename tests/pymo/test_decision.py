"""The fail-fast rules as pure functions, fed with pymongo's own heartbeat events."""

from __future__ import annotations

from typing import Any

import pytest
from pymo import SERVER_STATE_SELECTORS, SERVER_TYPE_SELECTORS
from pymo.decision import decided, failure, judge
from pymo.errors import PymoConfigurationError, ServerSelectionTryOnceTimeoutError
from pymo.selectors import Selectors
from pymongo import monitoring
from pymongo.hello import Hello

from resilient_topology import Address, ServerType, TopologySettings
from resilient_topology.mongo import PymongoHeartbeatAdapter

A, B, C = (Address("127.0.0.1", port) for port in (27017, 27018, 27019))
HOSTS = [str(A), str(B), str(C)]
WRITABLE = Selectors.of(SERVER_STATE_SELECTORS.Writable)
READABLE = Selectors.of(SERVER_STATE_SELECTORS.Readable)


def reply(kind: str, me: Address) -> dict[str, Any]:
    base: dict[str, Any] = {"ok": 1, "minWireVersion": 0, "maxWireVersion": 21, "me": str(me)}
    member = {**base, "setName": "rs0", "hosts": HOSTS}
    documents: dict[str, dict[str, Any]] = {
        "RSPrimary": {**member, "isWritablePrimary": True},
        "RSSecondary": {**member, "isWritablePrimary": False, "secondary": True},
        "RSArbiter": {**member, "isWritablePrimary": False, "arbiterOnly": True},
        "RSOther": {**member, "isWritablePrimary": False, "hidden": True},
        "RSGhost": {**base, "isWritablePrimary": False, "isreplicaset": True},
        "Standalone": {**base, "isWritablePrimary": True},
        "Mongos": {**base, "isWritablePrimary": True, "msg": "isdbgrid"},
    }
    return documents[kind]


def adapter(*seeds: Address, replica_set: str | None = None) -> PymongoHeartbeatAdapter:
    return PymongoHeartbeatAdapter(TopologySettings(seeds, replica_set_name=replica_set))


def answer(target: PymongoHeartbeatAdapter, address: Address, kind: str) -> None:
    hello = Hello(reply(kind, address))
    event = monitoring.ServerHeartbeatSucceededEvent(0.002, hello, address.as_tuple(), False)
    target.succeeded(event)


def refuse(target: PymongoHeartbeatAdapter, address: Address) -> None:
    error = ConnectionRefusedError(111, "Connection refused")
    event = monitoring.ServerHeartbeatFailedEvent(0.001, error, address.as_tuple(), False)
    target.failed(event)


def test_without_selectors_every_seed_must_answer_without_error() -> None:
    topology = adapter(A, B)
    answer(topology, A, "Standalone")
    assert not judge(topology.snapshot, Selectors()).decided
    answer(topology, B, "Standalone")
    verdict = judge(topology.snapshot, Selectors())
    assert (verdict.decided, verdict.ok, verdict.matched) == (True, True, A)


def test_without_selectors_one_error_decides_failure_at_once() -> None:
    topology = adapter(A, B)
    refuse(topology, A)
    verdict = judge(topology.snapshot, Selectors())
    assert (verdict.decided, verdict.ok) == (True, False)
    assert verdict.seeds[B].status == "pending"


def test_with_selectors_one_matching_seed_is_enough_even_with_others_pending() -> None:
    topology = adapter(A, B, C, replica_set="rs0")
    answer(topology, B, "RSPrimary")
    verdict = judge(topology.snapshot, WRITABLE)
    assert (verdict.decided, verdict.ok, verdict.matched) == (True, True, B)


def test_with_selectors_failure_waits_until_every_seed_answered() -> None:
    topology = adapter(A, B, replica_set="rs0")
    answer(topology, A, "RSSecondary")
    assert not decided(WRITABLE)(topology.snapshot)
    refuse(topology, B)
    verdict = judge(topology.snapshot, WRITABLE)
    assert (verdict.decided, verdict.ok) == (True, False)


def test_one_seed_down_among_several_is_fine_with_selectors() -> None:
    topology = adapter(A, B, replica_set="rs0")
    refuse(topology, A)
    answer(topology, B, "RSSecondary")
    assert judge(topology.snapshot, READABLE).ok
    assert not judge(topology.snapshot, Selectors()).ok


@pytest.mark.parametrize(
    ("kind", "writable", "readable"),
    [
        ("RSPrimary", True, True),
        ("RSSecondary", False, True),
        ("RSArbiter", False, False),
        ("RSOther", False, False),
        ("RSGhost", False, False),
        ("Standalone", True, True),
        ("Mongos", True, True),
    ],
)
def test_state_selectors_follow_the_reply_properties(
    kind: str, writable: bool, readable: bool
) -> None:
    topology = adapter(A)
    answer(topology, A, kind)
    assert judge(topology.snapshot, WRITABLE).ok is writable
    assert judge(topology.snapshot, READABLE).ok is readable
    assert judge(topology.snapshot, WRITABLE).decided


@pytest.mark.parametrize(
    "kind", ["Mongos", "RSPrimary", "RSSecondary", "RSArbiter", "RSOther", "RSGhost", "Standalone"]
)
def test_each_type_selector_matches_its_type_only(kind: str) -> None:
    topology = adapter(A)
    answer(topology, A, kind)
    for name in SERVER_TYPE_SELECTORS._fields:
        selector = getattr(SERVER_TYPE_SELECTORS, name)
        assert judge(topology.snapshot, Selectors.of(type_selectors=[selector])).ok is (
            name == kind
        )


def test_unknown_type_selector_never_matches_a_refused_seed() -> None:
    topology = adapter(A)
    refuse(topology, A)
    verdict = judge(topology.snapshot, Selectors.of(type_selectors=SERVER_TYPE_SELECTORS.Unknown))
    assert (verdict.decided, verdict.ok) == (True, False)


def test_heartbeats_of_non_seeds_are_ignored() -> None:
    topology = adapter(A, replica_set="rs0")
    answer(topology, A, "RSSecondary")
    answer(topology, B, "RSPrimary")  # discovered through A, not a seed
    rs_primary = Selectors.of(type_selectors=SERVER_TYPE_SELECTORS.RSPrimary)
    verdict = judge(topology.snapshot, rs_primary)
    assert (verdict.decided, verdict.ok) == (True, False)
    assert list(verdict.seeds) == [A]
    assert not judge(topology.snapshot, WRITABLE).ok


def test_selectors_accept_one_or_many_and_refuse_nonsense() -> None:
    assert Selectors.of(0) == Selectors.of([SERVER_STATE_SELECTORS.Writable]) == WRITABLE
    both = Selectors.of(type_selectors=(ServerType.RSPrimary, "RSSecondary"))
    assert both.types == {"RSPrimary", "RSSecondary"}
    assert Selectors.of(None, None).empty
    for bad in ({"state_selectors": 7}, {"type_selectors": "Primary"}, {"state_selectors": 1.5}):
        with pytest.raises(PymoConfigurationError):
            Selectors.of(**bad)


def test_failure_names_every_seed_with_its_type_or_error() -> None:
    topology = adapter(A, B, C, replica_set="rs0")
    answer(topology, A, "RSSecondary")
    refuse(topology, B)
    error = failure(judge(topology.snapshot, WRITABLE), WRITABLE, 5.0)
    assert isinstance(error, ServerSelectionTryOnceTimeoutError)
    text = str(error)
    assert f"{A}: RSSecondary" in text
    assert f"{B}: error:" in text
    assert "Connection refused" in text
    assert f"{C}: no answer" in text
    assert "within 5 s" in text
    assert error.seeds[B].status == "failed"

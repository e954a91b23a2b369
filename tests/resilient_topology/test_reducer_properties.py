"""Invariants of the SDAM reducer under random sequences of replies and errors."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_topology import ServerType
from resilient_topology.address import Address
from resilient_topology.sdam import ApplicationError, ErrorKind, TopologyState
from resilient_topology.settings import TopologySettings

HOSTS = ["a:27017", "b:27017", "c:27017"]
PROCESS = [b"\x00" * 11 + bytes([n]) for n in range(2)]


def oid(n: int) -> bytes:
    return n.to_bytes(12, "big")


replies = st.fixed_dictionaries(
    {
        "ok": st.just(1),
        "setName": st.sampled_from(["rs", "rs", "rs", "other"]),
        "hosts": st.lists(st.sampled_from(HOSTS), min_size=1, max_size=3, unique=True),
        "maxWireVersion": st.sampled_from([6, 17, 21]),
        "minWireVersion": st.just(0),
        "isWritablePrimary": st.booleans(),
        "secondary": st.booleans(),
        "topologyVersion": st.fixed_dictionaries(
            {"processId": st.sampled_from(PROCESS), "counter": st.integers(0, 4)}
        ),
    },
    optional={
        "setVersion": st.integers(0, 3),
        "electionId": st.integers(0, 3).map(oid),
        "primary": st.sampled_from(HOSTS),
    },
)
steps = st.lists(
    st.tuples(st.sampled_from(HOSTS), st.one_of(replies, st.just({}), st.just("error"))),
    max_size=25,
)
uris = st.sampled_from(["mongodb://a,b/?replicaSet=rs", "mongodb://a,b,c", "mongodb://a"])


def run(uri: str, sequence: list[tuple[str, Any]]):
    state = TopologyState.open(TopologySettings.from_uri(uri), "p").state
    for host, reply in sequence:
        address = Address.of(host)
        before = state
        if reply == "error":
            error = ApplicationError(address, ErrorKind.COMMAND, reply={"ok": 0, "code": 10107})
            state = state.on_application_error(error).state
        elif reply:
            state = state.on_check_succeeded(address, reply, round_trip_time=0.001, now=1.0).state
        else:
            state = state.on_check_failed(address, "network", now=1.0).state
        yield host, reply, before, state


@settings(max_examples=300, deadline=None)
@given(uris, steps)
def test_never_two_primaries(uri: str, sequence: list[tuple[str, Any]]) -> None:
    for _, _, _, state in run(uri, sequence):
        primaries = [
            s for s in state.description.servers.values() if s.server_type is ServerType.RSPrimary
        ]
        assert len(primaries) <= 1


@settings(max_examples=300, deadline=None)
@given(uris, steps)
def test_election_order_never_goes_back_for_modern_servers(
    uri: str, sequence: list[tuple[str, Any]]
) -> None:
    modern = [
        (h, r) for h, r in sequence if not isinstance(r, dict) or r.get("maxWireVersion") != 6
    ]
    best: tuple[bool, bytes, bool, int] | None = None
    for _, _, _, state in run(uri, modern):
        description = state.description
        key = (
            description.max_election_id is not None,
            description.max_election_id or b"",
            description.max_set_version is not None,
            description.max_set_version or 0,
        )
        if best is not None:
            assert key >= best
        best = key
        primary = description.primary
        if primary is not None and primary.max_wire_version and primary.max_wire_version >= 17:
            assert (primary.election_id, primary.set_version) == (
                description.max_election_id,
                description.max_set_version,
            )


@settings(max_examples=300, deadline=None)
@given(uris, steps)
def test_stale_topology_version_never_regresses_a_server(
    uri: str, sequence: list[tuple[str, Any]]
) -> None:
    for host, reply, before, after in run(uri, sequence):
        if not isinstance(reply, dict) or not reply:
            continue
        current = before.description.servers.get(Address.of(host))
        if current is None or current.topology_version is None:
            continue
        incoming = reply["topologyVersion"]
        same_process = incoming["processId"] == current.topology_version.process_id
        if same_process and incoming["counter"] < current.topology_version.counter:
            assert after.description == before.description

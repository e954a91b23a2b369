"""Hypothesis properties of gossip parsing and the gossip reducer."""

from __future__ import annotations

import contextlib
import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_topology._types import ServerType, TopologyType
from resilient_topology.errors import InvalidGossip
from resilient_topology.eventstore import (
    V5_STATE_NAMES,
    V20_STATE_NAMES,
    Gossip,
    NodeState,
    best_leader,
    gossip_failed,
    leader,
    parse_gossip,
    parse_gossip_json,
    prefer_follower,
    prefer_leader,
    prefer_read_only_replica,
    reduce_gossip,
    select_random,
)

from .test_eventstore import addr, cluster, member

# --- properties ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
hosts_or_junk = (
    st.sampled_from(
        ["10.0.0.1", "node1.esdb", "::1", "[::1]", "fe80::1%eth0", "", "bad host", "a/b", "A" * 300]
    )
    | json_values
)
ports_or_junk = st.integers(-3, 70_000) | st.sampled_from([0, 1113, 2113, 65535]) | json_values
state_names = st.sampled_from([*V5_STATE_NAMES, *V20_STATE_NAMES, "Banana", ""]) | json_values
MEMBER_FIELDS = {
    "state": state_names,
    "isAlive": st.booleans() | json_values,
    "externalTcpIp": hosts_or_junk,
    "externalTcpPort": ports_or_junk,
    "externalSecureTcpPort": ports_or_junk,
    "externalHttpIp": hosts_or_junk,
    "externalHttpPort": ports_or_junk,
    "httpEndPointIp": hosts_or_junk,
    "httpEndPointPort": ports_or_junk,
    "epochNumber": st.integers() | json_values,
    "writerCheckpoint": st.integers() | json_values,
    "isReadOnlyReplica": st.booleans() | json_values,
    "instanceId": st.text(max_size=8) | json_values,
    "timeStamp": st.text(max_size=8) | json_values,
}
member_like = st.fixed_dictionaries({}, optional=MEMBER_FIELDS)
documents = (
    st.fixed_dictionaries(
        {},
        optional={
            "members": st.lists(member_like | json_values, max_size=4) | json_values,
            "serverIp": hosts_or_junk,
            "serverPort": ports_or_junk,
        },
    )
    | json_values
)


@settings(max_examples=400, deadline=None)
@given(documents)
def test_parse_gossip_raises_only_invalid_gossip(document: Any) -> None:
    try:
        gossip = parse_gossip(document)
    except InvalidGossip:
        return
    for parsed in gossip.members:
        assert isinstance(parsed.state, NodeState)
        for endpoint in (parsed.tcp_address, parsed.secure_tcp_address, parsed.http_address):
            assert endpoint is None or 0 < (endpoint.port or 0) <= 65535


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40) | st.binary(max_size=40) | documents.map(json.dumps))
def test_parse_gossip_json_raises_only_invalid_gossip(text: str | bytes) -> None:
    with contextlib.suppress(InvalidGossip):
        parse_gossip_json(text)


POOL = ["n1", "n2", "n3", "n4"]
REDUCED_STATES = [
    NodeState.LEADER,
    NodeState.LEADER,
    NodeState.FOLLOWER,
    NodeState.READ_ONLY_REPLICA,
    NodeState.CLONE,
    NodeState.PRE_LEADER,
    NodeState.UNRECOGNISED,
]
members_strategy = st.builds(
    member,
    st.sampled_from(POOL),
    st.sampled_from(REDUCED_STATES),
    alive=st.booleans(),
    epoch=st.integers(-1, 6),
    writer=st.integers(0, 3),
)
steps = st.lists(
    st.tuples(
        st.sampled_from(POOL),
        st.none() | st.lists(members_strategy, max_size=6).map(lambda ms: Gossip(tuple(ms))),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(POOL), min_size=1, max_size=3, unique=True), steps)
def test_reducer_invariants(seeds: list[str], events: list[tuple[str, Gossip | None]]) -> None:
    description = cluster(*seeds)
    for step, (source_host, gossip) in enumerate(events):
        before, source = description, addr(source_host)
        if gossip is None:
            description = gossip_failed(before, source, "refused", now=float(step))
        else:
            description = reduce_gossip(before, source, gossip, now=float(step))
        primaries = [
            s for s in description.servers.values() if s.server_type is ServerType.RSPrimary
        ]
        assert len(primaries) <= 1
        assert (description.topology_type is TopologyType.ReplicaSetWithPrimary) == bool(primaries)
        assert {addr(s) for s in seeds} <= set(description.servers)
        if before.max_set_version is not None:
            assert description.max_set_version is not None
            assert description.max_set_version >= before.max_set_version
        current, previous = leader(description), leader(before)
        if current is not None:
            # The leader always carries the highest epoch accepted so far ...
            assert current.set_version == description.max_set_version
            # ... so a lower-epoch leader never replaces a higher one.
            if before.max_set_version is not None:
                assert current.set_version is not None
                assert current.set_version >= before.max_set_version
        unique = gossip is not None and len({m.http_address for m in gossip.members}) == len(
            gossip.members
        )
        if gossip is not None and unique and before.max_set_version is not None:
            winner = best_leader(gossip.members)
            if winner is not None and winner.epoch_number < before.max_set_version:
                expected = None if previous is None or previous.address == source else previous
                assert current == expected
        for selector in (prefer_leader, prefer_follower, prefer_read_only_replica, select_random):
            picked = selector(description.servers.values(), rng=random.Random(step))
            assert picked is None or picked.server_type is not ServerType.Unknown

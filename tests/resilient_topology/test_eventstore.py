from __future__ import annotations

import ast
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from resilient_topology import eventstore
from resilient_topology._types import ServerType, TopologyType
from resilient_topology.address import Address
from resilient_topology.errors import ConfigurationError, InvalidGossip
from resilient_topology.events import ServerOpening
from resilient_topology.eventstore import (
    V5_STATE_NAMES,
    V20_STATE_NAMES,
    EventStoreClusterSettings,
    Gossip,
    GossipMember,
    NodePreference,
    NodeState,
    apply_gossip_reply,
    best_leader,
    eligible_state,
    gossip_failed,
    leader,
    leader_changed,
    member_description,
    on_gossip_failure,
    on_gossip_reply,
    parse_gossip,
    parse_gossip_json,
    prefer_follower,
    prefer_leader,
    prefer_master,
    prefer_read_only_replica,
    prefer_replica,
    reduce_gossip,
    select_node,
    select_random,
)
from resilient_topology.sdam import StartMonitoring, TopologyState
from resilient_topology.topology import TopologyDescription

PACKAGE_DIR = Path(eventstore.__file__).resolve().parent


def v5_member(ip: str = "10.0.0.1", state: str = "Master", **changes: Any) -> dict[str, Any]:
    member = {
        "instanceId": "5f0c7a1e-0d6b-4f0e-9a53-2c1d6f1b0001",
        "timeStamp": "2024-05-14T09:30:00.1234567Z",
        "state": state,
        "isAlive": True,
        "internalTcpIp": ip,
        "internalTcpPort": 1112,
        "internalSecureTcpPort": 0,
        "externalTcpIp": ip,
        "externalTcpPort": 1113,
        "externalSecureTcpPort": 0,
        "internalHttpIp": ip,
        "internalHttpPort": 2112,
        "externalHttpIp": ip,
        "externalHttpPort": 2113,
        "lastCommitPosition": 1000,
        "writerCheckpoint": 2000,
        "chaserCheckpoint": 1900,
        "epochPosition": 500,
        "epochNumber": 4,
        "epochId": "5f0c7a1e-0d6b-4f0e-9a53-2c1d6f1b00ee",
        "nodePriority": 3,
    }
    member.update(changes)
    return member


def v20_member(
    host: str = "node1.esdb.local", state: str = "Leader", **changes: Any
) -> dict[str, Any]:
    member = v5_member(host, state)
    for key in ("internalHttpIp", "internalHttpPort", "externalHttpIp", "externalHttpPort"):
        del member[key]
    member.update(httpEndPointIp=host, httpEndPointPort=2113, isReadOnlyReplica=False)
    member.update(changes)
    return member


def member(
    host: str = "n1",
    state: NodeState = NodeState.LEADER,
    *,
    alive: bool = True,
    epoch: int = 1,
    writer: int = 0,
    raw: str | None = None,
) -> GossipMember:
    return GossipMember(
        http_address=Address(host, 2113),
        raw_state=raw or state.value,
        state=state,
        is_alive=alive,
        tcp_address=Address(host, 1113),
        epoch_number=epoch,
        writer_checkpoint=writer,
    )


def cluster(*seeds: str) -> TopologyDescription:
    return EventStoreClusterSettings.of(seeds or ("n1",)).initial_description()


def addr(host: str) -> Address:
    return Address(host, 2113)


def leader_address(description: TopologyDescription) -> Address | None:
    current = leader(description)
    return None if current is None else current.address


# --- node states -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(set(V5_STATE_NAMES) | set(V20_STATE_NAMES)))
def test_every_known_state_name_is_recognised(name: str) -> None:
    assert NodeState.from_name(name) is not NodeState.UNRECOGNISED


@pytest.mark.parametrize(
    ("v5", "v20"), [("Master", "Leader"), ("Slave", "Follower"), ("PreMaster", "PreLeader")]
)
def test_v5_names_mean_their_v20_successors(v5: str, v20: str) -> None:
    assert NodeState.from_name(v5) is NodeState.from_name(v20)
    assert NodeState.from_name(v5).canonical_name == v20
    assert NodeState[v5.upper().replace("PREM", "PRE_M")] is NodeState(v20)


@pytest.mark.parametrize("name", ["Banana", "", "7", "Leader ", "Unrecognised"])
def test_unknown_names_and_numbers_are_unrecognised(name: str) -> None:
    assert NodeState.from_name(name) is NodeState.UNRECOGNISED


def test_state_names_ignore_case() -> None:
    assert NodeState.from_name("leader") is NodeState.LEADER
    assert NodeState.from_name("READONLYREPLICA") is NodeState.READ_ONLY_REPLICA


# --- parsing ---------------------------------------------------------------------------------


def test_parse_v5_member_reads_every_field() -> None:
    gossip = parse_gossip({"members": [v5_member()], "serverIp": "10.0.0.1", "serverPort": 2112})
    assert gossip.server_address == Address("10.0.0.1", 2112)
    assert gossip.members == (
        GossipMember(
            http_address=Address("10.0.0.1", 2113),
            raw_state="Master",
            state=NodeState.LEADER,
            is_alive=True,
            tcp_address=Address("10.0.0.1", 1113),
            secure_tcp_address=None,
            instance_id="5f0c7a1e-0d6b-4f0e-9a53-2c1d6f1b0001",
            is_read_only_replica=False,
            epoch_number=4,
            epoch_position=500,
            writer_checkpoint=2000,
            chaser_checkpoint=1900,
            last_commit_position=1000,
            node_priority=3,
            timestamp="2024-05-14T09:30:00.1234567Z",
        ),
    )


def test_parse_v20_member_uses_http_endpoint_fields() -> None:
    raw = v20_member(
        "Node1.ESDB.local",
        "ReadOnlyReplica",
        externalTcpPort=0,
        externalSecureTcpPort=1115,
        isReadOnlyReplica=True,
        esVersion="23.10.0.0",
    )
    (parsed,) = parse_gossip({"members": [raw]}).members
    assert parsed.http_address == Address("node1.esdb.local", 2113)
    assert parsed.tcp_address is None
    assert parsed.secure_tcp_address == Address("node1.esdb.local", 1115)
    assert parsed.state is NodeState.READ_ONLY_REPLICA
    assert parsed.is_read_only_replica


def test_v20_http_fields_win_over_v5_ones() -> None:
    raw = v5_member(externalHttpPort=2114, httpEndPointIp="10.0.0.1", httpEndPointPort=2113)
    assert parse_gossip({"members": [raw]}).members[0].http_address == Address("10.0.0.1", 2113)


def test_missing_optional_fields_take_defaults() -> None:
    raw = {"state": "Follower", "isAlive": True, "httpEndPointIp": "::1", "httpEndPointPort": 2113}
    (parsed,) = parse_gossip({"members": [raw]}).members
    assert parsed.http_address == Address("::1", 2113)
    assert (parsed.tcp_address, parsed.instance_id, parsed.timestamp) == (None, None, None)
    assert (parsed.epoch_number, parsed.writer_checkpoint, parsed.node_priority) == (-1, -1, 0)
    assert parse_gossip({"members": []}).server_address is None


def test_unknown_state_is_tolerated_and_kept_raw() -> None:
    gossip = parse_gossip(
        {"members": [v20_member(state="Archiving"), v20_member("node2", "Follower")]}
    )
    first, second = gossip.members
    assert (first.raw_state, first.state) == ("Archiving", NodeState.UNRECOGNISED)
    assert second.state is NodeState.FOLLOWER


def test_integral_floats_are_integers() -> None:
    (parsed,) = parse_gossip(
        {"members": [v5_member(epochNumber=7.0, externalTcpPort=1113.0)]}
    ).members
    assert parsed.epoch_number == 7
    assert parsed.tcp_address == Address("10.0.0.1", 1113)


def _with(index_change: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    bad = v5_member(**index_change)
    for key in drop:
        del bad[key]
    return {"members": [v5_member("10.0.0.9"), bad]}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([], "gossip should be a JSON object"),
        ({}, "gossip 'members' should be a list"),
        ({"members": "abc"}, "gossip 'members' should be a list"),
        ({"members": [v5_member(), 3]}, "gossip member 1 should be a JSON object"),
        (_with({"isAlive": "true"}), "gossip member 1: 'isAlive'"),
        (_with({}, drop=("isAlive",)), "gossip member 1: 'isAlive'"),
        (_with({}, drop=("state",)), "gossip member 1: 'state'"),
        (_with({"state": 7}), "gossip member 1: 'state'"),
        (_with({"externalTcpPort": 70000}), "gossip member 1: 'externalTcpPort'"),
        (_with({"externalTcpPort": -1}), "gossip member 1: 'externalTcpPort'"),
        (_with({"externalTcpPort": "1113"}), "gossip member 1: 'externalTcpPort'"),
        (_with({"externalTcpPort": True}), "gossip member 1: 'externalTcpPort'"),
        (_with({"externalTcpIp": "not a host"}), "gossip member 1: 'externalTcpIp'"),
        (_with({"externalHttpIp": "1:2:3"}), "gossip member 1: 'externalHttpIp'"),
        (_with({"externalHttpIp": ""}), "gossip member 1: 'externalHttpIp'"),
        (_with({"externalHttpPort": 0}), "gossip member 1: 'externalHttpPort'"),
        (_with({}, drop=("externalHttpPort",)), "gossip member 1: 'externalHttpPort'"),
        (
            _with({}, drop=("externalHttpIp", "externalHttpPort")),
            "gossip member 1: no HTTP endpoint",
        ),
        (_with({"epochNumber": "5"}), "gossip member 1: 'epochNumber'"),
        (_with({"writerCheckpoint": 1.5}), "gossip member 1: 'writerCheckpoint'"),
        (_with({"isReadOnlyReplica": 1}), "gossip member 1: 'isReadOnlyReplica'"),
        (_with({"instanceId": 12}), "gossip member 1: 'instanceId'"),
        (_with({"timeStamp": 638_500_000}), "gossip member 1: 'timeStamp'"),
        ({"members": [], "serverPort": 99999}, "gossip: 'serverPort'"),
    ],
)
def test_malformed_gossip_names_member_and_field(document: Any, expected: str) -> None:
    with pytest.raises(InvalidGossip, match="^" + re.escape(expected)):
        parse_gossip(document)


def test_parse_gossip_json() -> None:
    text = json.dumps({"members": [v5_member()]})
    assert (
        parse_gossip_json(text)
        == parse_gossip_json(text.encode())
        == parse_gossip(json.loads(text))
    )
    with pytest.raises(InvalidGossip, match="not valid JSON") as caught:
        parse_gossip_json('{"members": [')
    assert isinstance(caught.value.__cause__, ValueError)
    for bad in ('{"members": [], "x": NaN}', b"\xff\xfe\x00", "[" * 100_000):
        with pytest.raises(InvalidGossip):
            parse_gossip_json(bad)


# --- member descriptions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (NodeState.LEADER, ServerType.RSPrimary),
        (NodeState.FOLLOWER, ServerType.RSSecondary),
        (NodeState.READ_ONLY_REPLICA, ServerType.RSSecondary),
        (NodeState.READ_ONLY_LEADERLESS, ServerType.RSSecondary),
        (NodeState.CLONE, ServerType.RSOther),
        *[
            (s, ServerType.Unknown)
            for s in NodeState
            if s.name
            not in {"LEADER", "FOLLOWER", "READ_ONLY_REPLICA", "READ_ONLY_LEADERLESS", "CLONE"}
        ],
    ],
)
def test_member_description_server_type(state: NodeState, expected: ServerType) -> None:
    alive = member(state=state)
    described = member_description(alive, now=5.0, round_trip_time=0.01)
    assert described.server_type is expected
    assert described.tags["state"] == state.canonical_name
    assert (described.error is None) == (expected is not ServerType.Unknown)
    assert (described.last_update_time, described.round_trip_time) == (5.0, 0.01)
    dead = member_description(member(state=state, alive=False), now=5.0)
    assert dead.server_type is ServerType.Unknown
    assert dead.error is not None
    assert "not alive" in dead.error


def test_member_description_keys_endpoints_and_epoch() -> None:
    raw = v20_member("node4", "ReadOnlyReplica", externalSecureTcpPort=1115, isReadOnlyReplica=True)
    (parsed,) = parse_gossip({"members": [raw]}).members
    described = member_description(parsed, now=1.0)
    assert described.address == Address("node4", 2113)
    assert dict(described.endpoints) == {
        "tcp": Address("node4", 1113),
        "secure_tcp": Address("node4", 1115),
        "http": Address("node4", 2113),
    }
    assert dict(described.tags) == {"state": "ReadOnlyReplica", "role": "read_only_replica"}
    assert described.set_version == 4
    assert member_description(member(epoch=-1), now=1.0).set_version is None


def test_unrecognised_state_error_names_the_raw_state() -> None:
    described = member_description(member(state=NodeState.UNRECOGNISED, raw="Archiving"), now=0.0)
    assert described.error == "node state 'Archiving' is not recognised"


# --- the reducer -----------------------------------------------------------------------------


def test_gossip_from_untracked_source_changes_nothing() -> None:
    before = cluster("n1")
    gossip = Gossip((member("n1"),))
    assert reduce_gossip(before, addr("elsewhere"), gossip, now=1.0) is before
    assert gossip_failed(before, addr("elsewhere"), "refused", now=1.0) is before


def test_round_trip_time_goes_on_the_source_only() -> None:
    gossip = Gossip((member("n1"), member("n2", NodeState.FOLLOWER)))
    after = reduce_gossip(cluster("n2"), addr("n2"), gossip, now=1.0, round_trip_time=0.2)
    assert after.servers[addr("n2")].round_trip_time == 0.2
    assert after.servers[addr("n1")].round_trip_time is None


def test_dead_leader_with_higher_epoch_neither_wins_nor_raises_the_epoch() -> None:
    gossip = Gossip((member("n1", epoch=10), member("n2", epoch=11, alive=False)))
    after = reduce_gossip(cluster(), addr("n1"), gossip, now=1.0)
    assert leader_address(after) == addr("n1")
    assert after.max_set_version == 10


def test_leaders_tied_exactly_the_first_listed_wins() -> None:
    gossip = Gossip((member("n2", epoch=3, writer=7), member("n1", epoch=3, writer=7)))
    assert best_leader(gossip.members) is gossip.members[0]
    after = reduce_gossip(cluster(), addr("n1"), gossip, now=1.0)
    assert leader_address(after) == addr("n2")
    assert after.servers[addr("n1")].error == eventstore.REPLACED_LEADER_ERROR


def test_stale_gossip_changes_only_the_source() -> None:
    fresh = Gossip((member("n1", epoch=4), member("n2", NodeState.FOLLOWER, epoch=4)))
    before = reduce_gossip(cluster("n1", "n2"), addr("n1"), fresh, now=1.0)
    stale = Gossip((member("n2", epoch=3), member("n1", NodeState.FOLLOWER, alive=False, epoch=3)))
    after = reduce_gossip(before, addr("n2"), stale, now=2.0)
    assert after.servers[addr("n1")] == before.servers[addr("n1")]
    assert after.servers[addr("n2")].server_type is ServerType.Unknown
    assert str(after.servers[addr("n2")].error).startswith(eventstore.STALE_GOSSIP_ERROR)
    assert after.max_set_version == 4
    assert not leader_changed(before, after)


def test_an_empty_gossip_before_any_epoch_leaves_seeds_unknown() -> None:
    after = reduce_gossip(cluster("n1", "n2"), addr("n1"), Gossip(()), now=1.0)
    assert set(after.servers) == {addr("n1"), addr("n2")}
    assert all(s.error == eventstore.NOT_LISTED_ERROR for s in after.servers.values())
    assert after.topology_type is TopologyType.ReplicaSetNoPrimary
    assert after.max_set_version is None


def test_leader_changed() -> None:
    first = reduce_gossip(cluster(), addr("n1"), Gossip((member("n1", epoch=1),)), now=1.0)
    second = reduce_gossip(
        first,
        addr("n1"),
        Gossip((member("n1", NodeState.FOLLOWER, epoch=2), member("n2", epoch=2))),
        now=2.0,
    )
    assert leader_changed(cluster(), first)
    assert leader_changed(first, second)
    assert not leader_changed(second, second)


def test_apply_gossip_reply_turns_bad_replies_into_failures() -> None:
    before = cluster("n1", "n2")
    after = apply_gossip_reply(before, addr("n1"), {"members": [{"state": "Leader"}]}, now=1.0)
    assert str(after.servers[addr("n1")].error).startswith("InvalidGossip: gossip member 0")
    ok = apply_gossip_reply(before, addr("n1"), json.dumps({"members": [v5_member("n1")]}), now=1.0)
    assert leader(ok) is not None


def test_monitor_seam_emits_events_for_new_members() -> None:
    settings = EventStoreClusterSettings.of("n1")
    state = TopologyState.open(settings.topology_settings, "es").state
    reply = {"members": [v5_member("n1"), v5_member("n2", "Slave")]}
    transition = on_gossip_reply(state, addr("n1"), reply, 0.01, 1.0)
    assert StartMonitoring(addr("n2")) in transition.actions
    assert ServerOpening("es", addr("n2")) in transition.events
    assert transition.state.description.topology_type is TopologyType.ReplicaSetWithPrimary
    failed = on_gossip_failure(transition.state, addr("n1"), ConnectionError("refused"), 2.0)
    assert failed.state.description.topology_type is TopologyType.ReplicaSetNoPrimary
    untouched = on_gossip_failure(failed.state, addr("zz"), ConnectionError("refused"), 3.0)
    assert untouched.state is failed.state
    assert untouched.events == ()


# --- selection -------------------------------------------------------------------------------


MEMBERS = (
    member("f1", NodeState.FOLLOWER, writer=5),
    member("l1", NodeState.LEADER),
    member("f2", NodeState.FOLLOWER, writer=9),
    member("ro", NodeState.READ_ONLY_REPLICA),
    member("cl", NodeState.CLONE),
    member("dead", NodeState.FOLLOWER, alive=False),
    member("cu", NodeState.CATCHING_UP),
    member("huh", NodeState.UNRECOGNISED, raw="Banana"),
)


def hosts(selector: Any, members: Any, **options: Any) -> set[str | None]:
    picked = (selector(members, rng=random.Random(seed), **options) for seed in range(64))
    return {None if p is None else p.http_address.host for p in picked}


def test_selectors_over_members() -> None:
    assert hosts(prefer_leader, MEMBERS) == {"l1"}
    assert hosts(prefer_follower, MEMBERS) == {"f1", "f2"}
    assert hosts(prefer_follower, MEMBERS, include_clones=True) == {"f1", "f2", "cl"}
    assert hosts(prefer_read_only_replica, MEMBERS) == {"ro"}
    assert hosts(select_random, MEMBERS) == {"f1", "l1", "f2", "ro"}
    assert hosts(select_random, MEMBERS, include_clones=True) == {"f1", "l1", "f2", "ro", "cl"}


def test_prefer_leader_without_leader_takes_the_most_recent_follower() -> None:
    no_leader = [m for m in MEMBERS if m.state is not NodeState.LEADER]
    assert hosts(prefer_leader, no_leader) == {"f2"}
    only_extras = [m for m in MEMBERS if m.state in (NodeState.READ_ONLY_REPLICA, NodeState.CLONE)]
    assert hosts(prefer_leader, only_extras) == {"ro"}
    assert hosts(prefer_leader, [m for m in MEMBERS if m.state is NodeState.CLONE]) == {None}
    clone_only = [m for m in MEMBERS if m.state is NodeState.CLONE]
    assert hosts(prefer_leader, clone_only, include_clones=True) == {"cl"}


def test_selectors_fall_back_in_preference_order() -> None:
    assert hosts(prefer_follower, [MEMBERS[1], MEMBERS[3]]) == {"l1"}
    assert hosts(prefer_follower, [MEMBERS[3]]) == {"ro"}
    assert hosts(prefer_read_only_replica, [MEMBERS[0], MEMBERS[1]]) == {"f1"}
    assert hosts(prefer_read_only_replica, [MEMBERS[1]]) == {"l1"}
    assert hosts(select_random, MEMBERS[5:]) == {None}


def test_photonpump_names_and_select_node() -> None:
    assert prefer_master is prefer_leader
    assert prefer_replica is prefer_follower
    rng = random.Random(1)
    for preference, expected in [
        (NodePreference.LEADER, {"l1"}),
        (NodePreference.FOLLOWER, {"f1", "f2"}),
        (NodePreference.READ_ONLY_REPLICA, {"ro"}),
        (NodePreference.RANDOM, {"f1", "l1", "f2", "ro"}),
    ]:
        picked = select_node(MEMBERS, preference, rng=rng)
        assert picked is not None
        assert picked.http_address.host in expected
    assert select_follower_without_rng() in {"f1", "f2"}


def select_follower_without_rng() -> str:
    picked = prefer_follower(MEMBERS)  # the random module's own generator
    assert picked is not None
    return picked.http_address.host


def test_selectors_over_descriptions_skip_unknown_servers() -> None:
    gossip = Gossip(
        (member("n1", epoch=2), member("n2", epoch=3), member("n3", NodeState.FOLLOWER, epoch=3))
    )
    after = reduce_gossip(cluster("seed"), addr("seed"), gossip, now=1.0)
    servers = list(after.servers.values())
    picked = prefer_leader(servers)
    assert picked is not None
    assert picked.address == addr("n2")
    assert {s.address for s in servers if eligible_state(s) is not None} == {addr("n2"), addr("n3")}


# --- settings --------------------------------------------------------------------------------


def test_cluster_settings() -> None:
    settings = EventStoreClusterSettings.of(
        ["es1", "ES1:2113", "10.0.0.2:2114"], node_preference="follower", include_clones=True
    )
    assert settings.seeds == (Address("es1", 2113), Address("10.0.0.2", 2114))
    assert settings.node_preference is NodePreference.FOLLOWER
    initial = settings.initial_description()
    assert initial.topology_type is TopologyType.ReplicaSetNoPrimary
    assert initial.set_name is None
    assert all(s.server_type is ServerType.Unknown for s in initial.servers.values())
    assert EventStoreClusterSettings.of(Address("a", 1)).seeds == (Address("a", 1),)


@pytest.mark.parametrize(
    "build",
    [
        lambda: EventStoreClusterSettings.of([]),
        lambda: EventStoreClusterSettings.of("a", node_preference="leaderish"),
        lambda: EventStoreClusterSettings(("a:2113",)),  # type: ignore[arg-type]
        lambda: EventStoreClusterSettings.of("a:99999"),
    ],
)
def test_cluster_settings_reject_nonsense(build: Any) -> None:
    with pytest.raises(ConfigurationError):
        build()


# --- purity ----------------------------------------------------------------------------------


def test_the_package_is_pure() -> None:
    banned = {"asyncio", "socket", "threading", "time", "ssl", "selectors", "subprocess"}
    allowed_roots = {
        "__future__",
        "collections",
        "dataclasses",
        "enum",
        "json",
        "random",
        "struct",  # framing: byte layouts, no I/O
        "types",
        "typing",
        "uuid",  # framing: correlation ids
    }
    for path in PACKAGE_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                assert root not in banned, f"{path.name} imports {name}"
                assert root in allowed_roots | {"resilient_topology"}, f"{path.name} imports {name}"
                assert not name.startswith(
                    ("resilient_topology.drivers", "resilient_topology.mongo")
                )


def test_exports_are_sorted_and_importable() -> None:
    for name in eventstore.__all__:
        assert hasattr(eventstore, name), name

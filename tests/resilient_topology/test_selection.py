from __future__ import annotations

import math
import random
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_topology._types import ServerType, TopologyType
from resilient_topology.address import Address
from resilient_topology.errors import ConfigurationError, ServerSelectionError
from resilient_topology.selection import (
    Operation,
    ReadMode,
    ReadPreference,
    Selection,
    choose_in_window,
    compose,
    first_of,
    matching_tag_sets,
    secondaries,
    select_server,
    select_servers,
    suitable_servers,
    within_latency_window,
)
from resilient_topology.server import ServerDescription
from resilient_topology.settings import TopologySettings
from resilient_topology.staleness import (
    check_max_staleness,
    estimate_staleness,
    smallest_max_staleness,
)
from resilient_topology.topology import TopologyDescription

NOW = 100.0
RS_WITH, RS_WITHOUT = TopologyType.ReplicaSetWithPrimary, TopologyType.ReplicaSetNoPrimary
PRIMARY, SECONDARY = ServerType.RSPrimary, ServerType.RSSecondary


def server(
    name: str,
    kind: ServerType = SECONDARY,
    rtt: float | None = 0.005,
    tags: dict[str, str] | None = None,
    updated: float | None = None,
    written: float | None = None,
    **fields: Any,
) -> ServerDescription:
    return ServerDescription(
        address=Address(name, 27017),
        server_type=kind,
        round_trip_time=rtt,
        tags=tags or {},
        last_update_time=updated,
        last_write_date=written,
        **fields,
    )


def topology(
    kind: TopologyType, *servers: ServerDescription, **settings: Any
) -> TopologyDescription:
    seeds = tuple(s.address for s in servers) or (Address("seed", 27017),)
    return TopologyDescription(
        topology_type=kind,
        servers=MappingProxyType({s.address: s for s in servers}),
        settings=TopologySettings(seeds, **settings),
    )


def names(servers: tuple[ServerDescription, ...]) -> list[str]:
    return sorted(s.address.host for s in servers)


def read(
    mode: ReadMode, *tag_sets: dict[str, str], max_staleness: float | None = None
) -> ReadPreference:
    return ReadPreference(mode, tag_sets or ({},), max_staleness)


def suitable(description: TopologyDescription, operation: Operation, **options: Any) -> list[str]:
    return names(suitable_servers(description, operation, now=NOW, **options))


def window(description: TopologyDescription, operation: Operation, **options: Any) -> list[str]:
    return names(select_servers(description, operation, now=NOW, **options))


REPLICA_SET = topology(
    RS_WITH,
    server("p", PRIMARY, rtt=0.020, tags={"dc": "ny"}),
    server("s1", rtt=0.005, tags={"dc": "ny", "rack": "1"}),
    server("s2", rtt=0.100, tags={"dc": "sf"}),
    server("arbiter", ServerType.RSArbiter),
    server("gone", ServerType.Unknown),
)
NO_PRIMARY = topology(
    RS_WITHOUT,
    server("s1", rtt=0.005, tags={"dc": "ny"}),
    server("s2", rtt=0.010, tags={"dc": "sf"}),
    server("maybe", ServerType.PossiblePrimary),
)


# --- read preference values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("primary", ReadMode.PRIMARY),
        ("SecondaryPreferred", ReadMode.SECONDARY_PREFERRED),
        ("NEAREST", ReadMode.NEAREST),
        ("primaryPreferred", ReadMode.PRIMARY_PREFERRED),
    ],
)
def test_mode_is_parsed_in_any_case(text: str, mode: ReadMode) -> None:
    assert ReadMode.parse(text) is mode


@pytest.mark.parametrize("text", ["primary_preferred", "", 3])
def test_unknown_mode_is_refused(text: object) -> None:
    with pytest.raises(ConfigurationError, match="mode"):
        ReadMode.parse(text)


def test_default_read_preference_is_primary_matching_everything() -> None:
    preference = ReadPreference()
    assert preference.mode is ReadMode.PRIMARY
    assert preference.tag_sets == ({},)
    assert preference.max_staleness is None


@pytest.mark.parametrize(
    "options",
    [
        {"tag_sets": ({"dc": "ny"},)},
        {"tag_sets": ({}, {"dc": "ny"})},
        {"max_staleness": 120},
    ],
)
def test_primary_refuses_tags_and_max_staleness(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="primary"):
        ReadPreference(ReadMode.PRIMARY, **options)


@pytest.mark.parametrize("value", [0, -2, -0.5, math.inf, math.nan, True, "120"])
def test_max_staleness_must_be_positive_seconds(value: object) -> None:
    with pytest.raises(ConfigurationError, match="max staleness"):
        ReadPreference(ReadMode.NEAREST, max_staleness=value)  # type: ignore[arg-type]


def test_minus_one_means_no_max_staleness() -> None:
    assert ReadPreference(ReadMode.NEAREST, max_staleness=-1).max_staleness is None
    assert ReadPreference(ReadMode.PRIMARY, max_staleness=-1).max_staleness is None


@pytest.mark.parametrize("tag_sets", ["dc", {"dc": "ny"}, [{"dc": 1}], [["dc", "ny"]], 5])
def test_tag_sets_must_be_a_sequence_of_string_mappings(tag_sets: object) -> None:
    with pytest.raises(ConfigurationError, match="tag"):
        ReadPreference(ReadMode.NEAREST, tag_sets)  # type: ignore[arg-type]


def test_mode_must_be_a_read_mode() -> None:
    with pytest.raises(ConfigurationError, match="ReadMode"):
        ReadPreference("nearest")  # type: ignore[arg-type]


def test_read_preference_is_frozen_hashable_and_copies_its_tags() -> None:
    tags = {"dc": "ny"}
    preference = ReadPreference(ReadMode.SECONDARY, [tags])  # type: ignore[arg-type]
    tags["dc"] = "sf"
    assert preference.tag_sets == ({"dc": "ny"},)
    assert hash(preference) == hash(ReadPreference(ReadMode.SECONDARY, ({"dc": "ny"},)))
    with pytest.raises(TypeError):
        preference.tag_sets[0]["dc"] = "sf"


def test_read_preference_from_document() -> None:
    document = {"mode": "Secondary", "tags": [{"dc": "ny"}, {}], "maxStalenessSeconds": 120}
    assert ReadPreference.from_document(document) == ReadPreference(
        ReadMode.SECONDARY, ({"dc": "ny"}, {}), 120.0
    )
    assert ReadPreference.from_document({}) == ReadPreference()


@pytest.mark.parametrize(
    "document",
    [
        {"mode": "nearest", "hedge": {}},
        {"mode": "nearest", "tags": [], "tag_sets": []},
        {"maxStalenessSeconds": 120},
    ],
)
def test_read_preference_document_errors(document: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        ReadPreference.from_document(document)


# --- modes in a replica set -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "with_primary", "without_primary"),
    [
        (ReadMode.PRIMARY, ["p"], []),
        (ReadMode.PRIMARY_PREFERRED, ["p"], ["s1", "s2"]),
        (ReadMode.SECONDARY, ["s1", "s2"], ["s1", "s2"]),
        (ReadMode.SECONDARY_PREFERRED, ["s1", "s2"], ["s1", "s2"]),
        (ReadMode.NEAREST, ["p", "s1", "s2"], ["s1", "s2"]),
    ],
)
def test_modes(mode: ReadMode, with_primary: list[str], without_primary: list[str]) -> None:
    assert suitable(REPLICA_SET, ReadPreference(mode)) == with_primary
    assert suitable(NO_PRIMARY, ReadPreference(mode)) == without_primary


def test_secondary_preferred_falls_back_to_the_primary() -> None:
    preference = read(ReadMode.SECONDARY_PREFERRED, {"dc": "tokyo"})
    assert suitable(REPLICA_SET, preference) == ["p"]
    assert suitable(NO_PRIMARY, preference) == []


def test_primary_preferred_uses_tags_only_for_secondaries() -> None:
    preference = read(ReadMode.PRIMARY_PREFERRED, {"dc": "tokyo"})
    assert suitable(REPLICA_SET, preference) == ["p"]
    assert suitable(NO_PRIMARY, read(ReadMode.PRIMARY_PREFERRED, {"dc": "sf"})) == ["s2"]


def test_writes_go_to_the_primary_only() -> None:
    assert suitable(REPLICA_SET, "write") == ["p"]
    assert suitable(NO_PRIMARY, "write") == []


# --- tag sets -------------------------------------------------------------------------------------


def test_first_tag_set_matching_anything_wins() -> None:
    preference = read(ReadMode.NEAREST, {"dc": "tokyo"}, {"dc": "ny"}, {})
    assert suitable(REPLICA_SET, preference) == ["p", "s1"]


def test_a_tag_set_matches_servers_holding_all_its_pairs() -> None:
    assert suitable(REPLICA_SET, read(ReadMode.SECONDARY, {"dc": "ny", "rack": "1"})) == ["s1"]
    assert suitable(REPLICA_SET, read(ReadMode.SECONDARY, {"dc": "ny", "rack": "2"})) == []


def test_no_tag_sets_at_all_restrict_nothing() -> None:
    assert suitable(REPLICA_SET, ReadPreference(ReadMode.NEAREST, ())) == ["p", "s1", "s2"]


def test_matching_tag_sets_as_a_selector() -> None:
    start = Selection.of(REPLICA_SET, now=NOW)
    chosen = compose(secondaries, matching_tag_sets([{"dc": "sf"}]))(start)
    assert [a.host for a in chosen.addresses] == ["s2"]
    assert chosen.description is REPLICA_SET


# --- latency window -------------------------------------------------------------------------------


def test_window_is_fastest_plus_threshold() -> None:
    nearest = ReadPreference(ReadMode.NEAREST)
    assert window(REPLICA_SET, nearest) == ["p", "s1"]  # default 15 ms: 5 and 20 ms
    assert window(REPLICA_SET, nearest, local_threshold=0.0) == ["s1"]
    assert window(REPLICA_SET, nearest, local_threshold=1.0) == ["p", "s1", "s2"]


def test_window_threshold_comes_from_settings() -> None:
    wide = topology(
        TopologyType.Sharded,
        server("m1", ServerType.Mongos, rtt=0.001),
        server("m2", ServerType.Mongos, rtt=0.200),
        local_threshold=0.5,
    )
    assert window(wide, "write") == ["m1", "m2"]


def test_unmeasured_servers_give_way_to_measured_ones() -> None:
    start = Selection.of(
        topology(
            TopologyType.Sharded,
            server("m1", ServerType.Mongos, rtt=None),
            server("m2", ServerType.Mongos, rtt=0.3),
        ),
        now=NOW,
    )
    assert [a.host for a in within_latency_window(0.015)(start).addresses] == ["m2"]
    lonely = Selection.of(topology(TopologyType.LoadBalanced, server("lb", rtt=None)), now=NOW)
    assert within_latency_window(0.015)(lonely) == lonely


@pytest.mark.parametrize("threshold", [-0.001, math.inf, math.nan])
def test_bad_local_threshold_is_refused(threshold: float) -> None:
    with pytest.raises(ConfigurationError, match="local_threshold"):
        select_servers(REPLICA_SET, "write", now=NOW, local_threshold=threshold)


# --- max staleness --------------------------------------------------------------------------------


def stale_set(primary_written: float | None = 1_000.0) -> TopologyDescription:
    """Checked at t=500 (our clock): s1 is 30 s behind the primary, s2 200 s, s3 unknown."""
    return topology(
        RS_WITH,
        server("p", PRIMARY, updated=500.0, written=primary_written),
        server("s1", updated=500.0, written=970.0),
        server("s2", updated=500.0, written=800.0),
        server("s3", updated=500.0, written=None),
    )


def test_staleness_with_a_primary_compares_lags_behind_our_clock() -> None:
    description = stale_set()
    estimates = {
        s.address.host: estimate_staleness(s, description) for s in description.servers.values()
    }
    assert estimates == {"p": 0.0, "s1": 40.0, "s2": 210.0, "s3": None}


def test_staleness_without_a_primary_compares_with_the_freshest_secondary() -> None:
    description = topology(
        RS_WITHOUT,
        server("s1", written=1_000.0),
        server("s2", written=880.0),
        heartbeat_frequency=25.0,
    )
    assert [estimate_staleness(s, description) for s in description.servers.values()] == [
        25.0,
        145.0,
    ]


def test_max_staleness_filters_before_tags() -> None:
    assert suitable(stale_set(), read(ReadMode.SECONDARY, max_staleness=90)) == ["s1"]
    assert suitable(stale_set(), read(ReadMode.NEAREST, max_staleness=90)) == ["p", "s1"]
    # s1 is fresh but untagged: tags then match nothing rather than falling back to s2.
    stale_sf = topology(
        RS_WITH,
        server("p", PRIMARY, updated=0.0, written=1_000.0),
        server("s1", updated=0.0, written=1_000.0, tags={"dc": "ny"}),
        server("s2", updated=0.0, written=10.0, tags={"dc": "sf"}),
    )
    assert suitable(stale_sf, read(ReadMode.SECONDARY, {"dc": "sf"}, max_staleness=90)) == []


def test_a_primary_without_write_dates_leaves_secondaries_unjudgeable() -> None:
    assert (
        suitable(stale_set(primary_written=None), read(ReadMode.SECONDARY, max_staleness=500)) == []
    )


def test_smallest_max_staleness() -> None:
    assert smallest_max_staleness(10.0) == 90.0
    assert smallest_max_staleness(120.0) == 130.0


@pytest.mark.parametrize(("limit", "heartbeat"), [(89, 10.0), (129, 120.0)])
def test_too_small_max_staleness_raises_for_replica_sets_only(
    limit: float, heartbeat: float
) -> None:
    preference = read(ReadMode.NEAREST, max_staleness=limit)
    for kind in (RS_WITH, RS_WITHOUT):
        description = topology(kind, server("s1"), heartbeat_frequency=heartbeat)
        with pytest.raises(ConfigurationError, match="too small"):
            suitable_servers(description, preference, now=NOW)
    for kind in (TopologyType.Sharded, TopologyType.Single, TopologyType.Unknown):
        description = topology(kind, server("m", ServerType.Mongos), heartbeat_frequency=heartbeat)
        suitable_servers(description, preference, now=NOW)
        check_max_staleness(limit, description)


# --- other topology types -------------------------------------------------------------------------


@pytest.mark.parametrize("operation", [ReadPreference(ReadMode.NEAREST), "write"])
def test_unknown_topology_offers_nothing(operation: Operation) -> None:
    description = topology(
        TopologyType.Unknown, server("m", ServerType.Mongos), server("g", ServerType.RSGhost)
    )
    assert suitable(description, operation) == []


@pytest.mark.parametrize("operation", [read(ReadMode.SECONDARY, {"dc": "x"}), "write"])
def test_single_takes_every_operation_when_known(operation: Operation) -> None:
    assert suitable(topology(TopologyType.Single, server("s", SECONDARY)), operation) == ["s"]
    assert suitable(topology(TopologyType.Single, server("s", ServerType.Unknown)), operation) == []


@pytest.mark.parametrize("operation", [read(ReadMode.SECONDARY, {"dc": "x"}), "write"])
def test_sharded_uses_mongoses_whatever_the_read_preference(operation: Operation) -> None:
    description = topology(
        TopologyType.Sharded, server("m1", ServerType.Mongos), server("m2", ServerType.Unknown)
    )
    assert suitable(description, operation) == ["m1"]


def test_load_balanced_uses_the_load_balancer() -> None:
    description = topology(
        TopologyType.LoadBalanced, ServerDescription.load_balancer(Address("lb", 27017))
    )
    assert window(description, read(ReadMode.SECONDARY, {"dc": "x"})) == ["lb"]
    assert window(description, "write") == ["lb"]


# --- deprioritized servers, application selectors, errors -----------------------------------------


def test_deprioritized_servers_are_a_last_resort() -> None:
    sharded = topology(
        TopologyType.Sharded, server("m1", ServerType.Mongos), server("m2", ServerType.Mongos)
    )
    m1, m2 = Address("m1", 27017), Address("m2", 27017)
    assert suitable(sharded, "write", deprioritized=[m1]) == ["m2"]
    assert suitable(sharded, "write", deprioritized=[m1, m2]) == ["m1", "m2"]
    p = Address("p", 27017)
    assert suitable(REPLICA_SET, ReadPreference(ReadMode.PRIMARY_PREFERRED), deprioritized=[p]) == [
        "s1",
        "s2",
    ]


def test_application_selector_runs_last_and_can_only_narrow() -> None:
    def only_sf(selection: Selection) -> Selection:
        assert selection.now == NOW
        return selection.keep(lambda s: s.tags.get("dc") == "sf")

    def adds_a_stranger(selection: Selection) -> Selection:
        return Selection(selection.description, (*selection.candidates, server("x")), selection.now)

    nearest = ReadPreference(ReadMode.NEAREST)
    assert suitable(REPLICA_SET, nearest, selector=only_sf) == ["s2"]
    assert suitable(REPLICA_SET, nearest, selector=adds_a_stranger) == ["p", "s1", "s2"]


def test_incompatible_wire_version_raises() -> None:
    old = topology(RS_WITH, server("p", PRIMARY, min_wire_version=0, max_wire_version=2))
    with pytest.raises(ServerSelectionError, match="wire version"):
        select_servers(old, "write", now=NOW)


@pytest.mark.parametrize("operation", ["read", None, ReadMode.NEAREST])
def test_operation_must_be_a_read_preference_or_write(operation: object) -> None:
    with pytest.raises(ConfigurationError, match="operation"):
        suitable_servers(REPLICA_SET, operation, now=NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize("now", [math.nan, math.inf, None])
def test_now_must_be_a_finite_time(now: object) -> None:
    with pytest.raises(ConfigurationError, match="now"):
        suitable_servers(REPLICA_SET, "write", now=now)  # type: ignore[arg-type]


def test_first_of_returns_nothing_when_all_fail() -> None:
    start = Selection.of(NO_PRIMARY, now=NOW)
    chosen = first_of(matching_tag_sets([{"dc": "x"}]), matching_tag_sets([{"dc": "y"}]))(start)
    assert chosen.is_empty


# --- choosing within the window -------------------------------------------------------------------

MONGOSES = tuple(server(name, ServerType.Mongos) for name in "abcd")


def test_choose_in_window_edge_cases() -> None:
    assert choose_in_window((), {}, random.Random(1).random) is None
    assert choose_in_window(MONGOSES[:1], {}, lambda: pytest.fail("no draw needed")) == MONGOSES[0]


def test_choose_in_window_prefers_the_less_busy_of_two() -> None:
    draws = iter([0.0, 0.0])  # first index 0, second index 0 of the rest: servers a and b
    busy = {MONGOSES[0].address: 9, MONGOSES[1].address: 1}
    assert choose_in_window(MONGOSES, busy, lambda: next(draws)) == MONGOSES[1]
    draws = iter([0.0, 0.0])
    assert choose_in_window(MONGOSES, lambda address: 0, lambda: next(draws)) == MONGOSES[0]


def _choices(seed: int, counts: dict[Address, int], times: int) -> list[ServerDescription | None]:
    rng = random.Random(seed)
    return [choose_in_window(MONGOSES, counts, rng.random) for _ in range(times)]


def test_choose_in_window_never_takes_the_busiest_and_is_deterministic() -> None:
    counts = {s.address: i for i, s in enumerate(MONGOSES)}
    chosen = _choices(7, counts, 200)
    assert chosen == _choices(7, counts, 200)
    assert {s.address.host for s in chosen if s is not None} == {"a", "b", "c"}


def test_choose_in_window_accepts_a_draw_of_one() -> None:
    draws = iter([1.0, 1.0])
    assert choose_in_window(MONGOSES, {}, lambda: next(draws)) == MONGOSES[3]


@pytest.mark.parametrize("draw", [-0.1, 1.5, math.nan])
def test_choose_in_window_checks_the_random_source(draw: float) -> None:
    with pytest.raises(ConfigurationError, match="random"):
        choose_in_window(MONGOSES, {}, lambda: draw)


def test_select_server_runs_the_whole_algorithm() -> None:
    rng = random.Random(3)
    chosen = select_server(
        REPLICA_SET, ReadPreference(ReadMode.NEAREST), now=NOW, random=rng.random
    )
    assert chosen is not None
    assert chosen.address.host in {"p", "s1"}
    assert select_server(NO_PRIMARY, "write", now=NOW, random=rng.random) is None


# --- properties -----------------------------------------------------------------------------------

_NAMES = st.sampled_from(["a", "b", "c", "d", "e"])
_SERVERS = st.builds(
    server,
    _NAMES,
    st.sampled_from(list(ServerType)),
    rtt=st.none() | st.floats(0, 1),
    tags=st.dictionaries(
        st.sampled_from(["dc", "rack"]), st.sampled_from(["ny", "sf"]), max_size=2
    ),
    updated=st.none() | st.floats(0, 1e6),
    written=st.none() | st.floats(0, 1e6),
)
_TAG_SETS = st.lists(
    st.dictionaries(st.sampled_from(["dc", "rack"]), st.sampled_from(["ny", "sf"]), max_size=2),
    max_size=3,
)


@st.composite
def _operations(draw: st.DrawFn) -> Operation:
    if draw(st.booleans()):
        return "write"
    mode = draw(st.sampled_from(list(ReadMode)))
    if mode is ReadMode.PRIMARY:
        return ReadPreference()
    limit = draw(st.none() | st.floats(90, 1e6))
    return ReadPreference(mode, tuple(draw(_TAG_SETS)), limit)


@given(
    kind=st.sampled_from(list(TopologyType)),
    servers=st.lists(_SERVERS, max_size=5, unique_by=lambda s: s.address),
    operation=_operations(),
    threshold=st.floats(0, 1),
    avoided=st.lists(_NAMES, max_size=3),
)
def test_selection_is_a_subset_and_writes_go_to_writable_servers(
    kind: TopologyType,
    servers: list[ServerDescription],
    operation: Operation,
    threshold: float,
    avoided: list[str],
) -> None:
    description = topology(kind, *servers)
    deprioritized = [Address(name, 27017) for name in avoided]
    suitable_ones = suitable_servers(description, operation, now=NOW, deprioritized=deprioritized)
    in_window = select_servers(
        description, operation, now=NOW, local_threshold=threshold, deprioritized=deprioritized
    )
    assert set(in_window) <= set(suitable_ones) <= set(description.servers.values())
    assert all(s.is_known for s in suitable_ones)
    if suitable_ones:
        assert in_window  # the fastest suitable server is always in the window
    if operation == "write" and kind is not TopologyType.Single:
        # A single server takes every operation (the spec's direct connection); otherwise only
        # servers that accept writes are chosen for writes.
        assert all(s.is_writable for s in suitable_ones)

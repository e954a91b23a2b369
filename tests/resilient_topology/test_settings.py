from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_topology import TopologyType
from resilient_topology.address import Address
from resilient_topology.errors import ConfigurationError
from resilient_topology.settings import TopologySettings


def test_uri_seeds_and_options() -> None:
    settings = TopologySettings.from_uri(
        "mongodb://user:secret@A:1,b/db?replicaSet=rs&localThresholdMS=20&heartbeatFrequencyMS=600"
    )
    assert settings.seeds == (Address("a", 1), Address("b", 27017))
    assert settings.replica_set_name == "rs"
    assert settings.local_threshold == pytest.approx(0.02)
    assert settings.heartbeat_frequency == pytest.approx(0.6)
    assert settings.initial_topology_type is TopologyType.ReplicaSetNoPrimary


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mongodb://a", TopologyType.Unknown),
        ("mongodb://a/?directConnection=true", TopologyType.Single),
        ("mongodb://a/?loadBalanced=true", TopologyType.LoadBalanced),
        ("mongodb://a,b/?directConnection=false", TopologyType.Unknown),
    ],
)
def test_initial_topology_type(uri: str, expected: TopologyType) -> None:
    assert TopologySettings.from_uri(uri).initial_topology_type is expected


@pytest.mark.parametrize(
    "uri",
    [
        "http://a",
        "mongodb+srv://cluster.example.com",
        "mongodb://a,b/?directConnection=true",
        "mongodb://a,b/?loadBalanced=true",
        "mongodb://a/?loadBalanced=true&replicaSet=rs",
        "mongodb://a/?directConnection=maybe",
        "mongodb://a/?localThresholdMS=-1",
        "mongodb://a/?heartbeatFrequencyMS=10",
        "mongodb://a:notaport",
        "mongodb://",
    ],
)
def test_bad_uris_raise_configuration_error(uri: str) -> None:
    with pytest.raises(ConfigurationError):
        TopologySettings.from_uri(uri)


def test_errors_never_echo_credentials() -> None:
    with pytest.raises(ConfigurationError) as info:
        TopologySettings.from_uri("mongodb://admin:hunter2@a:xx")
    assert "hunter2" not in str(info.value)


def test_duplicate_seeds_collapse() -> None:
    settings = TopologySettings.of(["a", "A:27017", "b"])
    assert settings.seeds == (Address("a", 27017), Address("b", 27017))


@given(st.text(max_size=60))
def test_random_uris_only_raise_configuration_errors(tail: str) -> None:
    try:
        settings = TopologySettings.from_uri("mongodb://" + tail)
    except ConfigurationError:
        return
    assert settings.seeds

"""Seed lists and the wait's bound, from the same arguments pymongo takes."""

from __future__ import annotations

from typing import Any

import pymo.seeds
import pytest
from pymo import DEFAULT_FAIL_FAST_TIMEOUT
from pymo.errors import PymoConfigurationError
from pymo.seeds import plan_client

from resilient_topology import Address


def test_host_strings_lists_and_the_default_port() -> None:
    plan = plan_client(("a", 1234), {}, None)
    assert plan.settings.seeds == (Address("a", 1234),)
    plan = plan_client((), {"host": ["a:1", "b"]}, None)
    assert plan.settings.seeds == (Address("a", 1), Address("b", 27017))
    assert plan_client((), {}, None).settings.seeds == (Address("localhost", 27017),)


def test_uri_options_are_honoured_and_keywords_win() -> None:
    uri = "mongodb://u:p@a:1,b:2/db?replicaSet=rs0&serverSelectionTimeoutMS=1500"
    plan = plan_client((uri,), {}, None)
    assert plan.settings.seeds == (Address("a", 1), Address("b", 2))
    assert plan.settings.replica_set_name == "rs0"
    assert plan.timeout == 1.5
    assert plan_client((uri,), {"serverSelectionTimeoutMS": 250}, None).timeout == 0.25
    assert plan_client((uri,), {"serverselectiontimeoutms": 250}, 9).timeout == 9.0


def test_default_bound() -> None:
    assert plan_client(("a",), {}, None).timeout == DEFAULT_FAIL_FAST_TIMEOUT


def test_connect_is_forced_positionally_and_by_keyword() -> None:
    plan = plan_client(("a", 1, dict, False, False), {}, None)
    assert plan.args[4] is True
    assert "connect" not in plan.kwargs
    assert plan_client(("a",), {"connect": False}, None).kwargs["connect"] is True


def test_srv_uri_yields_the_resolved_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def fake_parse_uri(uri: str, port: int, **kwargs: Any) -> dict[str, Any]:
        calls.append({"uri": uri, **kwargs})
        return {"nodelist": [("h1.example.com", 27017), ("h2.example.com", 27018)], "options": {}}

    monkeypatch.setattr(pymo.seeds, "parse_uri", fake_parse_uri)
    plan = plan_client(("mongodb+srv://cluster.example.com/",), {"srvServiceName": "db"}, None)
    assert plan.settings.seeds == (
        Address("h1.example.com", 27017),
        Address("h2.example.com", 27018),
    )
    assert calls[0]["srv_service_name"] == "db"


def test_an_srv_record_without_seeds_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pymo.seeds, "parse_uri", lambda *a, **k: {"nodelist": [], "options": {}})
    with pytest.raises(PymoConfigurationError, match="no seed"):
        plan_client(("mongodb+srv://cluster.example.com/",), {}, None)


@pytest.mark.parametrize(
    ("args", "kwargs", "timeout"),
    [
        (("mongodb://u:secret@a:notaport/",), {}, None),
        (("a",), {"loadBalanced": True}, None),
        (("a,b",), {"directConnection": True}, None),
        (("a",), {}, -1),
        (("a",), {}, float("inf")),
        (("a",), {"serverSelectionTimeoutMS": "soon"}, None),
        ((42,), {}, None),
        (("a", "27017"), {}, None),
    ],
)
def test_unusable_arguments_are_refused_without_echoing_credentials(
    args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None
) -> None:
    with pytest.raises(PymoConfigurationError) as caught:
        plan_client(args, kwargs, timeout)
    assert "secret" not in str(caught.value)

"""``pymo.mongo_client`` with real pymongo against clustersim and closed loopback ports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pymo
import pytest
from clustersim.mongo import ReplicaSet, Router, Standalone
from pymo import SERVER_STATE_SELECTORS as STATE
from pymo import SERVER_TYPE_SELECTORS as TYPE
from pymo.errors import ServerSelectionTryOnceTimeoutError
from pymongo import MongoClient, monitoring

BOUND = 20.0  # generous: refused and answering seeds decide long before it


def check(*args: Any, **kwargs: Any) -> MongoClient[Any]:
    kwargs.setdefault("fail_fast_timeout", BOUND)
    return pymo.mongo_client(*args, **kwargs)


def fails(*args: Any, **kwargs: Any) -> ServerSelectionTryOnceTimeoutError:
    with pytest.raises(ServerSelectionTryOnceTimeoutError) as caught:
        check(*args, **kwargs)
    # Decided by the replies themselves, not by running out the 20 s bound.
    assert "on the first heartbeats" in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    "selectors",
    [
        {},
        {"state_selectors": STATE.Writable},
        {"state_selectors": [STATE.Readable]},
        {"type_selectors": TYPE.RSPrimary},
        {"type_selectors": [TYPE.RSSecondary, TYPE.Mongos]},
    ],
)
def test_a_healthy_replica_set_passes(rs: ReplicaSet, selectors: dict[str, Any]) -> None:
    client = check(rs.uri, **selectors)
    try:
        assert isinstance(client, MongoClient)
        assert client.admin.command("ping")["ok"] == 1
    finally:
        client.close()


def test_standalone_and_mongos_types_and_positional_arguments() -> None:
    with Standalone() as single:
        host, port = single.addresses[0].rsplit(":", 1)
        client = check(host, int(port), type_selectors=TYPE.Standalone)
        client.close()
        fails(single.uri, type_selectors=TYPE.Mongos)
    with Router() as router:
        check(router.uri, type_selectors=TYPE.Mongos, state_selectors=STATE.Writable).close()
        fails(router.uri, type_selectors=TYPE.RSPrimary)


def test_every_seed_refused_fails_at_once_without_threads_or_credentials(
    closed_port: Callable[[], int], no_thread_left: None
) -> None:
    ports = [closed_port(), closed_port()]
    uri = f"mongodb://admin:s3cr3t@127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}/?authSource=admin"
    # Without selectors the first refusal decides; a seed not heard from yet is named as such.
    error = fails(uri)
    assert "Connection refused" in str(error)
    for port in ports:
        assert f"127.0.0.1:{port}: " in str(error)
    assert "s3cr3t" not in str(error)
    assert "admin:" not in str(error)
    # With a selector every seed must answer first, so each one is listed with its error.
    error = fails(uri, state_selectors=STATE.Readable)
    for port in ports:
        assert f"127.0.0.1:{port}: error:" in str(error)
    assert "s3cr3t" not in repr(error)


def test_one_seed_down_among_several(rs: ReplicaSet, closed_port: Callable[[], int]) -> None:
    down = f"127.0.0.1:{closed_port()}"
    hosts = [down, *rs.addresses]
    check(hosts, replicaSet="rs0", state_selectors=STATE.Writable).close()
    error = fails(hosts, replicaSet="rs0")  # without selectors every seed must answer
    assert f"{down}: error:" in str(error)
    assert error.seeds[next(iter(error.seeds))].status == "failed"


def test_a_killed_secondary_fails_only_the_selectorless_check(rs: ReplicaSet) -> None:
    secondary = next(i for i in range(3) if i != rs.primary)
    rs.kill(secondary)
    check(rs.uri, state_selectors=STATE.Writable).close()
    error = fails(rs.uri)
    assert f"{rs.addresses[secondary]}: error:" in str(error)


def test_no_primary_during_an_election_fails_as_soon_as_every_seed_answered(
    rs: ReplicaSet, no_thread_left: None
) -> None:
    rs.election_delay = 5
    rs.step_down()
    error = fails(rs.uri, state_selectors=STATE.Writable)
    assert str(error).count("RSSecondary") == 3
    check(rs.uri, state_selectors=STATE.Readable).close()


def test_members_discovered_through_a_seed_do_not_count(rs: ReplicaSet) -> None:
    secondary = next(i for i in range(3) if i != rs.primary)
    uri = f"mongodb://{rs.addresses[secondary]}/?replicaSet=rs0"
    error = fails(uri, type_selectors=TYPE.RSPrimary)
    assert list(map(str, error.seeds)) == [rs.addresses[secondary]]
    fails(uri, state_selectors=STATE.Writable)
    check(uri, type_selectors=TYPE.RSSecondary).close()


def test_silent_seeds_fail_at_the_bound(rs: ReplicaSet, no_thread_left: None) -> None:
    for member in range(3):
        rs.partition(member)
    with pytest.raises(ServerSelectionTryOnceTimeoutError) as caught:
        pymo.mongo_client(rs.uri, serverSelectionTimeoutMS=300)
    assert "within 0.3 s" in str(caught.value)
    assert str(caught.value).count("no answer") == 3
    assert caught.value.fail_fast_timeout == 0.3


def test_fail_fast_false_gives_a_plain_lazy_client(closed_port: Callable[[], int]) -> None:
    client = pymo.mongo_client(f"127.0.0.1:{closed_port()}", fail_fast=False, connect=False)
    assert type(client) is MongoClient
    client.close()


def test_the_users_event_listeners_still_hear_heartbeats(rs: ReplicaSet) -> None:
    heard: list[object] = []

    class Recorder(monitoring.ServerHeartbeatListener):
        def started(self, event: monitoring.ServerHeartbeatStartedEvent) -> None:
            heard.append(event)

        def succeeded(self, event: monitoring.ServerHeartbeatSucceededEvent) -> None:
            heard.append(event)

        def failed(self, event: monitoring.ServerHeartbeatFailedEvent) -> None:
            heard.append(event)

    check(rs.uri, event_listeners=[Recorder()]).close()
    assert heard

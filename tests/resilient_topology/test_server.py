from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_topology import ServerType
from resilient_topology.address import Address
from resilient_topology.errors import InvalidHelloReply, RemoteProtocolError
from resilient_topology.server import ServerDescription, TopologyVersion, object_id_bytes

A = Address("a", 27017)


def describe(reply: dict[str, Any]) -> ServerDescription:
    return ServerDescription.from_hello(A, reply, round_trip_time=0.01, now=5.0)


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ({"ok": 1, "isWritablePrimary": True}, ServerType.Standalone),
        ({"ok": 1, "msg": "isdbgrid"}, ServerType.Mongos),
        ({"ok": 1, "isreplicaset": True}, ServerType.RSGhost),
        ({"ok": 1, "setName": "rs", "isWritablePrimary": True}, ServerType.RSPrimary),
        ({"ok": 1, "setName": "rs", "ismaster": True}, ServerType.RSPrimary),
        ({"ok": 1, "setName": "rs", "secondary": True}, ServerType.RSSecondary),
        ({"ok": 1, "setName": "rs", "arbiterOnly": True}, ServerType.RSArbiter),
        ({"ok": 1, "setName": "rs", "hidden": True, "secondary": True}, ServerType.RSOther),
        ({"ok": 1, "setName": "rs"}, ServerType.RSOther),
        ({"ok": 1, "serviceId": b"\x01" * 12}, ServerType.LoadBalancer),
        ({"ok": 0, "errmsg": "auth failed"}, ServerType.Unknown),
    ],
)
def test_server_type_from_reply(reply: dict[str, Any], kind: ServerType) -> None:
    assert describe(reply).server_type is kind


def test_fields_are_parsed_and_normalised() -> None:
    when = datetime(2024, 1, 1, tzinfo=UTC)
    server = describe(
        {
            "ok": 1.0,
            "setName": "rs",
            "secondary": True,
            "hosts": ["A:27017", "b:1"],
            "passives": ["c"],
            "arbiters": ["[::1]:2"],
            "me": "A",
            "primary": "b:1",
            "tags": {"dc": "east"},
            "setVersion": 3,
            "electionId": "000000000000000000000007",
            "minWireVersion": 0,
            "maxWireVersion": 21,
            "logicalSessionTimeoutMinutes": 30,
            "topologyVersion": {"processId": b"\x00" * 12, "counter": 4},
            "lastWrite": {"lastWriteDate": when},
        }
    )
    assert server.hosts == {A, Address("b", 1)}
    assert server.all_hosts == {A, Address("b", 1), Address("c", 27017), Address("::1", 2)}
    assert server.me == A
    assert server.primary == Address("b", 1)
    assert server.election_id == bytes.fromhex("000000000000000000000007")
    assert server.topology_version == TopologyVersion(b"\x00" * 12, 4)
    assert server.last_write_date == when.timestamp()
    assert server.is_readable
    assert not server.is_writable
    assert server.round_trip_time == 0.01
    assert server.last_update_time == 5.0


def test_equality_ignores_timings() -> None:
    reply = {"ok": 1, "setName": "rs", "secondary": True}
    one = ServerDescription.from_hello(A, reply, round_trip_time=0.01, now=1.0)
    two = ServerDescription.from_hello(A, reply, round_trip_time=0.5, now=9.0)
    assert one == two
    assert one != describe({"ok": 1, "setName": "rs", "secondary": True, "tags": {"x": "y"}})


@pytest.mark.parametrize(
    "reply",
    [
        {"ok": 1, "hosts": "a:1"},
        {"ok": 1, "hosts": [1]},
        {"ok": 1, "hosts": ["a:b"]},
        {"ok": 1, "setName": 5},
        {"ok": 1, "maxWireVersion": "21"},
        {"ok": 1, "maxWireVersion": True},
        {"ok": 1, "tags": {"a": 1}},
        {"ok": 1, "electionId": "zz"},
        {"ok": 1, "topologyVersion": {"processId": "x", "counter": 1}},
        {"ok": 1, "topologyVersion": {"processId": b"\x00" * 12, "counter": "1"}},
        {"ok": 1, "lastWrite": {"lastWriteDate": 12}},
        {"ok": 1, "me": "::1"},
    ],
)
def test_malformed_replies_raise_typed_errors(reply: dict[str, Any]) -> None:
    with pytest.raises(InvalidHelloReply) as info:
        describe(reply)
    assert isinstance(info.value, RemoteProtocolError)
    assert isinstance(info.value, ValueError)


def test_not_a_mapping() -> None:
    with pytest.raises(InvalidHelloReply):
        ServerDescription.from_hello(A, ["ok"], round_trip_time=None, now=0.0)  # type: ignore[arg-type]


def test_object_id_forms() -> None:
    class FakeObjectId:
        binary = b"\x01" * 12

    assert object_id_bytes(FakeObjectId()) == b"\x01" * 12
    assert object_id_bytes("01" * 12) == b"\x01" * 12
    with pytest.raises(ValueError, match="ObjectId"):
        object_id_bytes(b"short")


def test_unknown_keeps_error_text() -> None:
    server = ServerDescription.unknown(A, ConnectionRefusedError("refused"))
    assert server.error == "ConnectionRefusedError: refused"
    assert not server.is_known


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
hello_keys = st.sampled_from(
    [
        "ok",
        "hosts",
        "passives",
        "arbiters",
        "setName",
        "me",
        "primary",
        "tags",
        "setVersion",
        "electionId",
        "topologyVersion",
        "lastWrite",
        "minWireVersion",
        "maxWireVersion",
        "logicalSessionTimeoutMinutes",
        "isWritablePrimary",
        "secondary",
        "msg",
        "serviceId",
    ]
)


@given(st.dictionaries(hello_keys, json_values, max_size=8))
def test_random_replies_only_raise_invalid_hello(reply: dict[str, Any]) -> None:
    reply.setdefault("ok", 1)
    try:
        server = describe(reply)
    except InvalidHelloReply:
        return
    assert server.address == A

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_topology.address import Address, parse_address
from resilient_topology.errors import ConfigurationError, InvalidAddress


@pytest.mark.parametrize(
    ("text", "host", "port", "rendered"),
    [
        ("a", "a", 27017, "a:27017"),
        ("A.Example.COM:27018", "a.example.com", 27018, "a.example.com:27018"),
        ("[::1]", "::1", 27017, "[::1]:27017"),
        ("[0:0:0:0:0:0:0:1]:5", "::1", 5, "[::1]:5"),
        ("[FE80::1]:27017", "fe80::1", 27017, "[fe80::1]:27017"),
        ("/tmp/mongodb-27017.sock", "/tmp/mongodb-27017.sock", None, "/tmp/mongodb-27017.sock"),
        ("127.0.0.1:1", "127.0.0.1", 1, "127.0.0.1:1"),
    ],
)
def test_parse_normalises(text: str, host: str, port: int | None, rendered: str) -> None:
    address = parse_address(text)
    assert (address.host, address.port) == (host, port)
    assert str(address) == rendered
    assert parse_address(str(address)) == address


@pytest.mark.parametrize(
    "text",
    [
        "",
        " a",
        "a:",
        "a:b",
        "a:0",
        "a:65536",
        "[::1",
        "::1",
        "[zz]:1",
        "a b",
        "a/b:1",
        "[::1]x",
        "a:-1",
    ],
)
def test_bad_addresses_raise_typed_errors(text: str) -> None:
    with pytest.raises(InvalidAddress) as info:
        parse_address(text)
    assert isinstance(info.value, ConfigurationError)
    assert isinstance(info.value, ValueError)


def test_default_port_is_per_protocol() -> None:
    assert parse_address("node", default_port=2113) == Address("node", 2113)


def test_of_accepts_pairs_and_addresses() -> None:
    assert Address.of(("HOST", 1)) == Address("host", 1)
    assert Address.of(("host", None)) == Address("host", 27017)
    assert Address.of(Address("x", 2)) == Address("x", 2)
    with pytest.raises(InvalidAddress):
        Address.of(42)  # type: ignore[arg-type]


def test_constructor_validates() -> None:
    with pytest.raises(InvalidAddress):
        Address("", 1)
    with pytest.raises(InvalidAddress):
        Address("a", True)
    with pytest.raises(InvalidAddress):
        Address("a", None)


@given(st.text(max_size=40))
def test_random_text_parses_or_raises_invalid_address(text: str) -> None:
    try:
        address = parse_address(text)
    except InvalidAddress:
        return
    assert parse_address(str(address)) == address

"""``python -m clustersim mongo``: serve until a signal, print the URI first, fail clearly."""

from __future__ import annotations

import signal
import socket
import sys
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pymongo import MongoClient

from ._cli import START_TIMEOUT, STOP_TIMEOUT, clustersim, first_line, stop

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def check_uri(uri: str, hosts: int) -> None:
    parts = urlsplit(uri)
    assert parts.scheme == "mongodb", uri
    listed = parts.netloc.split(",")
    assert len(listed) == hosts, uri
    for host in listed:
        name, port = host.rsplit(":", 1)
        assert name == "127.0.0.1", uri
        assert 0 < int(port) < 65_536, uri
    assert parse_qs(parts.query)["replicaSet"] == ["rs0"], uri


def round_trip(uri: str) -> None:
    with MongoClient[dict[str, Any]](uri, serverSelectionTimeoutMS=5000) as client:
        coll = client.cli[f"c_{uuid.uuid4().hex[:8]}"]
        inserted = coll.insert_one({"hello": "world"}).inserted_id
        found = coll.find_one({"_id": inserted})
    assert found == {"_id": inserted, "hello": "world"}


@pytest.mark.parametrize(
    ("args", "hosts", "signum"),
    [
        (["--members", "3"], 3, signal.SIGTERM),
        (["--polling", "--members", "1"], 1, signal.SIGINT),
    ],
    ids=["streaming-sigterm", "polling-sigint"],
)
def test_serves_until_signalled(args: list[str], hosts: int, signum: signal.Signals) -> None:
    with clustersim("mongo", *args) as proc:
        uri = first_line(proc)
        check_uri(uri, hosts)
        round_trip(uri)
        code, err = stop(proc, signum)
    assert code == 0, err
    assert "member 0" in err  # the human description went to stderr, not stdout


def test_bad_member_count_is_an_argument_error() -> None:
    with clustersim("mongo", "--members", "0") as proc:
        out, err = proc.communicate(timeout=STOP_TIMEOUT)
    assert proc.returncode in (1, 2)
    assert out == ""
    assert "--members" in err


def test_port_in_use_exits_with_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with clustersim("mongo", "--members", "1", "--port", str(port)) as proc:
            out, err = proc.communicate(timeout=START_TIMEOUT)
    assert proc.returncode == 1, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(port) in lines[0]
    assert "in use" in lines[0]

"""``python -m clustersim eventstore``: addresses first, served until a signal, clear failures."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from resilient_topology.eventstore.framing import Frame, FrameDecoder, encode_frame

from .._cli import START_TIMEOUT, STOP_TIMEOUT, first_line, stop
from .._cli import clustersim as _clustersim
from ._raw import C, parse_address

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@contextmanager
def clustersim(*args: str) -> Iterator[subprocess.Popen[str]]:
    """``python -m clustersim eventstore ...`` as a child process, killed on the way out."""
    with _clustersim("eventstore", *args) as proc:
        yield proc


def check_addresses(addresses: object, count: int) -> list[str]:
    assert isinstance(addresses, list)
    assert len(addresses) == count
    for address in addresses:
        assert isinstance(address, str)
        host, port = parse_address(address)
        assert host == "127.0.0.1"
        assert 0 < port < 65_536
    return addresses


def ping(address: str) -> None:
    correlation_id = uuid.uuid4()
    with socket.create_connection(parse_address(address), timeout=STOP_TIMEOUT) as sock:
        sock.sendall(encode_frame(Frame(C.Ping, correlation_id)))
        decoder = FrameDecoder()
        while True:
            data = sock.recv(65536)
            assert data, "closed before the pong"
            for frame in decoder.feed(data):
                if frame.correlation_id == correlation_id:
                    assert frame.command == C.Pong
                    return


def gossip_states(seed: str) -> list[str]:
    host, port = parse_address(seed)
    with socket.create_connection((host, port), timeout=STOP_TIMEOUT) as sock:
        sock.sendall(f"GET /gossip HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        response = b""
        while data := sock.recv(65536):
            response += data
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")), head
    return [member["state"] for member in json.loads(body)["members"]]


@pytest.mark.parametrize(
    ("args", "nodes", "leader", "signum"),
    [
        (["--nodes", "3"], 3, "Master", signal.SIGTERM),
        (["--nodes", "1", "--gossip", "v20"], 1, "Leader", signal.SIGINT),
    ],
    ids=["v5-sigterm", "v20-sigint"],
)
def test_serves_until_signalled(
    args: list[str], nodes: int, leader: str, signum: signal.Signals
) -> None:
    with clustersim(*args) as proc:
        line = json.loads(first_line(proc))
        assert set(line) == {"tcp", "gossip"}
        tcp = check_addresses(line["tcp"], nodes)
        seeds = check_addresses(line["gossip"], nodes)
        for address in tcp:
            ping(address)
        assert gossip_states(seeds[-1])[0] == leader
        code, err = stop(proc, signum)
    assert code == 0, err
    assert "eventstore node 0" in err  # the human description went to stderr, not stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--nodes", "0"],
        ["--nodes", "6"],
        ["--nodes", "three"],
        ["--gossip", "v6"],
        ["--tcp-port", "70000"],
        ["--nodes", "3", "--http-port", "65534"],
        ["--bogus"],
    ],
    ids=["zero", "six", "not-a-number", "gossip", "port", "no-room", "unknown-option"],
)
def test_bad_arguments_exit_with_2(args: list[str]) -> None:
    with clustersim(*args) as proc:
        out, err = proc.communicate(timeout=START_TIMEOUT)
    assert proc.returncode == 2, err
    assert out == ""
    assert "usage:" in err


def test_port_in_use_exits_with_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with clustersim("--nodes", "1", "--tcp-port", str(port)) as proc:
            out, err = proc.communicate(timeout=START_TIMEOUT)
    assert proc.returncode == 1, err
    assert out == ""
    assert "cannot start" in err

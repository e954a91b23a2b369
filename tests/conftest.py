"""Settings shared by every test folder: markers and a guard against leaving the machine.

Unit and spec tests may talk to loopback servers they start themselves (127.0.0.0/8, ::1,
``localhost``, Unix sockets) and nothing else. A connection anywhere else fails the test with
``pytest.fail``, which ``except Exception`` in the code under test cannot swallow. Tests under
``tests/integration/`` and tests marked ``network`` are exempt.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a test that takes seconds rather than milliseconds")
    config.addinivalue_line("markers", "network: may connect beyond loopback (exempt from guard)")


def _is_loopback(family: int, address: Any) -> bool:
    if family == getattr(socket, "AF_UNIX", object()):
        return True
    host = address[0] if isinstance(address, tuple) else address
    if not isinstance(host, str):
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:  # a host name other than localhost
        return False


def _guarded(original: Callable[..., Any]) -> Callable[..., Any]:
    def connect(self: socket.socket, address: Any) -> Any:
        if not _is_loopback(self.family, address):
            pytest.fail(f"unit tests may only connect to loopback, not {address!r}", pytrace=False)
        return original(self, address)

    return connect


@pytest.fixture(autouse=True)
def _loopback_only(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    path = request.node.path.resolve()
    exempt = request.node.get_closest_marker("network") is not None or (
        path.is_relative_to(TESTS_DIR / "integration")
    )
    if not exempt:
        monkeypatch.setattr(socket.socket, "connect", _guarded(socket.socket.connect))
        monkeypatch.setattr(socket.socket, "connect_ex", _guarded(socket.socket.connect_ex))

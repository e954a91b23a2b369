"""Server addresses: parsing and normalisation.

An :class:`Address` is the key of every map in the core. Hosts are lower-cased (DNS names are
case-insensitive and the SDAM spec compares them that way), ports default per protocol, and IPv6
literals are written in brackets with their canonical compressed form.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .errors import InvalidAddress

__all__ = ["MONGODB_DEFAULT_PORT", "Address", "parse_address"]

MONGODB_DEFAULT_PORT = 27017
_MAX_HOST_LENGTH = 255


@dataclass(frozen=True, slots=True, order=True)
class Address:
    """A normalised ``host`` and ``port``; ``port`` is ``None`` only for a Unix socket path."""

    host: str
    port: int | None

    def __post_init__(self) -> None:
        host: object = self.host  # validated at run time: callers may pass anything
        if not isinstance(host, str) or not host:
            raise InvalidAddress(f"host must be a non-empty string, got {self.host!r}")
        if self.port is None:
            if not _is_socket_path(self.host):
                raise InvalidAddress(f"address {self.host!r} has no port")
        elif isinstance(self.port, bool) or not isinstance(self.port, int):
            raise InvalidAddress(f"port must be an integer, got {self.port!r}")
        elif not 0 < self.port < 65536:
            raise InvalidAddress(f"port {self.port} is outside 1-65535")

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host and not _is_socket_path(self.host)

    def __str__(self) -> str:
        if self.port is None:
            return self.host
        if self.is_ipv6:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"

    def as_tuple(self) -> tuple[str, int | None]:
        """The ``(host, port)`` pair sockets and pymongo use."""
        return (self.host, self.port)

    @classmethod
    def of(
        cls, value: Address | str | tuple[str, int | None], default_port: int = MONGODB_DEFAULT_PORT
    ) -> Address:
        """Accept an :class:`Address`, a ``"host:port"`` string or a ``(host, port)`` pair."""
        if isinstance(value, Address):
            return value
        if isinstance(value, str):
            return parse_address(value, default_port)
        candidate: object = value
        if isinstance(candidate, tuple) and len(candidate) == 2:
            host, port = candidate
            if not isinstance(host, str):
                raise InvalidAddress(f"host must be a string, got {host!r}")
            if port is None and not _is_socket_path(host):
                port = default_port
            if port is not None and not isinstance(port, int):
                raise InvalidAddress(f"port must be an integer, got {port!r}")
            return cls(_normalise_host(host.strip("[]") if host.startswith("[") else host), port)
        raise InvalidAddress(f"cannot make an address from {value!r}")


def parse_address(text: str, default_port: int = MONGODB_DEFAULT_PORT) -> Address:
    """Parse ``host``, ``host:port``, ``[ipv6]`` or ``[ipv6]:port`` into an :class:`Address`.

    Raises :class:`InvalidAddress` naming what is wrong; never guesses.
    """
    if not isinstance(text, str):
        raise InvalidAddress(f"address must be a string, got {type(text).__name__}")
    if not text or text != text.strip():
        raise InvalidAddress(f"address {text!r} is empty or has surrounding whitespace")
    if _is_socket_path(text):
        return Address(text, None)
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise InvalidAddress(f"address {text!r} has an unclosed '[' for its IPv6 literal")
        host = text[1:close]
        rest = text[close + 1 :]
        if rest and not rest.startswith(":"):
            raise InvalidAddress(f"address {text!r} has text after its IPv6 literal")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InvalidAddress(f"address {text!r} holds an invalid IPv6 literal") from None
        port_text = rest[1:] if rest else None
    elif text.count(":") > 1:
        raise InvalidAddress(f"address {text!r}: write an IPv6 literal in brackets, as [::1]:27017")
    elif ":" in text:
        host, port_text = text.split(":", 1)
    else:
        host, port_text = text, None
    port = default_port if port_text is None else _parse_port(port_text, text)
    return Address(_normalise_host(host), port)


def _parse_port(port_text: str, whole: str) -> int:
    if not port_text.isascii() or not port_text.isdigit():
        raise InvalidAddress(f"address {whole!r} has a port that is not a number")
    port = int(port_text)
    if not 0 < port < 65536:
        raise InvalidAddress(f"address {whole!r} has port {port}, outside 1-65535")
    return port


def _normalise_host(host: str) -> str:
    if not host:
        raise InvalidAddress("address has an empty host")
    if len(host) > _MAX_HOST_LENGTH:
        raise InvalidAddress(f"host of {len(host)} characters is longer than {_MAX_HOST_LENGTH}")
    if any(ch.isspace() or ch in "/?#@[]," for ch in host) or not host.isprintable():
        raise InvalidAddress(f"host {host!r} holds characters a host name cannot have")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host).compressed
        except ValueError:
            raise InvalidAddress(f"host {host!r} is not a valid IPv6 literal") from None
    return host.lower()


def _is_socket_path(text: str) -> bool:
    return text.endswith(".sock") and "/" in text

"""How a topology is to be discovered: seeds and the options that shape discovery.

:func:`TopologySettings.from_uri` reads the parts of a ``mongodb://`` URI that matter to
discovery and selection. Resolving ``mongodb+srv://`` needs DNS, which the pure core does not do:
a driver resolves it and passes the seeds in. Credentials in a URI are never echoed in errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

from ._types import TopologyType
from .address import Address, parse_address
from .errors import ConfigurationError, InvalidAddress

__all__ = [
    "DEFAULT_HEARTBEAT_FREQUENCY",
    "DEFAULT_LOCAL_THRESHOLD",
    "MAX_SUPPORTED_WIRE_VERSION",
    "MIN_SUPPORTED_WIRE_VERSION",
    "TopologySettings",
]

MIN_SUPPORTED_WIRE_VERSION = 8  # MongoDB 4.2
MAX_SUPPORTED_WIRE_VERSION = 29
DEFAULT_LOCAL_THRESHOLD = 0.015
DEFAULT_HEARTBEAT_FREQUENCY = 10.0
DEFAULT_SERVER_SELECTION_TIMEOUT = 30.0
MIN_HEARTBEAT_FREQUENCY = 0.5


@dataclass(frozen=True, slots=True)
class TopologySettings:
    """Seeds and discovery options. Durations are in seconds.

    ``direct_connection`` is ``None`` when the user did not say: the spec then discovers the
    deployment from the seeds.
    """

    seeds: tuple[Address, ...]
    replica_set_name: str | None = None
    direct_connection: bool | None = None
    load_balanced: bool = False
    local_threshold: float = DEFAULT_LOCAL_THRESHOLD
    heartbeat_frequency: float = DEFAULT_HEARTBEAT_FREQUENCY
    server_selection_timeout: float = DEFAULT_SERVER_SELECTION_TIMEOUT
    min_wire_version: int = MIN_SUPPORTED_WIRE_VERSION
    max_wire_version: int = MAX_SUPPORTED_WIRE_VERSION

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ConfigurationError("at least one seed address is needed")
        if len(set(self.seeds)) != len(self.seeds):
            object.__setattr__(self, "seeds", tuple(dict.fromkeys(self.seeds)))
        if self.direct_connection and len(self.seeds) > 1:
            raise ConfigurationError("directConnection=true allows exactly one seed")
        if self.load_balanced:
            if len(self.seeds) > 1:
                raise ConfigurationError("loadBalanced=true allows exactly one host")
            if self.replica_set_name is not None:
                raise ConfigurationError("loadBalanced=true cannot be combined with replicaSet")
            if self.direct_connection:
                raise ConfigurationError(
                    "loadBalanced=true cannot be combined with directConnection"
                )
        for name in ("local_threshold", "heartbeat_frequency", "server_selection_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ConfigurationError(f"{name} must be a finite number of seconds >= 0")
        if self.heartbeat_frequency < MIN_HEARTBEAT_FREQUENCY:
            raise ConfigurationError(
                f"heartbeat_frequency must be at least {MIN_HEARTBEAT_FREQUENCY} s"
            )
        if self.min_wire_version > self.max_wire_version:
            raise ConfigurationError("min_wire_version is above max_wire_version")

    @property
    def initial_topology_type(self) -> TopologyType:
        if self.load_balanced:
            return TopologyType.LoadBalanced
        if self.direct_connection:
            return TopologyType.Single
        if self.replica_set_name is not None:
            return TopologyType.ReplicaSetNoPrimary
        return TopologyType.Unknown

    @classmethod
    def of(
        cls,
        seeds: str | Address | list[str | Address] | tuple[str | Address, ...],
        **options: object,
    ) -> TopologySettings:
        """Settings from one or several seeds given as strings or addresses."""
        items = [seeds] if isinstance(seeds, str | Address) else list(seeds)
        addresses = tuple(Address.of(item) for item in items)
        return cls(addresses, **options)  # type: ignore[arg-type]

    @classmethod
    def from_uri(cls, uri: str) -> TopologySettings:
        """Read seeds and discovery options from a ``mongodb://`` URI.

        Options the core does not use are ignored; the ones it uses are validated.
        """
        if not isinstance(uri, str):
            raise ConfigurationError("the URI must be a string")
        if uri.startswith("mongodb+srv://"):
            raise ConfigurationError(
                "mongodb+srv:// needs a DNS SRV lookup; resolve it in the driver and pass the seeds"
            )
        prefix = "mongodb://"
        if not uri.startswith(prefix):
            raise ConfigurationError("the URI must start with mongodb://")
        rest = uri[len(prefix) :]
        hosts_part, _, tail = rest.partition("/")
        hosts_part, question, query = hosts_part.partition("?")
        if question:
            tail = "?" + query
        if "@" in hosts_part:
            hosts_part = hosts_part.rpartition("@")[2]  # drop credentials; never echo them
        _, _, query = tail.partition("?")
        try:
            seeds = tuple(parse_address(unquote(h)) for h in hosts_part.split(","))
        except InvalidAddress as exc:
            raise ConfigurationError(f"the URI's host list is invalid: {exc}") from None
        return cls(seeds, **_options_from_query(query))


def _options_from_query(query: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for raw_key, value in parse_qsl(query, keep_blank_values=True):
        key = raw_key.lower()
        if key == "replicaset":
            if not value:
                raise ConfigurationError("replicaSet must not be empty")
            options["replica_set_name"] = value
        elif key == "directconnection":
            options["direct_connection"] = _boolean(raw_key, value)
        elif key == "loadbalanced":
            options["load_balanced"] = _boolean(raw_key, value)
        elif key == "localthresholdms":
            options["local_threshold"] = _milliseconds(raw_key, value)
        elif key == "heartbeatfrequencyms":
            options["heartbeat_frequency"] = _milliseconds(raw_key, value)
        elif key == "serverselectiontimeoutms":
            options["server_selection_timeout"] = _milliseconds(raw_key, value)
    return options


def _boolean(key: str, value: str) -> bool:
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise ConfigurationError(f"{key} must be true or false, got {value!r}")


def _milliseconds(key: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigurationError(f"{key} must be a number of milliseconds, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ConfigurationError(f"{key} must be a number of milliseconds >= 0")
    return number / 1000.0

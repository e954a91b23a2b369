"""Sans-I/O topology awareness for clustered datastores (MongoDB, EventStore).

The modules re-exported here do no I/O: they compute. Time comes in as a ``now`` argument,
replies come in as mappings, and state changes come out as new frozen values plus the events and
actions a driver should act on. The drivers (``resilient_topology.drivers``) and the pymongo
adapter (``resilient_topology.mongo``, with the ``mongo`` extra) are the only parts that touch
asyncio, threads or clocks.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._types import ServerType, TopologyType
from .address import Address, parse_address
from .errors import (
    ConfigurationError,
    ConnectionFailure,
    HeartbeatFailed,
    InvalidAddress,
    InvalidGossip,
    InvalidHelloReply,
    LocalProtocolError,
    ProtocolError,
    ReconnectExhausted,
    RemoteProtocolError,
    ServerSelectionError,
    ServerSelectionTimeout,
    TopologyError,
)
from .events import (
    ServerClosed,
    ServerDescriptionChanged,
    ServerHeartbeatFailed,
    ServerHeartbeatStarted,
    ServerHeartbeatSucceeded,
    ServerOpening,
    TopologyClosed,
    TopologyDescriptionChanged,
    TopologyOpening,
)
from .sdam import (
    ApplicationError,
    CheckNow,
    ClearPool,
    ErrorKind,
    HandshakePhase,
    StartMonitoring,
    StopMonitoring,
    TopologyState,
    Transition,
)
from .server import ServerDescription, TopologyVersion
from .settings import TopologySettings
from .topology import TopologyDescription, reduce

try:
    __version__ = version("resilient-topology")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = [
    "Address",
    "ApplicationError",
    "CheckNow",
    "ClearPool",
    "ConfigurationError",
    "ConnectionFailure",
    "ErrorKind",
    "HandshakePhase",
    "HeartbeatFailed",
    "InvalidAddress",
    "InvalidGossip",
    "InvalidHelloReply",
    "LocalProtocolError",
    "ProtocolError",
    "ReconnectExhausted",
    "RemoteProtocolError",
    "ServerClosed",
    "ServerDescription",
    "ServerDescriptionChanged",
    "ServerHeartbeatFailed",
    "ServerHeartbeatStarted",
    "ServerHeartbeatSucceeded",
    "ServerOpening",
    "ServerSelectionError",
    "ServerSelectionTimeout",
    "ServerType",
    "StartMonitoring",
    "StopMonitoring",
    "TopologyClosed",
    "TopologyDescription",
    "TopologyDescriptionChanged",
    "TopologyError",
    "TopologyOpening",
    "TopologySettings",
    "TopologyState",
    "TopologyType",
    "TopologyVersion",
    "Transition",
    "__version__",
    "parse_address",
    "reduce",
]

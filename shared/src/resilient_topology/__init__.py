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
from .backoff import DEFAULT_RETRY_POLICY, NO_RETRY, GiveUp, Retry, RetryPolicy, RetryState
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
from .heartbeat import HeartbeatTracker, SeedOutcome, moving_average_rtt
from .hooks import (
    HookRegistry,
    LeaderChanged,
    PrimaryChanged,
    Reconnected,
    ReconnectGivenUp,
    Reconnecting,
    ServerChanged,
    TopologyChanged,
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
from .selection import (
    ReadMode,
    ReadPreference,
    Selection,
    choose_in_window,
    select_server,
    select_servers,
    suitable_servers,
)
from .server import ServerDescription, TopologyVersion
from .settings import TopologySettings
from .topology import TopologyDescription, reduce

try:
    __version__ = version("resilient-topology")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = [
    "__version__",
    "Address",
    "ApplicationError",
    "CheckNow",
    "choose_in_window",
    "ClearPool",
    "ConfigurationError",
    "ConnectionFailure",
    "DEFAULT_RETRY_POLICY",
    "ErrorKind",
    "GiveUp",
    "HandshakePhase",
    "HeartbeatFailed",
    "HeartbeatTracker",
    "HookRegistry",
    "InvalidAddress",
    "InvalidGossip",
    "InvalidHelloReply",
    "LeaderChanged",
    "LocalProtocolError",
    "moving_average_rtt",
    "NO_RETRY",
    "parse_address",
    "PrimaryChanged",
    "ProtocolError",
    "ReadMode",
    "ReadPreference",
    "Reconnected",
    "ReconnectExhausted",
    "ReconnectGivenUp",
    "Reconnecting",
    "reduce",
    "RemoteProtocolError",
    "Retry",
    "RetryPolicy",
    "RetryState",
    "SeedOutcome",
    "select_server",
    "select_servers",
    "Selection",
    "ServerChanged",
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
    "suitable_servers",
    "TopologyChanged",
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
]

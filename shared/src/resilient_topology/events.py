"""SDAM monitoring events, as frozen values in the spec's vocabulary.

The core returns these from its state transitions; drivers hand them to listeners. Nothing is
published for a change that the spec's equality says is no change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .address import Address
from .server import ServerDescription
from .topology import TopologyDescription

__all__ = [
    "SdamEvent",
    "ServerClosed",
    "ServerDescriptionChanged",
    "ServerHeartbeatFailed",
    "ServerHeartbeatStarted",
    "ServerHeartbeatSucceeded",
    "ServerOpening",
    "TopologyClosed",
    "TopologyDescriptionChanged",
    "TopologyOpening",
]


@dataclass(frozen=True, slots=True)
class TopologyOpening:
    topology_id: str


@dataclass(frozen=True, slots=True)
class TopologyClosed:
    topology_id: str


@dataclass(frozen=True, slots=True)
class TopologyDescriptionChanged:
    topology_id: str
    previous: TopologyDescription
    new: TopologyDescription


@dataclass(frozen=True, slots=True)
class ServerOpening:
    topology_id: str
    address: Address


@dataclass(frozen=True, slots=True)
class ServerClosed:
    topology_id: str
    address: Address


@dataclass(frozen=True, slots=True)
class ServerDescriptionChanged:
    topology_id: str
    address: Address
    previous: ServerDescription
    new: ServerDescription


@dataclass(frozen=True, slots=True)
class ServerHeartbeatStarted:
    address: Address
    awaited: bool


@dataclass(frozen=True, slots=True)
class ServerHeartbeatSucceeded:
    address: Address
    duration: float
    reply: Mapping[str, Any]
    awaited: bool


@dataclass(frozen=True, slots=True)
class ServerHeartbeatFailed:
    address: Address
    duration: float
    error: str
    awaited: bool


SdamEvent = (
    TopologyOpening
    | TopologyClosed
    | TopologyDescriptionChanged
    | ServerOpening
    | ServerClosed
    | ServerDescriptionChanged
    | ServerHeartbeatStarted
    | ServerHeartbeatSucceeded
    | ServerHeartbeatFailed
)

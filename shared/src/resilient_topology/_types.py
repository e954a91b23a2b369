"""Kinds of servers and topologies, with the names the MongoDB specifications use."""

from __future__ import annotations

import enum

__all__ = ["ServerType", "TopologyType"]


class ServerType(enum.Enum):
    """What a monitored server is, as the SDAM spec names it."""

    Unknown = "Unknown"
    Standalone = "Standalone"
    Mongos = "Mongos"
    PossiblePrimary = "PossiblePrimary"
    RSPrimary = "RSPrimary"
    RSSecondary = "RSSecondary"
    RSArbiter = "RSArbiter"
    RSOther = "RSOther"
    RSGhost = "RSGhost"
    LoadBalancer = "LoadBalancer"

    @property
    def is_data_bearing(self) -> bool:
        return self in _DATA_BEARING

    @property
    def is_replica_set_member(self) -> bool:
        return self in _REPLICA_SET_MEMBERS


_DATA_BEARING = frozenset(
    {
        ServerType.Standalone,
        ServerType.Mongos,
        ServerType.RSPrimary,
        ServerType.RSSecondary,
        ServerType.LoadBalancer,
    }
)
_REPLICA_SET_MEMBERS = frozenset(
    {
        ServerType.RSPrimary,
        ServerType.RSSecondary,
        ServerType.RSArbiter,
        ServerType.RSOther,
        ServerType.RSGhost,
    }
)


class TopologyType(enum.Enum):
    """The shape of a deployment, as the SDAM spec names it."""

    Single = "Single"
    ReplicaSetNoPrimary = "ReplicaSetNoPrimary"
    ReplicaSetWithPrimary = "ReplicaSetWithPrimary"
    Sharded = "Sharded"
    Unknown = "Unknown"
    LoadBalanced = "LoadBalanced"

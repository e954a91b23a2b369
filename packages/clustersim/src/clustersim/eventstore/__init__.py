"""A simulated EventStore cluster speaking the legacy TCP client protocol and HTTP gossip."""

from .cluster import MAX_NODES, Cluster

__all__ = ["MAX_NODES", "Cluster"]

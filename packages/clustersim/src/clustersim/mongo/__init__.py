"""Simulated MongoDB deployments served on loopback to real drivers."""

from __future__ import annotations

from .replica_set import ReplicaSet, Router, Standalone
from .topology import MonitoringMode

__all__ = ["MonitoringMode", "ReplicaSet", "Router", "Standalone"]

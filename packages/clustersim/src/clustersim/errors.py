"""clustersim's errors, under the toolkit's one tree."""

from __future__ import annotations

from resilient_topology.errors import ConfigurationError, RemoteProtocolError, TopologyError

__all__ = ["ClustersimError", "SimulatorConfigurationError", "WireProtocolError"]


class ClustersimError(TopologyError):
    """Root of clustersim's errors."""


class SimulatorConfigurationError(ClustersimError, ConfigurationError):
    """A simulator asked for something it cannot be (0 members, a port in use, ...)."""


class WireProtocolError(ClustersimError, RemoteProtocolError):
    """A client sent bytes that are not a valid MongoDB wire message."""

"""Simulated datastore clusters on loopback, served to real, unmodified drivers.

``clustersim.mongo`` serves MongoDB standalones, replica sets and a mongos-like router that
pymongo and motor cannot tell from real ones within the documented fidelity, with faults to
inject: step-downs, kills, restarts, election windows, partitions, slow members, failpoints.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .errors import ClustersimError, WireProtocolError

try:
    __version__ = version("clustersim")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["ClustersimError", "WireProtocolError", "__version__"]

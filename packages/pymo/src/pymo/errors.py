"""pymo's errors: each is both a pymongo error and a toolkit error.

Code written against the original pymo (or plain pymongo) catches
``pymongo.errors.ServerSelectionTimeoutError``; code written against the toolkit catches
``resilient_topology.ServerSelectionTimeout`` or ``TopologyError``. Both keep working, because
every class here inherits from both trees::

    PymoError(resilient_topology.TopologyError)
    ├── ServerSelectionTryOnceTimeoutError(+ pymongo ServerSelectionTimeoutError,
    │                                        + resilient_topology.ServerSelectionTimeout)
    └── PymoConfigurationError(+ pymongo ConfigurationError,
                               + resilient_topology.ConfigurationError)

Messages name seeds by ``host:port`` only: credentials from a URI never reach them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

import pymongo.errors

from resilient_topology import Address, ConfigurationError, ServerSelectionTimeout, TopologyError

if TYPE_CHECKING:  # decision.py raises these errors; import its types for annotations only
    from .decision import SeedView

__all__ = ["PymoConfigurationError", "PymoError", "ServerSelectionTryOnceTimeoutError"]


class PymoError(TopologyError):
    """Root of every error pymo raises itself."""


class ServerSelectionTryOnceTimeoutError(
    PymoError, pymongo.errors.ServerSelectionTimeoutError, ServerSelectionTimeout
):
    """No seed suited the selectors on its first heartbeat (or within the fail-fast bound).

    ``seeds`` maps each seed to what became of it (its server type, its error, or no answer), in
    seed order; ``timeout`` is the bound that applied, in seconds.
    """

    def __init__(
        self,
        message: str,
        *,
        seeds: Mapping[Address, SeedView] | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(message)
        self.seeds: Mapping[Address, SeedView] = MappingProxyType(dict(seeds or {}))
        self.fail_fast_timeout = timeout


class PymoConfigurationError(PymoError, pymongo.errors.ConfigurationError, ConfigurationError):
    """Arguments from which no seed list (or no bounded wait) can be built."""

"""mongo_observer's errors: each is a toolkit error and, where one fits, a builtin.

ObserverError(resilient_topology.TopologyError)
└── MalformedChange(+ resilient_topology.RemoteProtocolError, a ValueError)
"""

from __future__ import annotations

from resilient_topology import TopologyError
from resilient_topology.errors import RemoteProtocolError

__all__ = ["MalformedChange", "ObserverError"]


class ObserverError(TopologyError):
    """Root of every error mongo_observer raises itself."""


class MalformedChange(ObserverError, RemoteProtocolError):
    """An oplog entry, update diff or change event does not have the shape the server logs.

    Raised instead of applying a change that could leave a replica silently wrong.
    """

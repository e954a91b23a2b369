"""Max staleness: how far a secondary is estimated to lag, and which limits a read may ask for.

The estimates follow the Max Staleness spec. Clocks are never compared across machines: with a
primary, a secondary is judged by how much further its last write lies behind *our* clock than
the primary's does; without one, by how far it trails the freshest secondary. Either way the
heartbeat frequency is added, because the server may stop replicating right after we checked it
and we will not know before the next check. All values are seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeAlias

from ._types import ServerType, TopologyType
from .errors import ConfigurationError
from .server import ServerDescription
from .topology import TopologyDescription

__all__ = [
    "IDLE_WRITE_PERIOD",
    "SMALLEST_MAX_STALENESS",
    "StalenessEstimator",
    "check_max_staleness",
    "estimate_staleness",
    "smallest_max_staleness",
    "staleness_estimator",
]

IDLE_WRITE_PERIOD = 10.0
"""An idle primary writes a no-op this often, bounding how stale an idle healthy secondary looks."""

SMALLEST_MAX_STALENESS = 90.0
"""The smallest limit a replica set accepts: smaller ones would send every read to the primary."""

BOUNDARY_SLACK = 1e-9
"""Durations come from millisecond clocks: this slack stops float rounding from deciding a tie."""

_REPLICA_SET_TYPES = frozenset(
    {TopologyType.ReplicaSetWithPrimary, TopologyType.ReplicaSetNoPrimary}
)

StalenessEstimator: TypeAlias = Callable[[ServerDescription], float | None]
"""Gives a server's estimated staleness in seconds, or ``None`` when it cannot be estimated."""


def smallest_max_staleness(heartbeat_frequency: float) -> float:
    """The smallest limit a replica set accepts with this heartbeat frequency.

    A limit must cover the idle write period plus one heartbeat, or an idle but healthy secondary
    would be judged too stale between two no-op writes.
    """
    return max(SMALLEST_MAX_STALENESS, heartbeat_frequency + IDLE_WRITE_PERIOD)


def check_max_staleness(max_staleness: float | None, description: TopologyDescription) -> None:
    """Raise :class:`ConfigurationError` when ``max_staleness`` is too small for this topology.

    Only replica sets are checked, as the Server Selection spec asks: other topologies ignore the
    limit (a mongos applies it itself), so the same read preference stays usable with them.
    """
    if max_staleness is None or description.topology_type not in _REPLICA_SET_TYPES:
        return
    heartbeat = description.settings.heartbeat_frequency
    floor = smallest_max_staleness(heartbeat)
    if max_staleness < floor - BOUNDARY_SLACK:
        raise ConfigurationError(
            f"max staleness of {max_staleness:g} s is too small for a replica set: it needs at "
            f"least {floor:g} s, the larger of {SMALLEST_MAX_STALENESS:g} s and the heartbeat "
            f"frequency ({heartbeat:g} s) plus the idle write period ({IDLE_WRITE_PERIOD:g} s)"
        )


def staleness_estimator(description: TopologyDescription) -> StalenessEstimator:
    """A function giving each server's estimated staleness in ``description``.

    Servers other than secondaries are never stale (0). ``None`` means the estimate cannot be
    made, because a last write date or update time is missing; such a secondary can never be
    shown to be within a limit. The reference point (the primary, or the freshest secondary) is
    looked up once, from the whole description, so it does not matter whether the reference is
    itself still a candidate.
    """
    heartbeat = description.settings.heartbeat_frequency
    primary = description.primary
    if primary is not None:
        primary_lag = _lag_behind_our_clock(primary)

        def with_primary(server: ServerDescription) -> float | None:
            if server.server_type is not ServerType.RSSecondary:
                return 0.0
            lag = _lag_behind_our_clock(server)
            if lag is None or primary_lag is None:
                return None
            return lag - primary_lag + heartbeat

        return with_primary

    freshest = max(
        (
            s.last_write_date
            for s in description.servers.values()
            if s.server_type is ServerType.RSSecondary and s.last_write_date is not None
        ),
        default=None,
    )

    def without_primary(server: ServerDescription) -> float | None:
        if server.server_type is not ServerType.RSSecondary:
            return 0.0
        if server.last_write_date is None or freshest is None:
            return None
        return freshest - server.last_write_date + heartbeat

    return without_primary


def estimate_staleness(server: ServerDescription, description: TopologyDescription) -> float | None:
    """``server``'s estimated staleness in seconds; see :func:`staleness_estimator`."""
    return staleness_estimator(description)(server)


def _lag_behind_our_clock(server: ServerDescription) -> float | None:
    """How far the server's last write trailed our clock when we last checked it.

    The difference mixes two clocks, which is fine: the skew cancels when two such lags from the
    same replica set are subtracted.
    """
    if server.last_update_time is None or server.last_write_date is None:
        return None
    lag = server.last_update_time - server.last_write_date
    return lag if math.isfinite(lag) else None

"""The fail-fast decision, as pure functions of the adapter's :class:`TopologySnapshot`.

Only seeds count: heartbeats from members discovered through a seed are ignored, as in the
original. A seed's *type* is the one its own hello reply announced (``SeedOutcome.reply_kind``);
its *state* (writable, readable) is the core's server description of that seed, which judges
the reply's properties (and drops a seed the deployment does not list, or a stale primary).

The outcome is decided, and the wait ends, as soon as:

* with selectors: some seed that answered matches one of them (success), or every seed has
  answered and none matched (failure);
* without selectors: every seed answered without error (success), or any seed failed (failure:
  the original requires that no error be seen, so waiting longer cannot change the outcome).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from resilient_topology import Address
from resilient_topology.heartbeat import SeedStatus
from resilient_topology.mongo import TopologySnapshot

from .errors import ServerSelectionTryOnceTimeoutError
from .selectors import Selectors

__all__ = ["SeedView", "Verdict", "decided", "failure", "judge", "seed_views"]


@dataclass(frozen=True, slots=True)
class SeedView:
    """What one seed's first answer says, in the terms selectors are matched against."""

    address: Address
    status: SeedStatus
    server_type: str | None = None
    writable: bool = False
    readable: bool = False
    error: str | None = None
    rtt: float | None = None  # seconds, of the latest non-awaited check

    def matches(self, selectors: Selectors) -> bool:
        if self.status != "succeeded":
            return False
        states = {"Writable"} if self.writable else set()
        states |= {"Readable"} if self.readable else set()
        return bool(states & selectors.states) or self.server_type in selectors.types

    def describe(self, silence: str = "no answer") -> str:
        """``host:port`` and its type, its error, or ``silence`` when it has not answered."""
        if self.status == "succeeded":
            return f"{self.address}: {self.server_type or 'unrecognised reply'}"
        if self.status == "failed":
            return f"{self.address}: error: {self.error}"
        return f"{self.address}: {silence}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether the outcome is known, whether it is a success, and which seed decided it."""

    decided: bool
    ok: bool
    matched: Address | None
    seeds: Mapping[Address, SeedView]


def seed_views(snapshot: TopologySnapshot) -> Mapping[Address, SeedView]:
    """Every seed's view, in seed order."""
    views: dict[Address, SeedView] = {}
    for address, outcome in snapshot.heartbeats.seed_outcomes().items():
        server = snapshot.description.servers.get(address)
        record = snapshot.heartbeats.get(address)
        rtt = None if record is None else record.rtt.last
        kind = outcome.reply_kind
        views[address] = SeedView(
            address=address,
            status=outcome.status,
            server_type=None if kind is None else getattr(kind, "value", str(kind)),
            writable=outcome.status == "succeeded" and server is not None and server.is_writable,
            readable=outcome.status == "succeeded" and server is not None and server.is_readable,
            error=outcome.error,
            rtt=rtt if outcome.status == "succeeded" else None,
        )
    return MappingProxyType(views)


def judge(snapshot: TopologySnapshot, selectors: Selectors) -> Verdict:
    """Apply the rules of the module docstring to one snapshot."""
    views = seed_views(snapshot)
    statuses = [view.status for view in views.values()]
    if selectors.empty:
        if "failed" in statuses:
            return Verdict(True, False, None, views)
        if "pending" in statuses:
            return Verdict(False, False, None, views)
        return Verdict(True, True, next(iter(views)), views)
    matched = next((a for a, view in views.items() if view.matches(selectors)), None)
    if matched is not None:
        return Verdict(True, True, matched, views)
    return Verdict("pending" not in statuses, False, None, views)


def decided(selectors: Selectors) -> Callable[[TopologySnapshot], bool]:
    """The predicate to hand to the core's waiter: true once the outcome is known."""
    return lambda snapshot: judge(snapshot, selectors).decided


def failure(
    verdict: Verdict, selectors: Selectors, timeout: float
) -> ServerSelectionTryOnceTimeoutError:
    """The error for a failed verdict: every seed with its type, its error, or no answer."""
    when = "on the first heartbeats" if verdict.decided else f"within {timeout:g} s"
    # Decided with seeds still silent: another seed's error settled it (no selectors).
    silence = "no answer yet (not needed: the outcome was decided)" if verdict.decided else None
    seeds = "; ".join(view.describe(silence or "no answer") for view in verdict.seeds.values())
    return ServerSelectionTryOnceTimeoutError(
        f"no suitable seed {when} (wanted: {selectors.describe()}): {seeds}",
        seeds=verdict.seeds,
        timeout=timeout,
    )

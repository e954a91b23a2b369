"""Node preference: which eligible node a client connects to.

photonpump's selector names and behaviour are kept (``prefer_master``, ``prefer_replica``,
``select_random``); the v20+ names are the primary ones. Every selector takes gossip members or
the server descriptions the reducer built, and randomness is injected so tests can fix it.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

from resilient_topology._types import ServerType
from resilient_topology.server import ServerDescription

from ._gossip import GossipMember, NodeState

__all__ = [
    "NodePreference",
    "RandomSource",
    "eligible_state",
    "prefer_follower",
    "prefer_leader",
    "prefer_master",
    "prefer_read_only_replica",
    "prefer_replica",
    "select_node",
    "select_random",
]

_T = TypeVar("_T")
Candidate = TypeVar("Candidate", GossipMember, ServerDescription)


class RandomSource(Protocol):
    """What the selectors need of :class:`random.Random`."""

    def choice(self, seq: Sequence[_T], /) -> _T: ...


class NodePreference(enum.Enum):
    """The node kinds a client asks for first, as the .NET and gRPC clients name them."""

    LEADER = "leader"
    FOLLOWER = "follower"
    READ_ONLY_REPLICA = "read_only_replica"
    RANDOM = "random"


_LEADER = frozenset({NodeState.LEADER})
_FOLLOWER = frozenset({NodeState.FOLLOWER})
_CLONE = frozenset({NodeState.CLONE})
# Clones count as followers once the caller opts in: photonpump treated them as replicas.
_FOLLOWERS = _FOLLOWER | _CLONE
_READ_ONLY = frozenset({NodeState.READ_ONLY_REPLICA, NodeState.READ_ONLY_LEADERLESS})
_ELIGIBLE = _LEADER | _FOLLOWER | _READ_ONLY


def eligible_state(
    candidate: GossipMember | ServerDescription, *, include_clones: bool = False
) -> NodeState | None:
    """The candidate's state if a client may connect to it, else ``None``.

    Eligible: alive and Leader, Follower, ReadOnlyReplica or ReadOnlyLeaderless; Clone too with
    ``include_clones``. A server description counts only if the reducer did not make it Unknown
    (dead, demoted or stale), and its state is read from its ``state`` tag.
    """
    if isinstance(candidate, GossipMember):
        if not candidate.is_alive:
            return None
        state = candidate.state
    else:
        if candidate.server_type is ServerType.Unknown:
            return None
        state = NodeState.from_name(candidate.tags.get("state", ""))
    if state in _ELIGIBLE or (include_clones and state is NodeState.CLONE):
        return state
    return None


def prefer_leader(
    candidates: Iterable[Candidate],
    *,
    rng: RandomSource | None = None,
    include_clones: bool = False,
) -> Candidate | None:
    """The leader, else the highest-ranked eligible node (follower, read-only replica, clone).

    Deterministic like photonpump's ``prefer_master``: among equals, the newest epoch and writer
    checkpoint win (descriptions carry only the epoch), then the first listed. ``rng`` is
    accepted for a uniform signature.
    """
    tiers = ((_LEADER, False), (_FOLLOWER, False), (_READ_ONLY, False), (_CLONE, False))
    return _by_tiers(candidates, tiers, rng, include_clones)


def prefer_follower(
    candidates: Iterable[Candidate],
    *,
    rng: RandomSource | None = None,
    include_clones: bool = False,
) -> Candidate | None:
    """A random follower (or clone, when included), else the leader, else a read-only replica."""
    tiers = ((_FOLLOWERS, True), (_LEADER, False), (_READ_ONLY, True))
    return _by_tiers(candidates, tiers, rng, include_clones)


def prefer_read_only_replica(
    candidates: Iterable[Candidate],
    *,
    rng: RandomSource | None = None,
    include_clones: bool = False,
) -> Candidate | None:
    """A random read-only replica, else a random follower, else the leader."""
    tiers = ((_READ_ONLY, True), (_FOLLOWERS, True), (_LEADER, False))
    return _by_tiers(candidates, tiers, rng, include_clones)


def select_random(
    candidates: Iterable[Candidate],
    *,
    rng: RandomSource | None = None,
    include_clones: bool = False,
) -> Candidate | None:
    """Any eligible node, uniformly (photonpump's default for ``connect()``)."""
    tiers = ((_ELIGIBLE | _CLONE, True),)
    return _by_tiers(candidates, tiers, rng, include_clones)


prefer_master = prefer_leader
prefer_replica = prefer_follower


def select_node(
    candidates: Iterable[Candidate],
    preference: NodePreference = NodePreference.LEADER,
    *,
    rng: RandomSource | None = None,
    include_clones: bool = False,
) -> Candidate | None:
    """Apply the selector ``preference`` names; ``None`` only when no node is eligible."""
    if preference is NodePreference.LEADER:
        return prefer_leader(candidates, rng=rng, include_clones=include_clones)
    if preference is NodePreference.FOLLOWER:
        return prefer_follower(candidates, rng=rng, include_clones=include_clones)
    if preference is NodePreference.READ_ONLY_REPLICA:
        return prefer_read_only_replica(candidates, rng=rng, include_clones=include_clones)
    return select_random(candidates, rng=rng, include_clones=include_clones)


def _by_tiers(
    candidates: Iterable[Candidate],
    tiers: Iterable[tuple[frozenset[NodeState], bool]],
    rng: RandomSource | None,
    include_clones: bool,
) -> Candidate | None:
    """The first tier with an eligible node decides: a random pick or the most recent one.

    Falling through to later tiers rather than returning ``None`` is what the .NET client does (it
    sorts by preference): a client asking for a follower still gets the leader when it is alone.
    """
    eligible = [
        (state, c)
        for c in candidates
        if (state := eligible_state(c, include_clones=include_clones)) is not None
    ]
    for states, pick_randomly in tiers:
        pool = [c for state, c in eligible if state in states]
        if not pool:
            continue
        if pick_randomly:
            return random.choice(pool) if rng is None else rng.choice(pool)
        return max(pool, key=_recency)
    return None


def _recency(candidate: GossipMember | ServerDescription) -> tuple[int, int]:
    if isinstance(candidate, GossipMember):
        return (candidate.epoch_number, candidate.writer_checkpoint)
    return (-1 if candidate.set_version is None else candidate.set_version, -1)

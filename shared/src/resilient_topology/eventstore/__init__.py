"""EventStore clusters in the core's vocabulary: gossip parsing, a gossip reducer, node preference.

Pure like the rest of the core: no I/O, no clock (``now`` is passed in), randomness injected.

**States by name.** Gossip sends node states as enum *names*, and the numbers behind them differ
between v5, v20+ and transitional builds, so only names are read. :class:`NodeState` holds the
v20+ names, with v5's as aliases (Master = Leader, Slave = Follower, PreMaster = PreLeader); the raw
name is kept on each :class:`GossipMember`. An unknown name makes that one member ineligible
(:attr:`NodeState.UNRECOGNISED`) and never fails the parse; anything else malformed raises
:class:`~resilient_topology.errors.InvalidGossip` naming the member index and field.

**Members as server descriptions** (:func:`member_description`). A member is keyed by its HTTP
address, the one gossip is fetched from; its TCP, secure TCP and HTTP endpoints go in
``endpoints``. Alive Leader → RSPrimary; Follower → RSSecondary; ReadOnlyReplica and
ReadOnlyLeaderless → RSSecondary tagged ``role=read_only_replica`` (they serve reads but never
writes, which is what a secondary is; the tag lets tag-set selection include or avoid them, where
RSOther would hide them from reads altogether); Clone → RSOther (usable only on request); any
other state, an unrecognised one or a dead node → Unknown with an error naming the state. Tags
always hold ``state`` (the canonical name). The epoch number is the member's ``set_version``: it
grows with every election, as a term does, so it orders leaders the way setVersion orders
primaries. ``election_id`` stays unset: MongoDB compares it as ObjectId bytes, and EventStore's
epoch id is a GUID with no order.

**The reducer** (:func:`reduce_gossip`, :func:`gossip_failed`), in order:

1. A reply from a source no longer tracked changes nothing (the fetch outlived its removal).
2. A member listed twice under one HTTP address (a restarted node's dead old instance beside the
   new one) counts once: alive first, then newer epoch and writer checkpoint, then first listed.
3. The gossip's *view epoch* is its leader's epoch or, without an alive leader, the newest epoch
   of an alive member (followers replicate their leader's epochs, so a current view is never
   behind). ``max_set_version`` holds the highest view epoch accepted. A gossip whose view epoch
   is lower is stale, typically a partitioned old leader still claiming to lead: it changes
   nothing except the source, which becomes Unknown (:data:`STALE_GOSSIP_ERROR`). A newer leader
   is thus never replaced by an older one.
4. Otherwise the members listed replace what was known: each is described as above, members no
   longer listed are removed, but a configured seed is never dropped: it stays as Unknown
   (:data:`NOT_LISTED_ERROR`), so it can be tried again later.
5. At most one leader: of several alive leaders, the highest epoch wins, then the furthest writer
   checkpoint, then the first listed; the others become Unknown (:data:`REPLACED_LEADER_ERROR`).
6. The topology is ReplicaSetWithPrimary when a leader remains, else ReplicaSetNoPrimary.
7. A failed fetch, or a reply that cannot be parsed (:func:`apply_gossip_reply`), makes only the
   source Unknown: one unreachable node says nothing about the others.

**Node preference**: eligible nodes are alive Leader, Follower, ReadOnlyReplica and
ReadOnlyLeaderless, plus Clone with ``include_clones=True``. :func:`prefer_leader` (photonpump's
``prefer_master``) is deterministic; :func:`prefer_follower` (``prefer_replica``),
:func:`prefer_read_only_replica` and :func:`select_random` pick at random with an injected
``random.Random``. Each falls back to the other kinds before returning ``None``.
"""

from __future__ import annotations

from ._cluster import (
    NOT_LISTED_ERROR,
    READ_ONLY_ROLE,
    REPLACED_LEADER_ERROR,
    STALE_GOSSIP_ERROR,
    EventStoreClusterSettings,
    apply_gossip_reply,
    gossip_failed,
    leader,
    leader_changed,
    member_description,
    on_gossip_failure,
    on_gossip_reply,
    reduce_gossip,
)
from ._gossip import (
    EVENTSTORE_HTTP_PORT,
    V5_STATE_NAMES,
    V20_STATE_NAMES,
    Gossip,
    GossipMember,
    NodeState,
    best_leader,
    parse_gossip,
    parse_gossip_json,
)
from ._selection import (
    NodePreference,
    RandomSource,
    eligible_state,
    prefer_follower,
    prefer_leader,
    prefer_master,
    prefer_read_only_replica,
    prefer_replica,
    select_node,
    select_random,
)

__all__ = [
    "EVENTSTORE_HTTP_PORT",
    "NOT_LISTED_ERROR",
    "READ_ONLY_ROLE",
    "REPLACED_LEADER_ERROR",
    "STALE_GOSSIP_ERROR",
    "V20_STATE_NAMES",
    "V5_STATE_NAMES",
    "EventStoreClusterSettings",
    "Gossip",
    "GossipMember",
    "NodePreference",
    "NodeState",
    "RandomSource",
    "apply_gossip_reply",
    "best_leader",
    "eligible_state",
    "gossip_failed",
    "leader",
    "leader_changed",
    "member_description",
    "on_gossip_failure",
    "on_gossip_reply",
    "parse_gossip",
    "parse_gossip_json",
    "prefer_follower",
    "prefer_leader",
    "prefer_master",
    "prefer_read_only_replica",
    "prefer_replica",
    "reduce_gossip",
    "select_node",
    "select_random",
]

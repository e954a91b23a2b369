"""Server selection as function composition, following the Server Selection spec.

A :class:`Selection` holds the servers still in the running together with the topology they were
taken from. A selector is a plain function from one selection to a narrower one, and the rule for
a topology type and read preference is only a composition of selectors, so each step can be
tested, reused and replaced alone. Nothing here touches the network or a clock: ``now`` and the
random source are arguments, so every choice can be replayed in a test.

Durations are seconds. Selection that finds nothing returns an empty tuple: the caller waits for
the topology to change and tries again. Impossible requests raise :class:`ConfigurationError`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Literal, TypeAlias, TypeGuard

from ._types import ServerType, TopologyType
from .address import Address
from .errors import ConfigurationError, ServerSelectionError
from .server import ServerDescription
from .staleness import BOUNDARY_SLACK, check_max_staleness, staleness_estimator
from .topology import TopologyDescription

__all__ = [
    "Operation",
    "OperationCounts",
    "ReadMode",
    "ReadPreference",
    "Selection",
    "Selector",
    "choose_in_window",
    "compose",
    "first_of",
    "known",
    "load_balancers",
    "matching_tag_sets",
    "mongoses",
    "nothing",
    "of_types",
    "primaries",
    "secondaries",
    "select_server",
    "select_servers",
    "suitability",
    "suitable_servers",
    "within_latency_window",
    "within_max_staleness",
    "writable",
]


class ReadMode(enum.Enum):
    """Which members of a replica set a read may use; values are the spec's spellings."""

    PRIMARY = "primary"
    PRIMARY_PREFERRED = "primaryPreferred"
    SECONDARY = "secondary"
    SECONDARY_PREFERRED = "secondaryPreferred"
    NEAREST = "nearest"

    @classmethod
    def parse(cls, text: object) -> ReadMode:
        """The mode named ``text``, in any case.

        URIs write ``secondaryPreferred`` and the spec's test files ``SecondaryPreferred``.
        """
        if isinstance(text, str):
            for mode in cls:
                if mode.value.lower() == text.lower():
                    return mode
        raise ConfigurationError(f"unknown read preference mode {text!r}")


_NO_TAGS: Mapping[str, str] = MappingProxyType({})
_DOCUMENT_KEYS = frozenset({"mode", "tag_sets", "tags", "maxStalenessSeconds"})


@dataclass(frozen=True, slots=True)
class ReadPreference:
    """Where a read may go: a mode, ordered tag sets and an optional max staleness in seconds.

    ``tag_sets`` defaults to one empty tag set, which matches every server; ``max_staleness`` of
    ``None`` (or the spec's ``-1``) means no limit. Whether a limit is large enough depends on the
    topology's heartbeat frequency, so that check happens at selection time.
    """

    mode: ReadMode = ReadMode.PRIMARY
    tag_sets: tuple[Mapping[str, str], ...] = (_NO_TAGS,)
    max_staleness: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.mode, ReadMode):
            raise ConfigurationError(f"mode must be a ReadMode, got {self.mode!r}")
        object.__setattr__(self, "tag_sets", _frozen_tag_sets(self.tag_sets))
        object.__setattr__(self, "max_staleness", _checked_max_staleness(self.max_staleness))
        if self.mode is ReadMode.PRIMARY:
            if any(len(tag_set) for tag_set in self.tag_sets):
                raise ConfigurationError("read preference mode primary cannot have tag sets")
            if self.max_staleness is not None:
                raise ConfigurationError("read preference mode primary cannot have a max staleness")

    def __hash__(self) -> int:
        tags = tuple(frozenset(tag_set.items()) for tag_set in self.tag_sets)
        return hash((self.mode, tags, self.max_staleness))

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> ReadPreference:
        """Read ``{mode, tag_sets (or tags), maxStalenessSeconds}``; a missing mode is primary.

        Unknown keys raise rather than being ignored, so a misspelt option cannot pass unnoticed.
        """
        unknown = set(document) - _DOCUMENT_KEYS
        if unknown:
            raise ConfigurationError(f"unknown read preference keys {sorted(unknown)}")
        if "tag_sets" in document and "tags" in document:
            raise ConfigurationError("give tag_sets or tags, not both")
        mode = ReadMode.parse(document["mode"]) if "mode" in document else ReadMode.PRIMARY
        tag_sets = document.get("tag_sets", document.get("tags", (_NO_TAGS,)))
        return cls(mode, tag_sets, document.get("maxStalenessSeconds"))


Operation: TypeAlias = ReadPreference | Literal["write"]
"""A read with its read preference, or ``"write"``."""


def _frozen_tag_sets(value: object) -> tuple[Mapping[str, str], ...]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ConfigurationError("tag_sets must be a sequence of mappings of strings to strings")
    frozen = []
    for tag_set in value:
        if not isinstance(tag_set, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in tag_set.items()
        ):
            raise ConfigurationError(f"tag set {tag_set!r} is not a mapping of strings to strings")
        frozen.append(MappingProxyType(dict(tag_set)))
    return tuple(frozen)


def _checked_max_staleness(value: object) -> float | None:
    if value is None or (_is_number(value) and value == -1):
        return None
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(
            f"max staleness must be a positive number of seconds, -1 or None; got {value!r}"
        )
    return float(value)


# --- the selection value and the selectors ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Selection:
    """The servers still in the running, with the topology and time they were taken at.

    Selectors narrow ``candidates`` only. ``description`` is never narrowed, because some rules
    need facts about servers that are no longer candidates: a staleness estimate is made against
    the primary even when the primary has been filtered out. ``now`` is the caller's clock at
    selection time; the spec's rules do not need it, but an application selector judging age
    reads it here instead of a clock.
    """

    description: TopologyDescription
    candidates: tuple[ServerDescription, ...]
    now: float

    @classmethod
    def of(
        cls, description: TopologyDescription, *, now: float, exclude: Iterable[Address] = ()
    ) -> Selection:
        """Every server of ``description`` but those in ``exclude``, in the description's order."""
        left_out = frozenset(exclude)
        servers = tuple(s for s in description.servers.values() if s.address not in left_out)
        return cls(description, servers, now)

    def keep(self, predicate: Callable[[ServerDescription], bool]) -> Selection:
        return replace(self, candidates=tuple(s for s in self.candidates if predicate(s)))

    @property
    def is_empty(self) -> bool:
        return not self.candidates

    @property
    def addresses(self) -> tuple[Address, ...]:
        return tuple(s.address for s in self.candidates)


Selector: TypeAlias = Callable[[Selection], Selection]
"""A step of selection: takes a selection and returns a narrower one."""


def nothing(selection: Selection) -> Selection:
    """No server: what an Unknown topology offers, whatever is asked."""
    return replace(selection, candidates=())


def known(selection: Selection) -> Selection:
    """Servers whose last check succeeded."""
    return selection.keep(lambda s: s.is_known)


def writable(selection: Selection) -> Selection:
    """Servers that accept writes: primaries, standalones, mongoses and load balancers."""
    return selection.keep(lambda s: s.is_writable)


def of_types(*server_types: ServerType) -> Selector:
    """A selector keeping the servers of the given types."""
    wanted = frozenset(server_types)

    def select(selection: Selection) -> Selection:
        return selection.keep(lambda s: s.server_type in wanted)

    return select


def primaries(selection: Selection) -> Selection:
    return of_types(ServerType.RSPrimary)(selection)


def secondaries(selection: Selection) -> Selection:
    return of_types(ServerType.RSSecondary)(selection)


def mongoses(selection: Selection) -> Selection:
    return of_types(ServerType.Mongos)(selection)


def load_balancers(selection: Selection) -> Selection:
    return of_types(ServerType.LoadBalancer)(selection)


def matching_tag_sets(tag_sets: Sequence[Mapping[str, str]]) -> Selector:
    """Servers matching the first tag set that matches any candidate; later sets are fallbacks.

    A tag set matches a server holding all of its pairs, so ``{}`` matches every server. No tag
    sets at all means no restriction; tag sets that all fail leave nothing.
    """

    def select(selection: Selection) -> Selection:
        if not tag_sets:
            return selection
        for tag_set in tag_sets:
            matched = tuple(s for s in selection.candidates if _has_tags(s, tag_set))
            if matched:
                return replace(selection, candidates=matched)
        return nothing(selection)

    return select


def _has_tags(server: ServerDescription, tag_set: Mapping[str, str]) -> bool:
    return all(server.tags.get(key) == value for key, value in tag_set.items())


def within_max_staleness(max_staleness: float | None) -> Selector:
    """Servers estimated no staler than ``max_staleness`` seconds; ``None`` keeps everyone."""

    def select(selection: Selection) -> Selection:
        if max_staleness is None:
            return selection
        estimate = staleness_estimator(selection.description)

        def fresh_enough(server: ServerDescription) -> bool:
            staleness = estimate(server)
            return staleness is not None and staleness <= max_staleness + BOUNDARY_SLACK

        return selection.keep(fresh_enough)

    return select


def within_latency_window(local_threshold: float) -> Selector:
    """Servers whose average round-trip time is at most the fastest one's plus the threshold.

    A server with no measured round-trip time is only kept when no candidate has one (a load
    balancer is never checked, so it never has one): a measured server is always preferred.
    """

    def select(selection: Selection) -> Selection:
        measured = [
            s.round_trip_time for s in selection.candidates if s.round_trip_time is not None
        ]
        if not measured:
            return selection
        edge = min(measured) + local_threshold + BOUNDARY_SLACK
        return selection.keep(lambda s: s.round_trip_time is not None and s.round_trip_time <= edge)

    return select


def compose(*selectors: Selector) -> Selector:
    """Apply ``selectors`` left to right."""

    def select(selection: Selection) -> Selection:
        for selector in selectors:
            selection = selector(selection)
        return selection

    return select


def first_of(*selectors: Selector) -> Selector:
    """The first non-empty result of ``selectors``, each applied to the same input.

    This is how the "preferred" modes fall back: ``first_of(primaries, eligible_secondaries)``.
    """

    def select(selection: Selection) -> Selection:
        for selector in selectors:
            chosen = selector(selection)
            if not chosen.is_empty:
                return chosen
        return nothing(selection)

    return select


# --- the rules per topology type ----------------------------------------------------------------


def suitability(topology_type: TopologyType, operation: Operation) -> Selector:
    """The selector picking the servers suitable for ``operation`` in a topology of this type.

    Read preferences only shape reads from replica sets: a single server takes every operation
    (it is a direct connection), and mongoses and load balancers apply the preference themselves.
    """
    if topology_type is TopologyType.Unknown:
        return nothing
    if topology_type is TopologyType.Single:
        return known
    if topology_type is TopologyType.Sharded:
        return mongoses
    if topology_type is TopologyType.LoadBalanced:
        return load_balancers
    if not isinstance(operation, ReadPreference):
        return primaries
    eligible = compose(
        within_max_staleness(operation.max_staleness), matching_tag_sets(operation.tag_sets)
    )
    eligible_secondaries = compose(secondaries, eligible)
    rules: dict[ReadMode, Selector] = {
        ReadMode.PRIMARY: primaries,
        ReadMode.PRIMARY_PREFERRED: first_of(primaries, eligible_secondaries),
        ReadMode.SECONDARY: eligible_secondaries,
        ReadMode.SECONDARY_PREFERRED: first_of(eligible_secondaries, primaries),
        ReadMode.NEAREST: compose(of_types(ServerType.RSPrimary, ServerType.RSSecondary), eligible),
    }
    return rules[operation.mode]


def suitable_servers(
    description: TopologyDescription,
    operation: Operation,
    *,
    now: float,
    deprioritized: Iterable[Address] = (),
    selector: Selector | None = None,
) -> tuple[ServerDescription, ...]:
    """The servers suitable for ``operation``, before the latency window is applied.

    ``deprioritized`` servers (those that just failed a retryable operation) are used only when
    no other server is suitable. ``selector``, the application's own filter, runs last and can
    only narrow the result. Raises :class:`ConfigurationError` for a read preference this
    topology cannot honour and :class:`ServerSelectionError` when a server's wire version is
    outside what this driver supports.
    """
    return _suitable(description, operation, now, deprioritized, selector).candidates


def select_servers(
    description: TopologyDescription,
    operation: Operation,
    *,
    now: float,
    local_threshold: float | None = None,
    deprioritized: Iterable[Address] = (),
    selector: Selector | None = None,
) -> tuple[ServerDescription, ...]:
    """The suitable servers within the latency window: the ones an operation may be sent to.

    ``local_threshold`` defaults to the topology settings' value; see :func:`suitable_servers`.
    """
    if local_threshold is None:
        local_threshold = description.settings.local_threshold
    if not _is_number(local_threshold) or not math.isfinite(local_threshold) or local_threshold < 0:
        raise ConfigurationError(f"local_threshold must be seconds >= 0, got {local_threshold!r}")
    suitable = _suitable(description, operation, now, deprioritized, selector)
    return within_latency_window(local_threshold)(suitable).candidates


def _suitable(
    description: TopologyDescription,
    operation: Operation,
    now: float,
    deprioritized: Iterable[Address],
    selector: Selector | None,
) -> Selection:
    if not _is_number(now) or not math.isfinite(now):
        raise ConfigurationError(f"now must be a finite number of seconds, got {now!r}")
    if isinstance(operation, ReadPreference):
        check_max_staleness(operation.max_staleness, description)
    elif operation != "write":
        raise ConfigurationError(
            f"operation must be a ReadPreference or 'write', got {operation!r}"
        )
    problem = description.compatibility_error
    if problem is not None:
        raise ServerSelectionError(problem)
    rule = suitability(description.topology_type, operation)
    avoided = frozenset(deprioritized)
    chosen = rule(Selection.of(description, now=now, exclude=avoided))
    if chosen.is_empty and avoided:
        chosen = rule(Selection.of(description, now=now))
    if selector is None:
        return chosen
    allowed = frozenset(chosen.addresses)
    return selector(chosen).keep(lambda s: s.address in allowed)


# --- choosing one server in the window ------------------------------------------------------------

OperationCounts: TypeAlias = Mapping[Address, int] | Callable[[Address], int]
_NO_COUNTS: Mapping[Address, int] = MappingProxyType({})


def choose_in_window(
    servers: Sequence[ServerDescription],
    operation_count: OperationCounts,
    random: Callable[[], float],
) -> ServerDescription | None:
    """Pick two distinct servers at random and return the one running fewer operations.

    This "power of two choices" spreads load away from a busy or slow server without the herd
    effect of always taking the least loaded one. A tie keeps the first server drawn. ``random``
    returns floats in ``[0, 1]``; it is called twice when there are two servers or more. Counts
    missing from a mapping are 0. ``None`` when ``servers`` is empty.
    """
    if not servers:
        return None
    if len(servers) == 1:
        return servers[0]
    first = _index(random(), len(servers))
    second = _index(random(), len(servers) - 1)
    if second >= first:
        second += 1
    a, b = servers[first], servers[second]
    return b if _count(operation_count, b.address) < _count(operation_count, a.address) else a


def select_server(
    description: TopologyDescription,
    operation: Operation,
    *,
    now: float,
    random: Callable[[], float],
    operation_count: OperationCounts = _NO_COUNTS,
    local_threshold: float | None = None,
    deprioritized: Iterable[Address] = (),
    selector: Selector | None = None,
) -> ServerDescription | None:
    """One server for ``operation``, or ``None`` when none is suitable yet.

    The whole algorithm of the spec in one call: :func:`select_servers`, then
    :func:`choose_in_window`. Without operation counts the choice is uniform in the window.
    """
    window = select_servers(
        description,
        operation,
        now=now,
        local_threshold=local_threshold,
        deprioritized=deprioritized,
        selector=selector,
    )
    return choose_in_window(window, operation_count, random)


def _count(operation_count: OperationCounts, address: Address) -> int:
    if isinstance(operation_count, Mapping):
        return operation_count.get(address, 0)
    return operation_count(address)


def _index(fraction: float, size: int) -> int:
    if not _is_number(fraction) or not 0 <= fraction <= 1:
        raise ConfigurationError(f"random() must return a float in [0, 1], got {fraction!r}")
    return min(int(fraction * size), size - 1)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)

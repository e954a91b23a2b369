"""Where gossip is fetched from: a static seed list, or the A records of a DNS name.

Both finders keep every seed they were given or resolved (R16): a failure only moves a seed to
the back of the rotation for the current round. The original removed a failed static seed for
good, and its DNS finder always returned the first address.

:class:`~photonpump.discovery.ClusterDiscovery` asks :meth:`gossip_seeds` for the addresses to
monitor; :meth:`next` / :meth:`mark_failed` / :meth:`add_node` keep the original's one-at-a-time
interface, with rotation.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random as _random
from collections.abc import Iterable
from typing import Any, Protocol

import aiodns
import pycares

from resilient_topology.address import Address
from resilient_topology.errors import ConfigurationError
from resilient_topology.eventstore import EVENTSTORE_HTTP_PORT

from ._gossip_probe import NodeService

__all__ = ["DEFAULT_DNS_TIMEOUT", "DnsSeedFinder", "SeedFinder", "StaticSeedFinder"]

logger = logging.getLogger("photonpump.discovery")

DEFAULT_DNS_TIMEOUT = 5.0


class SeedFinder(Protocol):
    """What cluster discovery needs of a seed source."""

    async def gossip_seeds(self) -> list[NodeService]:
        """Every seed to fetch gossip from now; raises when there is none (e.g. DNS failed)."""
        ...

    async def next(self) -> NodeService | None:
        """The next seed in rotation, or ``None`` when there is none."""
        ...

    def mark_failed(self, seed: NodeService) -> None: ...

    def add_node(self, node: NodeService) -> None: ...

    async def close(self) -> None: ...


class _Rotation:
    """Round-robin over candidates; failed ones wait until every other has been tried."""

    def __init__(self) -> None:
        self.candidates: list[NodeService] = []
        self.failed: set[NodeService] = set()
        self._position = 0

    def reset(self, candidates: Iterable[NodeService]) -> None:
        self.candidates = list(dict.fromkeys(candidates))
        self.failed.clear()
        self._position = 0

    def add(self, node: NodeService) -> None:
        if node not in self.candidates:
            self.candidates.append(node)

    @property
    def exhausted(self) -> bool:
        return all(c in self.failed for c in self.candidates)

    def next(self) -> NodeService | None:
        count = len(self.candidates)
        for step in range(count):
            node = self.candidates[(self._position + step) % count]
            if node not in self.failed:
                self._position = (self._position + step + 1) % count
                return node
        return None


def _seed(value: NodeService | Address | str, default_port: int) -> NodeService:
    if isinstance(value, NodeService):
        return value
    address = Address.of(value, default_port)
    if address.port is None:
        raise ConfigurationError(f"gossip seed {value!r} needs a port")
    return NodeService(address.host, address.port, None)


class StaticSeedFinder:
    """Seeds given up front: ``NodeService`` values or ``"host[:port]"`` strings (port 2113).

    Every seed stays for the life of the finder. :meth:`next` rotates through the seeds (shuffled
    once, so many clients do not all start on the first) and the nodes gossip added; when every
    candidate has failed, a new round starts from all the original seeds again.
    """

    def __init__(
        self,
        seeds: Iterable[NodeService | Address | str],
        *,
        default_port: int = EVENTSTORE_HTTP_PORT,
        rng: _random.Random | None = None,
    ) -> None:
        self._seeds = list(dict.fromkeys(_seed(s, default_port) for s in seeds))
        if not self._seeds:
            raise ConfigurationError("at least one gossip seed is needed")
        self._rng = rng or _random.Random()
        self._rotation = _Rotation()
        self.reset_to_seeds()

    @property
    def seeds(self) -> list[NodeService]:
        return list(self._seeds)

    @property
    def candidates(self) -> list[NodeService]:
        return list(self._rotation.candidates)

    def reset_to_seeds(self) -> None:
        seeds = list(self._seeds)
        self._rng.shuffle(seeds)
        self._rotation.reset(seeds)

    async def gossip_seeds(self) -> list[NodeService]:
        return list(self._seeds)

    async def next(self) -> NodeService | None:
        if self._rotation.exhausted:
            self.reset_to_seeds()
        return self._rotation.next()

    def mark_failed(self, seed: NodeService) -> None:
        """Try ``seed`` again only after the others; it is never dropped (R16)."""
        self._rotation.failed.add(seed)

    def add_node(self, node: NodeService) -> None:
        """Add a member's HTTP endpoint (learnt from gossip) to this round's rotation."""
        self._rotation.add(node)

    async def close(self) -> None:
        """Nothing to release; here for a uniform interface."""


class DnsSeedFinder:
    """Seeds from the A records of ``name``, each on ``port`` (the gossip port, 2113).

    :meth:`next` rotates through every resolved address, skipping failed ones until all have
    failed; then the name is resolved again. ``resolver`` is an :class:`aiodns.DNSResolver`; by
    default one is made on first use (it needs a running loop) and closed by :meth:`close`. A
    resolver passed in belongs to the caller. Each lookup is bounded by ``timeout`` seconds.
    The argument order is the original's: ``DnsSeedFinder(name, resolver, port)``.
    """

    def __init__(
        self,
        name: str,
        resolver: aiodns.DNSResolver | None = None,
        port: int = EVENTSTORE_HTTP_PORT,
        *,
        timeout: float = DEFAULT_DNS_TIMEOUT,
        rng: _random.Random | None = None,
    ) -> None:
        if not name:
            raise ConfigurationError(f"a DNS name is needed, got {name!r}")
        if type(port) is not int or not 0 < port < 65536:
            raise ConfigurationError(f"port must be in 1-65535, got {port!r}")
        if not timeout > 0:
            raise ConfigurationError(f"timeout must be positive, got {timeout!r}")
        self.name = name
        self.port = port
        self.resolver = resolver
        self._owns_resolver = resolver is None
        self._timeout = timeout
        self._rng = rng or _random.Random()
        self._rotation = _Rotation()
        self.resolutions = 0
        """How many lookups were made, successful or not."""

    @property
    def seeds(self) -> list[NodeService]:
        """The addresses of the latest successful lookup (plus nodes gossip added)."""
        return list(self._rotation.candidates)

    async def resolve(self) -> list[NodeService]:
        """Look the name up now and start a new rotation; raises ``LookupError`` on failure."""
        if self.resolver is None:
            self.resolver = aiodns.DNSResolver()
        self.resolutions += 1
        try:
            async with asyncio.timeout(self._timeout):
                hosts = await _a_records(self.resolver, self.name)
        except (aiodns.error.DNSError, TimeoutError) as exc:
            raise LookupError(f"cannot resolve {self.name!r}: {exc!r}") from exc
        if not hosts:
            raise LookupError(f"{self.name!r} has no A record")
        self._rng.shuffle(hosts)
        self._rotation.reset(NodeService(host, self.port, None) for host in hosts)
        logger.debug("%s resolved to %s", self.name, hosts)
        return self.seeds

    async def gossip_seeds(self) -> list[NodeService]:
        """Every resolved address; the name is resolved (again) first when all have failed."""
        if self._rotation.exhausted:
            return await self.resolve()
        return self.seeds

    async def next(self) -> NodeService | None:
        """The next address in rotation, or ``None`` if the name cannot be resolved."""
        if self._rotation.exhausted:
            try:
                await self.resolve()
            except LookupError as exc:
                logger.warning("no gossip seed: %s", exc)
                return None
        return self._rotation.next()

    def mark_failed(self, seed: NodeService) -> None:
        self._rotation.failed.add(seed)

    def add_node(self, node: NodeService) -> None:
        self._rotation.add(node)

    async def close(self) -> None:
        """Close the resolver this finder made; one passed in is left to its owner."""
        if not self._owns_resolver or self.resolver is None:
            return
        resolver, self.resolver = self.resolver, None
        closing: Any = resolver.close()
        if inspect.isawaitable(closing):  # aiodns >= 3.3; earlier versions close at once
            await closing


async def _a_records(resolver: aiodns.DNSResolver, name: str) -> list[str]:
    """IPv4 addresses of ``name``, with aiodns 4's ``query_dns`` or the older ``query``."""
    query_dns = getattr(resolver, "query_dns", None)
    if query_dns is not None:
        result = await query_dns(name, "A")
        return [
            record.data.addr
            for record in result.answer
            if isinstance(record.data, pycares.ARecordData)
        ]
    records = await resolver.query(name, "A")
    return [record.host for record in records]

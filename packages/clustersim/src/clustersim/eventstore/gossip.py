"""Gossip for the simulated cluster: the ``GET /gossip`` document and the HTTP server behind it.

Each simulated node describes itself as a :class:`MemberView`; :func:`gossip_document` renders a
cluster's views in the v5 or the v20+ vocabulary, so clients are tested against both server
generations. :class:`GossipServer` answers on loopback and can be made slow or silent, the two
ways a real node's gossip fails a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web

from resilient_topology.eventstore import V5_STATE_NAMES, V20_STATE_NAMES

__all__ = ["GossipServer", "MemberView", "gossip_document"]

Vocabulary = Literal["v5", "v20"]

# v20+ names a v5 server spells differently.
_V5_RENAMES = {"Leader": "Master", "Follower": "Slave", "PreLeader": "PreMaster"}
# v20+ states a v5 server cannot be in: rendering one as v5 would be a document no v5 sent.
_V20_ONLY = frozenset(V20_STATE_NAMES) - frozenset(V5_STATE_NAMES) - frozenset(_V5_RENAMES)
# States only a node configured as a read-only replica passes through.
_READ_ONLY_STATES = frozenset({"ReadOnlyReplica", "PreReadOnlyReplica", "ReadOnlyLeaderless"})

# How long stop() lets aiohttp wait for a handler; ours return at once when stopping, so this
# only bounds the unexpected.
_SHUTDOWN_BOUND = 1.0


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberView:
    """One node as the cluster's gossip describes it.

    ``state`` is the canonical v20+ name. A name neither vocabulary knows is sent verbatim, so a
    test can put a state no client understands into a document. Keyword-only, because a dozen
    neighbouring integers are too easy to pass in the wrong order.
    """

    instance_id: uuid.UUID
    state: str
    is_alive: bool
    tcp: tuple[str, int]
    http: tuple[str, int]
    epoch_number: int
    epoch_id: uuid.UUID
    writer_checkpoint: int
    chaser_checkpoint: int
    last_commit_position: int
    node_priority: int = 0
    timestamp: datetime = field(default_factory=_now)
    epoch_position: int = 0

    def __post_init__(self) -> None:
        # A naive time would be read as local time when converted: wrong by the UTC offset.
        if self.timestamp.utcoffset() is None:
            raise ValueError(f"timestamp must be timezone-aware, got {self.timestamp!r}")


def gossip_document(
    members: Sequence[MemberView], *, vocabulary: Vocabulary, server: tuple[str, int]
) -> dict[str, Any]:
    """The JSON body of ``GET /gossip`` as a node answering at ``server`` sends it.

    Raises :class:`ValueError` for a v20+-only state (e.g. ReadOnlyReplica) in v5: a v5
    cluster has no such node, and a client must never be tested against a document that
    no server sends.
    """
    if vocabulary not in ("v5", "v20"):
        raise ValueError(f"vocabulary must be 'v5' or 'v20', got {vocabulary!r}")
    render = _v5_member if vocabulary == "v5" else _v20_member
    return {
        "members": [render(member) for member in members],
        "serverIp": server[0],
        "serverPort": server[1],
    }


def _common_fields(member: MemberView, state: str) -> dict[str, Any]:
    """The fields both generations send; internal and external endpoints are the same here."""
    tcp_ip, tcp_port = member.tcp
    return {
        "instanceId": str(member.instance_id),
        "timeStamp": member.timestamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "state": state,
        "isAlive": member.is_alive,
        "internalTcpIp": tcp_ip,
        "internalTcpPort": tcp_port,
        "internalSecureTcpPort": 0,
        "externalTcpIp": tcp_ip,
        "externalTcpPort": tcp_port,
        "externalSecureTcpPort": 0,
        "lastCommitPosition": member.last_commit_position,
        "writerCheckpoint": member.writer_checkpoint,
        "chaserCheckpoint": member.chaser_checkpoint,
        "epochPosition": member.epoch_position,
        "epochNumber": member.epoch_number,
        "epochId": str(member.epoch_id),
        "nodePriority": member.node_priority,
    }


def _v5_member(member: MemberView) -> dict[str, Any]:
    if member.state in _V20_ONLY:
        raise ValueError(f"state {member.state!r} does not exist in v5 gossip")
    http_ip, http_port = member.http
    return {
        **_common_fields(member, _V5_RENAMES.get(member.state, member.state)),
        "internalHttpIp": http_ip,
        "internalHttpPort": http_port,
        "externalHttpIp": http_ip,
        "externalHttpPort": http_port,
    }


def _v20_member(member: MemberView) -> dict[str, Any]:
    http_ip, http_port = member.http
    return {
        **_common_fields(member, member.state),
        "httpEndPointIp": http_ip,
        "httpEndPointPort": http_port,
        "isReadOnlyReplica": member.state in _READ_ONLY_STATES,
    }


class GossipServer:
    """Serves one node's ``GET /gossip`` on the caller's event loop.

    ``provider`` is asked on every request, after any :attr:`delay`, so the answer reflects the
    cluster as it is when the answer leaves. It returns ``None`` for a node that is partitioned
    or killed: the request then gets no answer at all, as from a node that cannot be reached,
    until the client gives up or :meth:`stop` drops the connection.

    After :meth:`stop`, :meth:`start` binds the same port again, as a restarted node does.
    """

    def __init__(
        self,
        provider: Callable[[], dict[str, Any] | None],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._provider = provider
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._address: tuple[str, int] | None = None
        self._stopping = asyncio.Event()
        self.delay = 0.0
        """Seconds to wait before answering (slow gossip); read when a request arrives."""
        self.requests = 0
        """Gossip requests received, answered or not."""

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)``; known once :meth:`start` has returned."""
        if self._address is None:
            raise RuntimeError("GossipServer has not been started")
        return self._address

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("GossipServer is already running")
        app = web.Application()
        app.router.add_get("/gossip", self._handle, allow_head=False)
        # handler_cancellation: a request its client abandoned stops waiting at once rather
        # than piling up until stop().
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=_SHUTDOWN_BOUND
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        host, port = runner.addresses[0][:2]
        self._address = (host, port)
        self._port = port
        self._stopping = asyncio.Event()
        self._runner = runner

    async def stop(self) -> None:
        """Close the port and drop every connection, answered or not; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        # Release waiting handlers first: aiohttp's cleanup waits for them to finish.
        self._stopping.set()
        await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        stopping = self._stopping
        if self.delay > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.delay):
                    await stopping.wait()
        document = None if stopping.is_set() else self._provider()
        if document is None:
            await stopping.wait()
            # Going down: close without a word. The response below can no longer be sent;
            # aiohttp treats that as a client that left.
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=503)
        return web.json_response(document)

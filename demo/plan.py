"""What the demo will do, decided from the arguments alone (pure, no I/O).

The plan is what keeps real servers safe: against a server given on the command line the demo
never kills a node. MongoDB primaries are asked to step down through the driver
(``replSetStepDown``), which any replica set allows; an EventStore leader cannot be stopped
from a client, so that fault is skipped and said so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

__all__ = [
    "EventStoreTarget",
    "MongoTarget",
    "Plan",
    "PlanError",
    "build_plan",
    "hide_credentials",
    "parse_eventstore",
    "parse_mongo_uri",
]

MongoFault = Literal["kill", "step-down"]

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]*@")
_BARE_USERINFO = re.compile(r"(?<![\w/])[^\s/@:]+:[^\s/@]*@(?=[\w\[])")
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


class PlanError(ValueError):
    """The arguments name no usable target (the command line exits with 2)."""


def hide_credentials(text: str) -> str:
    """``text`` with every ``user:password@`` (in a URL or bare) replaced by ``***@``."""
    return _BARE_USERINFO.sub("***@", _USERINFO.sub(r"\1***@", text))


@dataclass(frozen=True)
class MongoTarget:
    """A replica set: embedded (``uri`` is None until the simulator starts) or a real one."""

    uri: str | None
    hosts: str  # host list for display, never credentials

    @property
    def embedded(self) -> bool:
        return self.uri is None

    @property
    def fault(self) -> MongoFault:
        return "kill" if self.embedded else "step-down"

    def describe(self) -> str:
        if self.embedded:
            return "embedded clustersim replica set rs0 (3 members, 400 ms elections)"
        return f"MongoDB at {self.hosts} (credentials and options not shown)"

    def __repr__(self) -> str:  # the URI may hold a password: never in a repr or traceback
        return f"MongoTarget({self.describe()!r})"


@dataclass(frozen=True)
class EventStoreTarget:
    """An EventStore: embedded, gossip seeds (cluster discovery), or one node's TCP address."""

    kind: Literal["embedded", "gossip", "tcp"]
    addresses: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @property
    def embedded(self) -> bool:
        return self.kind == "embedded"

    @property
    def kills_leader(self) -> bool:
        return self.embedded

    def describe(self) -> str:
        if self.embedded:
            return "embedded clustersim EventStore cluster (3 nodes, 400 ms elections)"
        where = ",".join(f"{host}:{port}" for host, port in self.addresses)
        how = "gossip seeds" if self.kind == "gossip" else "single node over TCP"
        login = "credentials given (not shown)" if self.password else "default admin login"
        return f"EventStore {how} {where}{' with TLS' if self.tls else ''}, {login}"

    def __repr__(self) -> str:  # never show the password, even in a traceback
        return f"EventStoreTarget({self.describe()!r})"


@dataclass(frozen=True)
class Plan:
    mongo: MongoTarget
    eventstore: EventStoreTarget
    writes: int = 120
    events: int = 100

    @property
    def mongo_faults(self) -> tuple[MongoFault, ...]:
        return (self.mongo.fault, self.mongo.fault)

    @property
    def eventstore_faults(self) -> tuple[Literal["kill"], ...]:
        return ("kill",) if self.eventstore.kills_leader else ()

    def describe(self) -> list[str]:
        """One line per decision, for ``--plan`` and the demo's opening."""
        mongo = (
            "kill the primary twice (each restarted a little later)"
            if self.mongo.fault == "kill"
            else "ask the primary to step down twice (replSetStepDown through the driver); "
            "no node is killed"
        )
        eventstore = (
            "kill the leader once during the catch-up subscription (restarted afterwards)"
            if self.eventstore.kills_leader
            else "leader kill skipped: a real cluster's leader cannot be stopped from a client"
        )
        return [
            f"MongoDB target: {self.mongo.describe()}",
            f"EventStore target: {self.eventstore.describe()}",
            f"MongoDB faults: {mongo}",
            f"EventStore faults: {eventstore}",
            f"Workload: {self.writes} order writes (+ an update on every 4th), "
            f"{self.events} events per EventStore stream",
        ]


def parse_mongo_uri(uri: str) -> MongoTarget:
    """A real replica set's connection string; only its host list is ever displayed."""
    match = re.match(r"^(mongodb(?:\+srv)?)://([^/?#]*)", uri)
    if match is None:
        raise PlanError("--mongo-uri must start with mongodb:// or mongodb+srv://")
    hosts = match.group(2).rsplit("@", 1)[-1]
    if not hosts:
        raise PlanError("--mongo-uri names no host")
    return MongoTarget(uri=uri, hosts=hosts)


def parse_eventstore(value: str, *, tls: bool = False) -> EventStoreTarget:
    """``[gossip://|tcp://][user:password@]host:port[,host:port...]``; bare means gossip seeds."""
    kind: Literal["gossip", "tcp"] = "gossip"
    rest = value.strip()
    scheme, sep, after = rest.partition("://")
    if sep:
        if scheme.lower() not in ("gossip", "tcp"):
            raise PlanError("--eventstore takes gossip://host:port,... or tcp://host:port")
        kind = "gossip" if scheme.lower() == "gossip" else "tcp"
        rest = after
    username = password = None
    if "@" in rest:
        userinfo, rest = rest.rsplit("@", 1)
        user, _, secret = userinfo.partition(":")
        username, password = unquote(user) or None, unquote(secret) or None
    addresses = []
    for part in (p.strip() for p in rest.split(",")):
        found = _HOST_PORT.match(part)
        if found is None or not 0 < int(found.group(2)) < 65536:
            raise PlanError(f"--eventstore: {part or '(empty)'!r} is not host:port")
        addresses.append((found.group(1).strip("[]"), int(found.group(2))))
    if kind == "tcp" and len(addresses) != 1:
        raise PlanError("--eventstore tcp:// takes exactly one host:port")
    return EventStoreTarget(kind, tuple(addresses), username, password, tls)


def build_plan(
    mongo_uri: str | None = None, eventstore: str | None = None, *, eventstore_tls: bool = False
) -> Plan:
    """The plan for these arguments; raises :class:`PlanError` for unusable ones."""
    if eventstore_tls and eventstore is None:
        raise PlanError("--eventstore-tls needs --eventstore (the embedded cluster has no TLS)")
    mongo = parse_mongo_uri(mongo_uri) if mongo_uri is not None else MongoTarget(None, "")
    store = (
        parse_eventstore(eventstore, tls=eventstore_tls)
        if eventstore is not None
        else EventStoreTarget("embedded")
    )
    return Plan(mongo=mongo, eventstore=store)

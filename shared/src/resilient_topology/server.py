"""What one server is, as seen by its last check: :class:`ServerDescription`.

A description is built from a hello (or legacy isMaster) reply, the moving-average round-trip
time and the time of the check, all passed in. It never changes afterwards: a newer check makes a
new description. ``==`` follows the SDAM spec's equality (round-trip times and update times are
ignored), which is what decides whether a change is worth publishing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ._types import ServerType
from .address import Address
from .errors import InvalidAddress, InvalidHelloReply, describe_error

__all__ = ["ServerDescription", "TopologyVersion", "object_id_bytes"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TopologyVersion:
    """A server's ``topologyVersion``: its process identity and a counter bumped on each change."""

    process_id: bytes
    counter: int

    def is_older_than(self, other: TopologyVersion | None) -> bool:
        """True only for the same process with a lower counter; a new process is never older."""
        return (
            other is not None
            and other.process_id == self.process_id
            and other.counter > self.counter
        )


@dataclass(frozen=True, slots=True)
class ServerDescription:
    """An immutable view of one server.

    ``error`` holds a short message when the last check failed; ``round_trip_time`` is the moving
    average in seconds; ``last_update_time`` and ``last_write_date`` are seconds (the caller's clock
    and the server's wall clock respectively).
    """

    address: Address
    server_type: ServerType = ServerType.Unknown
    error: str | None = None
    min_wire_version: int | None = None  # None until a server reports; a reply lacking it means 0
    max_wire_version: int | None = None
    me: Address | None = None
    hosts: frozenset[Address] = frozenset()
    passives: frozenset[Address] = frozenset()
    arbiters: frozenset[Address] = frozenset()
    tags: Mapping[str, str] = field(default_factory=dict)
    set_name: str | None = None
    set_version: int | None = None
    election_id: bytes | None = None
    primary: Address | None = None
    logical_session_timeout_minutes: int | None = None
    topology_version: TopologyVersion | None = None
    # Other ways to reach this server, by role (EventStore: "tcp", "secure_tcp", "http").
    endpoints: Mapping[str, Address] = field(default_factory=dict)
    service_id: bytes | None = field(default=None, compare=False)
    hello_ok: bool = field(default=False, compare=False)
    round_trip_time: float | None = field(default=None, compare=False)
    min_round_trip_time: float | None = field(default=None, compare=False)
    last_update_time: float | None = field(default=None, compare=False)
    last_write_date: float | None = field(default=None, compare=False)

    def __hash__(self) -> int:
        return hash((self.address, self.server_type, self.error, self.set_name, self.primary))

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def unknown(
        cls,
        address: Address,
        error: str | BaseException | None = None,
        *,
        topology_version: TopologyVersion | None = None,
        now: float | None = None,
    ) -> ServerDescription:
        """The description of a server not (or no longer) known to be usable."""
        return cls(
            address=address,
            error=None if error is None else describe_error(error),
            topology_version=topology_version,
            last_update_time=now,
        )

    @classmethod
    def load_balancer(cls, address: Address) -> ServerDescription:
        """A load balancer is never checked; its description is fixed."""
        return cls(address=address, server_type=ServerType.LoadBalancer)

    @classmethod
    def from_hello(
        cls,
        address: Address,
        reply: Mapping[str, Any],
        *,
        round_trip_time: float | None,
        now: float,
        min_round_trip_time: float | None = None,
    ) -> ServerDescription:
        """Build a description from a hello reply, raising :class:`InvalidHelloReply` on bad input.

        A reply with ``ok`` other than 1 gives an Unknown description carrying the server's
        message, as the SDAM spec asks; a reply that cannot be trusted raises instead of guessing.
        """
        if not isinstance(reply, Mapping):
            raise InvalidHelloReply(f"hello reply from {address} is a {type(reply).__name__}")
        if round_trip_time is not None and not _is_non_negative(round_trip_time):
            raise InvalidHelloReply(f"round-trip time {round_trip_time!r} is not a duration")
        ok = reply.get("ok")
        if isinstance(ok, bool) or not isinstance(ok, int | float) or ok != 1:
            message = reply.get("errmsg")
            text = message if isinstance(message, str) else f"hello reply has ok={ok!r}"
            return cls.unknown(address, text, now=now)
        parsed = _HelloFields(address, reply)
        server_type = parsed.server_type()
        return cls(
            address=address,
            server_type=server_type,
            min_wire_version=parsed.integer("minWireVersion", default=0),
            max_wire_version=parsed.integer("maxWireVersion", default=0),
            me=parsed.address("me"),
            hosts=parsed.addresses("hosts"),
            passives=parsed.addresses("passives"),
            arbiters=parsed.addresses("arbiters"),
            tags=parsed.tags(),
            set_name=parsed.string("setName"),
            set_version=parsed.optional_integer("setVersion"),
            election_id=parsed.object_id("electionId"),
            primary=parsed.address("primary"),
            logical_session_timeout_minutes=parsed.optional_integer("logicalSessionTimeoutMinutes"),
            topology_version=parsed.topology_version(),
            service_id=parsed.object_id("serviceId"),
            hello_ok=bool(reply.get("helloOk", False)),
            round_trip_time=round_trip_time,
            min_round_trip_time=min_round_trip_time,
            last_update_time=now,
            last_write_date=parsed.last_write_date(),
        )

    def to_unknown(self, error: str | BaseException | None = None) -> ServerDescription:
        """This server as Unknown, keeping its address, topology version and update time."""
        return ServerDescription.unknown(
            self.address,
            error,
            topology_version=self.topology_version,
            now=self.last_update_time,
        )

    # --- questions selection and callers ask --------------------------------------------------

    @property
    def is_known(self) -> bool:
        return self.server_type is not ServerType.Unknown

    @property
    def is_writable(self) -> bool:
        return self.server_type in _WRITABLE

    @property
    def is_readable(self) -> bool:
        return self.server_type is ServerType.RSSecondary or self.is_writable

    @property
    def is_data_bearing(self) -> bool:
        return self.server_type.is_data_bearing

    @property
    def all_hosts(self) -> frozenset[Address]:
        """Members this server reports: hosts, passives and arbiters."""
        return self.hosts | self.passives | self.arbiters


_WRITABLE = frozenset(
    {ServerType.RSPrimary, ServerType.Standalone, ServerType.Mongos, ServerType.LoadBalancer}
)


class _HelloFields:
    """Typed access to a hello reply; every malformed field raises naming itself."""

    __slots__ = ("_address", "_reply")

    def __init__(self, address: Address, reply: Mapping[str, Any]) -> None:
        self._address = address
        self._reply = reply

    def _bad(self, name: str, expected: str) -> InvalidHelloReply:
        value = self._reply.get(name)
        return InvalidHelloReply(
            f"hello reply from {self._address}: {name!r} should be {expected}, "
            f"got {type(value).__name__}"
        )

    def server_type(self) -> ServerType:
        get = self._reply.get
        if get("serviceId") is not None:
            return ServerType.LoadBalancer
        if get("isreplicaset"):
            return ServerType.RSGhost
        if self.string("setName") is not None:
            if get("hidden"):
                return ServerType.RSOther
            if get("isWritablePrimary") or get("ismaster"):
                return ServerType.RSPrimary
            if get("secondary"):
                return ServerType.RSSecondary
            if get("arbiterOnly"):
                return ServerType.RSArbiter
            return ServerType.RSOther
        if self.string("msg") == "isdbgrid":
            return ServerType.Mongos
        return ServerType.Standalone

    def string(self, name: str) -> str | None:
        value = self._reply.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._bad(name, "a string")
        return value

    def integer(self, name: str, *, default: int) -> int:
        value = self.optional_integer(name)
        return default if value is None else value

    def optional_integer(self, name: str) -> int | None:
        value = self._reply.get(name)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(name, "an integer")
        return int(value)

    def address(self, name: str) -> Address | None:
        text = self.string(name)
        if text is None:
            return None
        try:
            return Address.of(text)
        except InvalidAddress as exc:
            raise InvalidHelloReply(f"hello reply from {self._address}: {name!r}: {exc}") from None

    def addresses(self, name: str) -> frozenset[Address]:
        value = self._reply.get(name)
        if value is None:
            return frozenset()
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
            raise self._bad(name, "a list of host strings")
        found = []
        for item in value:
            if not isinstance(item, str):
                raise self._bad(name, "a list of host strings")
            try:
                found.append(Address.of(item))
            except InvalidAddress as exc:
                message = f"hello reply from {self._address}: {name!r}: {exc}"
                raise InvalidHelloReply(message) from None
        return frozenset(found)

    def tags(self) -> Mapping[str, str]:
        value = self._reply.get("tags")
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise self._bad("tags", "a mapping of strings to strings")
        return dict(value)

    def object_id(self, name: str) -> bytes | None:
        value = self._reply.get(name)
        if value is None:
            return None
        try:
            return object_id_bytes(value)
        except ValueError:
            raise self._bad(name, "an ObjectId") from None

    def topology_version(self) -> TopologyVersion | None:
        value = self._reply.get("topologyVersion")
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self._bad("topologyVersion", "a document")
        return topology_version_from(value, self._address)

    def last_write_date(self) -> float | None:
        last_write = self._reply.get("lastWrite")
        if last_write is None:
            return None
        if not isinstance(last_write, Mapping):
            raise self._bad("lastWrite", "a document")
        value = last_write.get("lastWriteDate")
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise self._bad("lastWrite.lastWriteDate", "a datetime")
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return (aware - _EPOCH).total_seconds()


def topology_version_from(value: Mapping[str, Any], source: object) -> TopologyVersion:
    """Parse ``{processId, counter}``; raises :class:`InvalidHelloReply` naming ``source``."""
    counter = value.get("counter")
    if isinstance(counter, bool) or not isinstance(counter, int):
        raise InvalidHelloReply(f"{source}: topologyVersion.counter should be an integer")
    try:
        process_id = object_id_bytes(value.get("processId"))
    except ValueError:
        raise InvalidHelloReply(
            f"{source}: topologyVersion.processId should be an ObjectId"
        ) from None
    return TopologyVersion(process_id, int(counter))


def object_id_bytes(value: object) -> bytes:
    """The 12 bytes of an ObjectId given as ``bson.ObjectId``, bytes or a 24-digit hex string.

    The core does not import bson; anything with a 12-byte ``binary`` attribute is accepted.
    """
    raw = getattr(value, "binary", value)
    if isinstance(raw, str):
        try:
            raw = bytes.fromhex(raw)
        except ValueError:
            raise ValueError("not a hex ObjectId") from None
    if isinstance(raw, bytes | bytearray) and len(raw) == 12:
        return bytes(raw)
    raise ValueError(f"not an ObjectId: {type(value).__name__}")


def _is_non_negative(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )

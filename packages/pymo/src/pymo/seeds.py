"""From ``MongoClient`` arguments to the seed list and the bound on the fail-fast wait.

Seeds are found exactly where pymongo finds them: the ``host`` argument (a host string, a
``mongodb://`` or ``mongodb+srv://`` URI, or a list of those) with ``port`` as the default port.
URIs go through pymongo's own parser, so their options are read as pymongo reads them, and a
``mongodb+srv://`` URI is resolved through DNS (dnspython, a dependency of pymongo) into real
seeds. A resolution that yields no seed is a configuration error, never a silent wait.

The wait is bounded by one number, in seconds, taken from the first of: the ``fail_fast_timeout``
argument, a ``serverSelectionTimeoutMS`` keyword argument, a ``serverSelectionTimeoutMS`` URI
option, :data:`DEFAULT_FAIL_FAST_TIMEOUT`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pymongo.errors
from pymongo.uri_parser import parse_uri, split_hosts

from resilient_topology import Address, TopologySettings
from resilient_topology.errors import ConfigurationError as CoreConfigurationError

from .errors import PymoConfigurationError

__all__ = ["DEFAULT_FAIL_FAST_TIMEOUT", "ClientPlan", "plan_client"]

DEFAULT_FAIL_FAST_TIMEOUT = 5.0
"""Seconds to wait for the seeds' first heartbeats when nothing else sets the bound."""

_DEFAULT_HOST = "localhost"
_DEFAULT_PORT = 27017
_CONNECT_POSITION = 4  # MongoClient(host, port, document_class, tz_aware, connect, ...)
_URI_SCHEMES = ("mongodb://", "mongodb+srv://")


@dataclass(frozen=True, slots=True)
class ClientPlan:
    """The client's arguments (with ``connect=True`` forced) and what the wait needs."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    settings: TopologySettings
    timeout: float


def plan_client(
    args: tuple[Any, ...], kwargs: Mapping[str, Any], fail_fast_timeout: float | None
) -> ClientPlan:
    """Resolve seeds and options; raise :class:`PymoConfigurationError` when that fails."""
    host = args[0] if args else kwargs.get("host")
    port = args[1] if len(args) > 1 else kwargs.get("port")
    port = _DEFAULT_PORT if port is None else port
    seeds, uri_options = _seeds(_DEFAULT_HOST if host is None else host, port, kwargs)
    options = {**uri_options, **_keyword_options(kwargs)}
    if options.get("loadbalanced"):
        raise PymoConfigurationError(
            "fail_fast needs heartbeats and a load-balanced client has none; pass fail_fast=False"
        )
    try:
        settings = TopologySettings(
            tuple(seeds),
            replica_set_name=options.get("replicaset"),
            direct_connection=options.get("directconnection"),
        )
    except CoreConfigurationError as exc:
        raise PymoConfigurationError(str(exc)) from exc
    timeout = _bound(fail_fast_timeout, options.get("serverselectiontimeoutms"))
    new_args, new_kwargs = list(args), dict(kwargs)
    if len(new_args) > _CONNECT_POSITION:
        new_args[_CONNECT_POSITION] = True
    else:
        new_kwargs["connect"] = True
    return ClientPlan(tuple(new_args), new_kwargs, settings, timeout)


def _seeds(
    host: object, port: object, kwargs: Mapping[str, Any]
) -> tuple[list[Address], dict[str, Any]]:
    entities = [host] if isinstance(host, str) else host
    if not isinstance(entities, list | tuple) or not all(isinstance(e, str) for e in entities):
        raise PymoConfigurationError("host must be a string or a list of strings")
    if not isinstance(port, int) or isinstance(port, bool):
        raise PymoConfigurationError("port must be an integer")
    lower = {key.lower(): value for key, value in kwargs.items()}
    seeds: list[Address] = []
    options: dict[str, Any] = {}
    try:
        for entity in entities:
            if entity.startswith(_URI_SCHEMES):
                parsed = parse_uri(
                    entity,
                    port,
                    srv_service_name=lower.get("srvservicename"),
                    srv_max_hosts=lower.get("srvmaxhosts"),
                )
                nodes = parsed["nodelist"]
                options.update({k.lower(): v for k, v in parsed["options"].items()})
            else:
                nodes = split_hosts(entity, port)
            seeds.extend(Address.of(node) for node in nodes)
    except (pymongo.errors.ConfigurationError, ValueError) as exc:  # pymongo raises both
        raise PymoConfigurationError(f"cannot build the seed list: {exc}") from exc
    if not seeds:
        raise PymoConfigurationError("the host arguments (or their SRV record) yield no seed")
    return seeds, options


def _keyword_options(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword options that shape discovery, keyed like :func:`parse_uri`'s (lower case)."""
    options: dict[str, Any] = {}
    for key, value in kwargs.items():
        name = key.lower()
        if name in ("replicaset", "directconnection", "loadbalanced"):
            options[name] = value
        elif name == "serverselectiontimeoutms" and value is not None:
            options[name] = _seconds(key, value, scale=1000.0)
    return options


def _bound(explicit: float | None, selection_timeout: float | None) -> float:
    if explicit is not None:
        return _seconds("fail_fast_timeout", explicit)
    if selection_timeout is not None:
        return float(selection_timeout)
    return DEFAULT_FAIL_FAST_TIMEOUT


def _seconds(name: str, value: object, scale: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PymoConfigurationError(f"{name} must be a finite number, got {value!r}")
    if value < 0:
        raise PymoConfigurationError(f"{name} must not be negative, got {value!r}")
    return float(value) / scale

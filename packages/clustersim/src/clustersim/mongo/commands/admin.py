"""Handshake, health and control commands."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..topology import MAX_WIRE_VERSION, Role
from .base import CommandContext, CommandError

__all__ = ["HANDLERS"]

SERVER_VERSION = "7.0.12"


async def hello(context: CommandContext) -> dict[str, Any]:
    legacy = context.name == "ismaster"
    return context.deployment.roles.hello(context.member, legacy=legacy)


async def ping(context: CommandContext) -> dict[str, Any]:
    return {"ok": 1.0}


async def build_info(context: CommandContext) -> dict[str, Any]:
    return {
        "version": SERVER_VERSION,
        "versionArray": [int(p) for p in SERVER_VERSION.split(".")] + [0],
        "gitVersion": "clustersim",
        "maxBsonObjectSize": 16 * 1024 * 1024,
        "maxWireVersion": MAX_WIRE_VERSION,
        "ok": 1.0,
    }


async def end_sessions(context: CommandContext) -> dict[str, Any]:
    return {"ok": 1.0}


async def configure_fail_point(context: CommandContext) -> dict[str, Any]:
    if context.database != "admin":
        raise CommandError(13, "Unauthorized", "configureFailPoint may only be run against admin")
    context.deployment.failpoints.configure(context.command)
    return {"count": 0, "ok": 1.0}


async def repl_set_step_down(context: CommandContext) -> dict[str, Any]:
    deployment = context.deployment
    roles = deployment.roles
    if roles.standalone or roles.router:
        raise CommandError(76, "NoReplicationEnabled", "not running with --replSet")
    if roles.primary != context.member:
        raise CommandError(10107, "NotWritablePrimary", "not primary so can't step down")
    deployment.step_down()
    return {"ok": 1.0}


async def repl_set_get_status(context: CommandContext) -> dict[str, Any]:
    roles = context.deployment.roles
    if roles.standalone or roles.router:
        raise CommandError(76, "NoReplicationEnabled", "not running with --replSet")
    members = []
    for member in roles.members:
        role = roles.role(member.index)
        state, name = {
            Role.PRIMARY: (1, "PRIMARY"),
            Role.SECONDARY: (2, "SECONDARY"),
            Role.DOWN: (8, "(not reachable/healthy)"),
        }[role]
        members.append(
            {
                "_id": member.index,
                "name": member.address,
                "health": 0 if role is Role.DOWN else 1,
                "state": state,
                "stateStr": name,
                "self": member.index == context.member,
            }
        )
    return {
        "set": roles.name,
        "date": datetime.now(UTC),
        "myState": members[context.member]["state"],
        "term": roles.term,
        "members": members,
        "ok": 1.0,
    }


async def get_parameter(context: CommandContext) -> dict[str, Any]:
    return {"ok": 1.0}


HANDLERS = {
    "hello": hello,
    "ismaster": hello,
    "ping": ping,
    "buildinfo": build_info,
    "endsessions": end_sessions,
    "configurefailpoint": configure_fail_point,
    "replsetstepdown": repl_set_step_down,
    "replsetgetstatus": repl_set_get_status,
    "getparameter": get_parameter,
}

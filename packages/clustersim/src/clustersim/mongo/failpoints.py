"""``configureFailPoint: "failCommand"``, as mongod's test hooks offer it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .commands.base import CommandError

__all__ = ["FailCommand", "FailPoints"]


@dataclass
class FailCommand:
    """One armed failCommand: which commands, how often, and what to do to them."""

    commands: frozenset[str]
    times: int | None  # None: always on
    skip: int
    data: Mapping[str, Any]

    def matches(self, command: str, app_name: str | None) -> bool:
        wanted = self.data.get("appName")
        return command in self.commands and (wanted is None or wanted == app_name)


class FailPoints:
    """The armed failpoints of a deployment (shared by its members, like the failpoint API)."""

    def __init__(self) -> None:
        self._fail_command: FailCommand | None = None

    def configure(self, command: Mapping[str, Any]) -> None:
        name = command.get("configureFailPoint")
        if name != "failCommand":
            raise CommandError(2, "BadValue", f"unknown fail point {name!r}")
        mode = command.get("mode")
        data = command.get("data") or {}
        if not isinstance(data, Mapping):
            raise CommandError(2, "BadValue", "failpoint data must be a document")
        if mode == "off":
            self._fail_command = None
            return
        times: int | None = None
        skip = 0
        if mode == "alwaysOn":
            pass
        elif isinstance(mode, Mapping) and "times" in mode:
            times = int(mode["times"])
        elif isinstance(mode, Mapping) and "skip" in mode:
            skip = int(mode["skip"])
        else:
            raise CommandError(2, "BadValue", f"unsupported failpoint mode {mode!r}")
        names = data.get("failCommands") or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CommandError(2, "BadValue", "failCommands must be a list of command names")
        self._fail_command = FailCommand(frozenset(n.lower() for n in names), times, skip, data)

    def take(self, command: str, app_name: str | None) -> Mapping[str, Any] | None:
        """The failpoint's data if it fires for this command now (counting it), else None."""
        point = self._fail_command
        if point is None or not point.matches(command, app_name):
            return None
        if point.skip > 0:
            point.skip -= 1
            return None
        if point.times is not None:
            point.times -= 1
            if point.times <= 0:
                self._fail_command = None
        return point.data

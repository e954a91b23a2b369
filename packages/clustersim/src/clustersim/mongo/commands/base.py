"""What every command handler gets and may raise."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..deployment import Deployment

__all__ = ["CommandContext", "CommandError", "Handler"]


class CommandError(Exception):
    """A command failed the way MongoDB reports it: ``ok: 0`` with a code and a name."""

    def __init__(
        self,
        code: int,
        code_name: str,
        message: str,
        *,
        labels: Sequence[str] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.code_name = code_name
        self.message = message
        self.labels = tuple(labels)
        self.extra = dict(extra or {})

    def reply(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "ok": 0.0,
            "errmsg": self.message,
            "code": self.code,
            "codeName": self.code_name,
        }
        if self.labels:
            document["errorLabels"] = list(self.labels)
        document.update(self.extra)
        return document


@dataclass
class CommandContext:
    """One command as a member received it."""

    deployment: Deployment
    member: int
    database: str
    command: dict[str, Any]
    app_name: str | None = None
    extra_reply: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return next(iter(self.command)).lower()

    @property
    def argument(self) -> Any:
        return next(iter(self.command.values()))

    def collection_name(self) -> str:
        value = self.argument
        if not isinstance(value, str) or not value:
            raise CommandError(73, "InvalidNamespace", f"invalid collection name {value!r}")
        return value

    @property
    def namespace(self) -> str:
        return f"{self.database}.{self.collection_name()}"


Handler = Callable[[CommandContext], Awaitable[dict[str, Any]]]

"""The selectors of the original pymo, and their normalised form.

The names and values are the original's, so code written for it keeps working:
``SERVER_STATE_SELECTORS`` is the named tuple ``ServerStateType(Writable=0, Readable=1)`` and
``SERVER_TYPE_SELECTORS`` is pymongo's own ``SERVER_TYPE`` (``Unknown=0, Mongos=1, ...``). Their
values overlap (``Writable == Unknown == 0``), which is why states and types are passed in two
separate arguments. Each argument takes one selector or an iterable of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from pymongo.server_type import SERVER_TYPE

from resilient_topology import ServerType

from .errors import PymoConfigurationError

__all__ = ["SERVER_STATE_SELECTORS", "SERVER_TYPE_SELECTORS", "Selectors", "ServerStateType"]


class ServerStateType(NamedTuple):
    Writable: int = 0
    Readable: int = 1


SERVER_STATE_SELECTORS = ServerStateType()
SERVER_TYPE_SELECTORS = SERVER_TYPE

StateSelector = int | str
TypeSelector = int | str | ServerType
_STATE_NAMES: tuple[str, ...] = ServerStateType._fields
_TYPE_NAMES: tuple[str, ...] = tuple(SERVER_TYPE._fields)


@dataclass(frozen=True, slots=True)
class Selectors:
    """State names (``Writable``, ``Readable``) and server type names a seed may match."""

    states: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        """No selector: then every seed must answer, and none may fail (the original's rule)."""
        return not self.states and not self.types

    @classmethod
    def of(cls, state_selectors: object = None, type_selectors: object = None) -> Selectors:
        """Normalise the user's arguments; a single selector stands for a list of one."""
        return cls(
            frozenset(_state_name(s) for s in _as_list(state_selectors)),
            frozenset(_type_name(t) for t in _as_list(type_selectors)),
        )

    def describe(self) -> str:
        names = sorted(self.states) + sorted(self.types)
        return " or ".join(names) if names else "every seed answering without error"


def _as_list(value: object) -> list[object]:
    if value is None:
        return []
    if isinstance(value, str | int | ServerType):
        return [value]
    if isinstance(value, Iterable):
        return list(value)
    raise PymoConfigurationError(f"a selector or a list of selectors is needed, got {value!r}")


def _state_name(value: object) -> str:
    if isinstance(value, str) and value in _STATE_NAMES:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(_STATE_NAMES):
        return _STATE_NAMES[value]
    raise PymoConfigurationError(
        f"unknown state selector {value!r}; use pymo.SERVER_STATE_SELECTORS.Writable or .Readable"
    )


def _type_name(value: object) -> str:
    if isinstance(value, ServerType):
        return value.value
    if isinstance(value, str) and value in _TYPE_NAMES:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(_TYPE_NAMES):
        return _TYPE_NAMES[value]
    raise PymoConfigurationError(
        f"unknown type selector {value!r}; use a member of pymo.SERVER_TYPE_SELECTORS"
    )

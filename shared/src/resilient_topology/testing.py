"""Test helpers shared by every package's tests: a settable clock and a scripted probe."""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Mapping
from typing import Any

from .address import Address

__all__ = ["FakeClock", "ScriptedProbe"]


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


Outcome = Mapping[str, Any] | BaseException


class ScriptedProbe:
    """A probe answering from per-address scripts; the last outcome repeats once a script ends.

    An address with no script fails with ``ConnectionRefusedError``. ``calls`` records every
    check in order, and ``checked`` is set on each one so tests can wait without sleeping.
    """

    def __init__(self, scripts: Mapping[Address, list[Outcome]] | None = None) -> None:
        self._scripts: dict[Address, deque[Outcome]] = defaultdict(deque)
        for address, outcomes in (scripts or {}).items():
            self._scripts[address].extend(outcomes)
        self.calls: list[Address] = []
        self.checked = asyncio.Condition()

    def script(self, address: Address, *outcomes: Outcome) -> None:
        """Replace what ``address`` answers from its next check on."""
        self._scripts[address] = deque(outcomes)

    async def check(self, address: Address, timeout: float) -> Mapping[str, Any]:
        script = self._scripts.get(address)
        if not script:
            outcome: Outcome = ConnectionRefusedError(f"nothing scripted for {address}")
        elif len(script) > 1:
            outcome = script.popleft()
        else:
            outcome = script[0]
        self.calls.append(address)
        async with self.checked:
            self.checked.notify_all()
        await asyncio.sleep(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def wait_for_calls(self, count: int) -> None:
        """Return once at least ``count`` checks have run in all."""
        async with self.checked:
            await self.checked.wait_for(lambda: len(self.calls) >= count)

"""The original README's examples, run against a simulated cluster on the default ports.

The README is read from the seed documents beside the repository (``SEEDS_DIR``, by default
``../shared/seeds``), not copied here. Its examples are doctest-like ``>>>`` blocks (one
continuing session, with top-level ``await`` as in ``python -m asyncio``) and one
``.. code-block:: python`` block (a standalone snippet). They use ``connect()``'s defaults, so a
three-node simulated cluster runs in this process with node 0 (the leader) on localhost:1113 and
its gossip on 2113; the tests skip when those ports are taken.

Every block that is valid Python runs as written. Exactly two blocks are not valid Python; each
runs in a minimally corrected form, every correction listed beside it (``CORRECTIONS``). The
README leaves a few names to the reader (``conn``, some imports); ``SESSION_CONTEXT`` and
``SNIPPET_CONTEXT`` supply them. Some blocks that are valid Python fail when run as written,
through bugs of the README itself; the tests pin those failures precisely and then run the
smallest fix. ``print`` is captured so the tests can see what the examples print.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import photonpump
import pytest
from clustersim.errors import SimulatorConfigurationError
from clustersim.eventstore import Cluster
from photonpump import Client, Event, NewEvent, StreamDirection

from .conftest import BOUND, eventually

ROOT = Path(__file__).resolve().parents[2]
SEED_MARKER = "Photon-pump is a fast, user-friendly client for Eventstore"
PROMPT = re.compile(r"^\s*>>>(?: |$)(.*)$")
CODE_BLOCK = ".. code-block:: python"


@dataclass(frozen=True)
class Block:
    index: int
    kind: str  # "session" (>>> lines) or "snippet" (a code-block)
    source: str

    @property
    def first_line(self) -> str:
        return self.source.splitlines()[0]


def seed_readme() -> str:
    folder = Path(os.environ.get("SEEDS_DIR") or ROOT.parent / "shared" / "seeds")
    if not folder.is_dir():
        pytest.skip(f"seed documents not found in {folder} (set SEEDS_DIR)")
    for path in sorted(folder.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        if SEED_MARKER in text:
            return text
    pytest.fail(f"no photon-pump README among the seeds in {folder}")


def extract_blocks(text: str) -> list[Block]:
    """Each run of ``>>>`` lines (prompts stripped), and each ``code-block`` (dedented)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if PROMPT.match(lines[i]):
            body = []
            while i < len(lines) and (found := PROMPT.match(lines[i])):
                body.append(found.group(1))
                i += 1
            blocks.append(Block(len(blocks), "session", "\n".join(body)))
        elif lines[i].strip() == CODE_BLOCK:
            i += 1
            body = []
            while i < len(lines) and not PROMPT.match(lines[i]):
                if lines[i].strip() and not lines[i].startswith(" "):
                    break  # back to the prose
                body.append(lines[i])
                i += 1
            source = textwrap.dedent("\n".join(body)).strip("\n")
            blocks.append(Block(len(blocks), "snippet", source))
        else:
            i += 1
    return blocks


def compiles(source: str) -> bool:
    try:
        compile(source, "<readme>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError:
        return False
    return True


# The first line of every block, in order: the README's examples, so that none is added,
# lost or changed unnoticed.
EXPECTED_BLOCKS = [
    ("session", "import asyncio"),
    ("session", "import asyncio"),
    ("session", "# When publishing events, you must provide the stream name."),
    ("session", "event_number = result.last_event_number"),
    ("snippet", "async def write_an_event():"),
    ("session", "data = event.json()"),
    ("session", "stream = 'more_ponies'"),
    ("session", "import StreamDirection from photonpump.messages"),
    ("session", "async for event in conn.iter(stream):"),
    ("session", "async def feet_to_metres(jumps):"),
    ("session", "async def create_subscription(subscription_name, stream_name, conn):"),
    ("session", "async def read_events_from_subscription(subscription_name, stream_name, conn):"),
    ("session", "async def subscribe_to_stream(stream, conn):"),
    ("session", "async def connect_to_cluster(hostname_or_ip, port=2113):"),
]
NOT_VALID_PYTHON = [4, 7]

# The minimal corrections of the blocks that are not valid Python: (old, new, why).
CORRECTIONS: dict[int, list[tuple[str, str, str]]] = {
    4: [
        (
            # write_two_events: the first NewEvent( is never closed.
            "'height_m': 0.6\n        },\n        NewEvent(",
            "'height_m': 0.6\n        }),\n        NewEvent(",
            "close the first NewEvent( call in write_two_events",
        ),
        (
            "NewEvent('tick', body{ 'tick': i})",
            "NewEvent('tick', body={ 'tick': i})",
            "body{...} is a syntax error: body={...}",
        ),
    ],
    7: [
        (
            "import StreamDirection from photonpump.messages",
            "from photonpump.messages import StreamDirection",
            "the import statement is written backwards",
        ),
        (
            "await conn.get(stream, max_count=1)[0].json()",
            "(await conn.get(stream, max_count=1))[0].json()",
            "await binds looser than [0]: the coroutine itself was subscripted",
        ),
        (
            "await conn.get(stream, max_count=1, from_event_number=1)[0].json()",
            "(await conn.get(stream, max_count=1, from_event=1))[0].json()",
            "the same precedence slip; and get()'s argument is from_event, in the original too",
        ),
        (
            "assert reversed_events[2] == first_event",
            "assert reversed_events[2].json() == first_event",
            "first_event holds the decoded body, not the Event",
        ),
    ],
}


def corrected(block: Block) -> str:
    source = block.source
    for old, new, _why in CORRECTIONS[block.index]:
        assert source.count(old) == 1, f"block {block.index}: {old!r} is not there exactly once"
        source = source.replace(old, new)
    assert compiles(source), f"block {block.index} still does not compile"
    return source


async def run(source: str, namespace: dict[str, Any]) -> None:
    """Run ``source`` in ``namespace`` as an asyncio REPL would (top-level ``await``)."""
    code = compile(source, "<readme>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if asyncio.iscoroutine(result):
        async with asyncio.timeout(BOUND):
            await result


class Printed(list[Any]):
    """A stand-in for ``print`` in the examples' namespace: it keeps what they print."""

    def __call__(self, *values: Any, **_options: Any) -> None:
        self.extend(values)


@pytest.fixture
def blocks() -> list[Block]:
    return extract_blocks(seed_readme())


@pytest.fixture
async def default_cluster() -> AsyncIterator[Cluster]:
    """A cluster whose leader listens where ``connect()`` looks by default."""
    try:
        es = Cluster(3, tcp_ports=[1113, 0, 0], http_ports=[2113, 0, 0])
        await es.__aenter__()
    except SimulatorConfigurationError as exc:
        pytest.skip(f"port 1113 or 2113 is taken here, the examples need them: {exc}")
    try:
        assert es.leader == 0
        yield es
    finally:
        await es.aclose()


@pytest.fixture
async def conn(default_cluster: Cluster) -> AsyncIterator[Client]:
    async with photonpump.connect(request_timeout=BOUND) as client:
        yield client


async def until_printed(
    printed: Printed, count: int, poke: Callable[[], Awaitable[object]] | None = None
) -> None:
    """Wait (bounded) until ``count`` things were printed, calling ``poke`` meanwhile."""

    async def enough() -> bool:
        if len(printed) < count and poke is not None:
            await poke()
        return len(printed) >= count

    await eventually(enough, step=0.05)


async def stop(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


# --- the README's shape ----------------------------------------------------------------------


def test_the_readme_has_these_blocks_and_exactly_two_are_not_python(blocks: list[Block]) -> None:
    assert [(b.kind, b.first_line) for b in blocks] == EXPECTED_BLOCKS
    assert [b.index for b in blocks if not compiles(b.source)] == NOT_VALID_PYTHON
    assert sorted(CORRECTIONS) == NOT_VALID_PYTHON
    for index in NOT_VALID_PYTHON:
        corrected(blocks[index])


# --- the >>> session, in order -----------------------------------------------------------------


async def test_the_readme_session(
    blocks: list[Block], conn: Client, default_cluster: Cluster
) -> None:
    printed = Printed()
    # SESSION_CONTEXT: what the README's session uses without defining it: a connected client
    # named ``conn``, and NewEvent (the prose names it, no line imports it).
    session: dict[str, Any] = {"conn": conn, "NewEvent": NewEvent, "print": printed}

    # Working with connections: both blocks pass loop=..., which is deprecated and ignored.
    for index in (0, 1):
        with pytest.warns(DeprecationWarning, match="loop"):
            await run(blocks[index].source, session)
    assert session["loop"] is asyncio.get_running_loop()
    assert session["client"].is_connected is False  # closed by the block itself

    # Reading and writing single events.
    await run(blocks[2].source, session)
    assert session["result"].last_event_number == 0
    await run(blocks[3].source, session)
    assert session["event"].type == "PonyJumped"
    await run(blocks[5].source, session)  # the example's own assert: Derpy Hooves
    assert session["data"] == {"Pony": "Derpy Hooves", "Height": 10, "Distance": 13}

    # Reading and writing in batches; block 7 is not valid Python (see CORRECTIONS).
    await run(blocks[6].source, session)
    await run(corrected(blocks[7]), session)  # its asserts: 3 events, first, second, reversed
    assert [e.event_number for e in session["reversed_events"]] == [2, 1, 0]

    # Reading with asynchronous generators.
    await run(blocks[8].source, session)
    assert [(e.stream, e.event_number) for e in printed] == [("more_ponies", n) for n in range(3)]
    printed.clear()

    # As written, feet_to_metres multiplies the whole dict: a bug of the README.
    with pytest.raises(
        TypeError, match=r"unsupported operand type\(s\) for \*: 'dict' and 'float'"
    ):
        await run(blocks[9].source, session)
    await session["jumps"].aclose()
    fixed = blocks[9].source
    for key in ("Height", "Distance"):
        wrong = f"data['{key}'] = data * 0.3048"
        assert fixed.count(wrong) == 1
        fixed = fixed.replace(wrong, f"data['{key}'] = data['{key}'] * 0.3048")
    await run(fixed, session)
    # 'ponies' holds one jump; the loop leaves it converted in ``jump``. (It prints ``event``,
    # not ``jump``: one more slip, harmless.)
    assert session["jump"] == {
        "Pony": "Derpy Hooves",
        "Height": pytest.approx(3.048),
        "Distance": pytest.approx(3.9624),
    }
    assert len(printed) == 1
    printed.clear()

    # Persistent subscriptions: create the group, then read it (the reader runs forever).
    await run(blocks[10].source, session)
    await session["create_subscription"]("pony-watchers", "ponies", conn)
    await run(blocks[11].source, session)
    reader = asyncio.create_task(
        session["read_events_from_subscription"]("pony-watchers", "ponies", conn)
    )
    try:
        await conn.publish(
            "ponies",
            [NewEvent("PonyJumped", data={"Pony": name}) for name in ("Fluttershy", "Rarity")],
        )
        await until_printed(printed, 2)
        assert [e.json()["Pony"] for e in printed] == ["Fluttershy", "Rarity"]
        group = default_cluster.state.registry.get("ponies", "pony-watchers")
        assert group is not None
        await eventually(lambda: not group.in_flight_by_id)  # the example acked both
    finally:
        await stop(reader)
    printed.clear()

    # Volatile subscriptions (the subscriber runs forever too): write until it sees one.
    await run(blocks[12].source, session)
    watcher = asyncio.create_task(session["subscribe_to_stream"]("ponies", conn))
    try:

        async def jump() -> None:
            await conn.publish_event("ponies", "PonyJumped", body={"Pony": "Applejack"})

        await until_printed(printed, 1, poke=jump)
        assert all(isinstance(e, Event) and e.stream == "ponies" for e in printed)
        assert printed[0].json() == {"Pony": "Applejack"}
    finally:
        await stop(watcher)

    # High availability: as written it uses a plain ``with`` on the async context manager.
    await run(blocks[13].source, session)
    with pytest.raises(TypeError, match="does not support the context manager protocol"):
        async with asyncio.timeout(BOUND):
            await session["connect_to_cluster"]("127.0.0.1")
    fixed = blocks[13].source.replace("    with connect(", "    async with connect(")
    assert fixed != blocks[13].source
    await run(fixed, session)
    async with asyncio.timeout(BOUND):
        await session["connect_to_cluster"]("127.0.0.1")


# --- the code-block snippet --------------------------------------------------------------------


async def test_the_readme_snippet(blocks: list[Block], conn: Client) -> None:
    printed = Printed()
    # SNIPPET_CONTEXT: the snippet is a module without its imports; these are the ones it needs.
    snippet: dict[str, Any] = {
        "asyncio": asyncio,
        "photonpump": photonpump,
        "NewEvent": NewEvent,
        "StreamDirection": StreamDirection,
        "print": printed,
    }
    await run(corrected(blocks[4]), snippet)  # block 4 is not valid Python (see CORRECTIONS)

    async with asyncio.timeout(BOUND):
        await snippet["write_an_event"]()
        await snippet["write_two_events"](conn)
        await snippet["read_an_event"](conn)
        await snippet["read_two_events"](conn)
        await snippet["stneve_owt_daer"](conn)
    names = [event.json()["name"] for event in printed]
    assert names == ["Rainbow Colossus", "Applejack", "Sunshine Carnivore"]
    assert [event.event_number for event in printed] == [1, 0, 2]  # backward: from the end

    # The three "infinite" examples are never called by the README, and cannot work as written:
    # ticker reads ``i`` before assigning it, publish() takes a sequence (in the original too),
    # and neither client has a ``stream`` method.
    ticks = snippet["ticker"](0)
    with pytest.raises(UnboundLocalError):
        await anext(ticks)
    with pytest.raises(TypeError):
        await snippet["write_an_infinite_number_of_events"](conn)
    assert not hasattr(conn, "stream")

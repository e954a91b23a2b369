"""``python -m demo`` end to end: on the embedded simulators, against servers given on the command
line (simulators started as separate processes, standing in for real ones), and its arguments.

The demo runs as a child process from the repository root, as ``nox -s demo`` runs it, with its
output piped: so these tests also see the plain-text rendering a CI log gets.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from demo.cli import main
from demo.plan import build_plan, hide_credentials, parse_eventstore
from demo.records import DemoReport, WritesRecord

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "shared" / "src", *sorted((ROOT / "packages").glob("*/src"))]
DEMO_TIMEOUT = 240.0  # seconds; the demo takes about 5 on two CPUs, each part is bounded by 60
START_TIMEOUT = 20.0
INVARIANTS = 12
ANSI = re.compile(r"\x1b\[")


def _env() -> dict[str, str]:
    """The checkout's sources importable when nothing is installed; a wide, plain, UTF-8 pipe."""
    env = dict(os.environ)
    paths = [str(p) for p in SOURCES]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["COLUMNS"] = "250"  # no wrapped table rows to parse
    env["PYTHONIOENCODING"] = "utf-8"
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(name, None)  # stdout is a pipe: the demo must see it as one
    return env


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", "-m", "demo", *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=DEMO_TIMEOUT,
        check=False,
    )


def summary(stdout: str) -> dict[str, tuple[bool, str]]:
    """The final table: invariant name → (holds, measured)."""
    _, _, tail = stdout.partition("\nSummary\n")
    rows = {}
    for line in tail.splitlines():
        found = re.match(r"^\s*([✓✗])\s+(.+?)\s{2,}(.+?)\s*$", line)
        if found:
            rows[found.group(2)] = (found.group(1) == "✓", found.group(3))
    return rows


def figure(stdout: str, name: str) -> str:
    found = re.search(rf"^{re.escape(name)}\s{{2,}}(.+?)\s*$", stdout, re.MULTILINE)
    assert found, f"no figure {name!r} in the summary"
    return found.group(1)


def numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", text)]


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    """Exit 0, every invariant shown holding, nothing on stderr (no warning, no traceback)."""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
    assert result.stderr == "", result.stderr
    assert not ANSI.search(result.stdout), "a pipe must get plain text"
    rows = summary(result.stdout)
    assert len(rows) == INVARIANTS, rows
    assert all(holds for holds, _ in rows.values()), rows
    assert f"All {INVARIANTS} invariants hold." in result.stdout


# --- on the embedded simulators ------------------------------------------------------------------


@pytest.mark.slow
def test_the_demo_runs_on_the_simulators_and_every_invariant_holds() -> None:
    result = run_demo()
    assert_clean(result)
    out = result.stdout
    rows = summary(out)
    attempted, acknowledged, lost, duplicated = numbers(figure(out, "MongoDB writes"))
    assert attempted == acknowledged == 150
    assert lost == duplicated == 0
    for stream, count in (("read back", 100), ("catch-up", 200), ("persistent", 100)):
        published, received, dup = numbers(figure(out, f"EventStore events ({stream})"))
        assert published == received == count
        assert dup == 0
    _, replica = rows["mongo_observer: the live replica equals the collection"]
    assert numbers(replica)[:3] == [120, 120, 0]  # replica, collection, differing
    _, times = rows["failover times measured"]
    assert re.fullmatch(r"MongoDB: \d+ ms; MongoDB: \d+ ms; EventStore: \d+ ms", times), times
    for n in (1, 2, 3):  # each fault: when the new primary/leader was seen, when writes resumed
        assert re.search(
            r"seen after \d+ ms, first acknowledged write after \d+ ms",
            figure(out, f"failover {n}"),
        )
    _, bound = rows["pymo: a dead seed list fails within its bound"]
    assert all(t <= 2000 for t in numbers(bound))
    assert out.count("killed primary") >= 2
    assert "killed leader" in out
    assert "hook: PrimarySwitch reason=election" in out
    assert "replSetStepDown" not in out


# --- against servers given on the command line ---------------------------------------------------


@contextmanager
def serving(*args: str) -> Iterator[str]:
    """``python -m clustersim ...`` in its own process; its first stdout line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "clustersim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            if not selector.select(START_TIMEOUT):
                pytest.fail(f"clustersim {args} printed nothing within {START_TIMEOUT} s")
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@pytest.mark.slow
def test_servers_given_on_the_command_line_are_stepped_down_never_killed() -> None:
    with (
        serving("mongo", "--members", "3") as uri,
        serving("eventstore", "--nodes", "3") as addresses,
    ):
        gossip = ",".join(json.loads(addresses)["gossip"])
        result = run_demo("--mongo-uri", uri, "--eventstore", f"gossip://admin:changeit@{gossip}")
    assert_clean(result)
    out = result.stdout
    assert "changeit" not in out
    assert "killed primary" not in out
    assert "killed leader" not in out
    assert out.count("stepped down primary") >= 2
    assert "Leader kill SKIPPED" in out
    _, times = summary(out)["failover times measured"]
    assert re.fullmatch(
        r"MongoDB: \d+ ms; MongoDB: \d+ ms; EventStore: not performed \(.+\)", times
    ), times


def test_the_plan_for_real_servers_steps_down_and_hides_credentials() -> None:
    result = run_demo(
        "--plan",
        "--mongo-uri",
        "mongodb://bob:s3cret@db1:27017,db2/?replicaSet=rs0&authSource=admin",
        "--eventstore",
        "gossip://ops:hunter2@es1:2113,es2:2113",
    )
    assert result.returncode == 0, result.stderr
    assert "s3cret" not in result.stdout + result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    assert "MongoDB at db1:27017,db2 " in result.stdout
    assert "replSetStepDown" in result.stdout
    assert "no node is killed" in result.stdout
    assert "leader kill skipped" in result.stdout
    assert "kill the primary" not in result.stdout


def test_the_plan_decides_the_faults() -> None:
    embedded = build_plan()
    assert embedded.mongo.embedded
    assert embedded.mongo_faults == ("kill", "kill")
    assert embedded.eventstore_faults == ("kill",)
    real = build_plan("mongodb+srv://u:p@cluster.example.net/app", "tcp://es:1113")
    assert real.mongo_faults == ("step-down", "step-down")
    assert real.eventstore_faults == ()
    assert "u:p" not in repr(real)
    mixed = build_plan(None, "es1:2113")  # a real EventStore, the embedded replica set
    assert mixed.mongo_faults == ("kill", "kill")
    assert mixed.eventstore_faults == ()


def test_eventstore_addresses_are_parsed() -> None:
    target = parse_eventstore("gossip://ops:p%40ss@es1:2113,[::1]:2114")
    assert target.kind == "gossip"
    assert target.addresses == (("es1", 2113), ("::1", 2114))
    assert (target.username, target.password) == ("ops", "p@ss")
    assert "p@ss" not in repr(target)
    assert parse_eventstore("es1:2113").kind == "gossip"
    single = parse_eventstore("tcp://127.0.0.1:1113", tls=True)
    assert (single.kind, single.addresses, single.tls) == ("tcp", (("127.0.0.1", 1113),), True)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("mongodb://bob:s3cret@db1/app", "mongodb://***@db1/app"),
        ("mongodb+srv://u:p@c.example.net/?w=1", "mongodb+srv://***@c.example.net/?w=1"),
        ("ops:hunter2@es1:2113", "***@es1:2113"),
        ("gossip://a:b@[::1]:2113", "gossip://***@[::1]:2113"),
        ("seed 127.0.0.1:27017 refused", "seed 127.0.0.1:27017 refused"),
    ],
)
def test_credentials_are_hidden_in_any_text(text: str, shown: str) -> None:
    assert hide_credentials(text) == shown


# --- bad arguments and the exit code -------------------------------------------------------------


def test_bad_arguments_exit_with_2() -> None:
    result = run_demo("--eventstore", "tcp://a:1,b:2")
    assert result.returncode == 2
    assert "exactly one host:port" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["--mongo-uri", "http://db1/"],
        ["--mongo-uri", "mongodb:///?replicaSet=rs0"],
        ["--eventstore", "nope"],
        ["--eventstore", "es1:99999"],
        ["--eventstore", "amqp://es1:2113"],
        ["--eventstore-tls"],
        ["--writes", "3"],
        ["mongodb://user:secret@db1/"],
        ["ops:secret@es1:2113"],
    ],
)
def test_unusable_arguments_exit_with_2_without_echoing_credentials(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "secret" not in capsys.readouterr().err


def test_a_failed_invariant_exits_with_1(capsys: pytest.CaptureFixture[str]) -> None:
    async def lost_a_write(*_: object) -> DemoReport:
        return DemoReport(
            writes=WritesRecord(
                attempted=2,
                acknowledged=(0, 1),
                stored=(0,),
                updates_attempted=0,
                updates_acknowledged=(),
                updates_stored=(),
            )
        )

    assert main([], runner=lost_a_write) == 1
    out = capsys.readouterr().out
    assert "FAILED." in out
    assert "1 lost, 0 duplicated" in out

"""``python -m pymo``: exit codes and output, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from clustersim.mongo import ReplicaSet

ROOT = Path(__file__).resolve().parents[2]
PATHS = ["shared/src", "packages/clustersim/src", "packages/pymo/src"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in PATHS)}
    return subprocess.run(
        [sys.executable, "-m", "pymo", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_success_prints_the_matching_seed_type_and_rtt(rs: ReplicaSet) -> None:
    result = run(rs.uri, "--require", "writable", "--timeout", "20")
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith("OK ")
    assert rs.addresses[rs.primary or 0] in line
    assert "RSPrimary" in line
    assert "rtt=" in line
    assert len(line.splitlines()) == 1


def test_json_output(rs: ReplicaSet) -> None:
    result = run(rs.uri, "--require", "secondary", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is True
    assert document["matched"]["type"] == "RSSecondary"
    assert len(document["seeds"]) == 3


def test_failure_lists_every_seed_and_hides_credentials(
    rs: ReplicaSet, closed_port: Callable[[], int]
) -> None:
    down = f"127.0.0.1:{closed_port()}"
    uri = f"mongodb://root:hunter2@{down},{rs.addresses[0]}/?replicaSet=rs0"
    result = run(uri, "--timeout", "20")
    assert result.returncode == 1
    assert "hunter2" not in result.stdout + result.stderr
    assert f"{down}: error:" in result.stderr
    result = run(uri, "--require", "mongos")  # every seed answers before this one fails
    assert result.returncode == 1
    assert f"{down}: error:" in result.stderr
    assert f"{rs.addresses[0]}: RS" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    result = run(uri, "--require", "primary", "--json")
    assert "hunter2" not in result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert result.returncode == (0 if rs.primary == 0 else 1)
    assert [seed["address"] for seed in document["seeds"]] == [down, rs.addresses[0]]


def test_unusable_arguments_exit_2() -> None:
    result = run("mongodb://user:topsecret@host:port/")
    assert result.returncode == 2
    assert "topsecret" not in result.stdout + result.stderr
    assert run("127.0.0.1:1", "--require", "leader").returncode == 2

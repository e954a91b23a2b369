"""``python -m mongo_observer``: changes as JSON lines, a clean stop, clear errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from clustersim.mongo import ReplicaSet
from pymongo import MongoClient


def start(*arguments: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, "-m", "mongo_observer", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_changes_are_printed_and_ctrl_c_stops_cleanly(rs: ReplicaSet) -> None:
    child = start(rs.uri, "--namespace", "shop.orders")
    try:
        assert child.stderr is not None
        assert child.stdout is not None
        assert "observing" in child.stderr.readline()
        with MongoClient[dict[str, object]](rs.uri) as client:
            client.shop.orders.insert_one({"_id": 1, "total": 5})
            client.shop.orders.update_one({"_id": 1}, {"$set": {"total": 6}})
            client.shop.other.insert_one({"_id": "ignored"})
            client.shop.orders.delete_one({"_id": 1})
        lines = [json.loads(child.stdout.readline()) for _ in range(3)]
    finally:
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=10)
    assert [line["op"] for line in lines] == ["i", "u", "d"]
    assert lines[0]["o"] == {"_id": 1, "total": 5}
    assert lines[1]["o"]["updateDescription"]["updatedFields"] == {"total": 6}
    assert {line["ns"] for line in lines} == {"shop.orders"}
    assert child.returncode == 0, err
    assert "Traceback" not in err


def test_an_unreachable_deployment_fails_with_a_clear_message() -> None:
    child = start("mongodb://127.0.0.1:1/", "--timeout", "0.5")
    out, err = child.communicate(timeout=30)
    assert child.returncode == 1
    assert "ServerSelectionTimeoutError" in err
    assert "Traceback" not in err
    assert out == ""
    assert "Timeout: 0.5s" in err  # bounded by --timeout, not pymongo's 30 s default


def test_bad_arguments_exit_2() -> None:
    child = start("http://127.0.0.1:1/", "--timeout", "0.5")
    _, err = child.communicate(timeout=30)
    assert child.returncode == 2, err
    assert "mongo_observer:" in err
    assert "Traceback" not in err

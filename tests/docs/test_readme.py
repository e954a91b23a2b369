"""The top-level README's examples run: against a simulated replica set where they name one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from clustersim.mongo import ReplicaSet
from pymongo import MongoClient

README = Path(__file__).resolve().parents[2] / "README.md"
PLACEHOLDER_URI = '"mongodb://db1,db2/?replicaSet=rs0"'


def blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)


def test_there_is_an_example_per_package() -> None:
    text = "\n".join(blocks())
    for module in ("resilient_topology", "pymo", "mongomancy", "mongo_observer", "photonpump"):
        assert f"import {module}" in text or f"from {module} import" in text, module
    assert "from clustersim.mongo import" in text


@pytest.mark.parametrize("index", range(len(blocks())))
def test_example_runs(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    code = blocks()[index]
    with ReplicaSet(members=2) as rs:
        code = code.replace(PLACEHOLDER_URI, repr(rs.uri))
        namespace: dict[str, object] = {"__name__": "readme"}
        exec(compile(code, str(README), "exec"), namespace)
        client = namespace.get("client")
        if isinstance(client, MongoClient):  # pymo's example leaves its client open
            client.close()
    assert "Traceback" not in capsys.readouterr().err

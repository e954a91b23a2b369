"""The package README's usage example runs, pointed at a simulated replica set."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from clustersim.mongo import ReplicaSet
from pymongo import MongoClient

README = Path(__file__).resolve().parents[2] / "packages" / "mongomancy" / "README.md"


def test_the_usage_example_runs(rs: ReplicaSet) -> None:
    found = re.search(r"## Usage\n\n```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert found, "the README has a Usage example"
    example = found.group(1).replace("mongodb://db1,db2,db3/?replicaSet=rs0", rs.uri)
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    try:
        exec(compile(example, "README.md", "exec"), namespace)
        report = namespace["report"]
        assert report.collections_created == ("player",)
        assert ("player", "ux__player__player_id") in report.indexes_created
        with MongoClient[dict[str, Any]](rs.uri) as client:  # the example disposed of its engine
            assert sorted(d["player_id"] for d in client.shop.player.find({})) == [0, 7]
    finally:
        namespace["engine"].dispose()

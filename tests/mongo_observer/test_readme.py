"""The package README's usage example runs, pointed at a simulated replica set."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

from clustersim.mongo import ReplicaSet

README = Path(__file__).resolve().parents[2] / "packages" / "mongo_observer" / "README.md"


def test_the_usage_example_runs(rs: ReplicaSet) -> None:
    found = re.search(r"## Usage\n\n```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert found, "the README has a Usage example"
    example = found.group(1).replace("mongodb://db1,db2,db3/?replicaSet=rs0", rs.uri)
    printed = io.StringIO()
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    with contextlib.redirect_stdout(printed):
        exec(compile(example, "README.md", "exec"), namespace)
    assert printed.getvalue().strip() == "{'_id': 7, 'score': 12} [{'_id': 7, 'score': 12}] 1"

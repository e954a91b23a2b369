"""The ```python example of clustersim's README runs as written, against the simulator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import REAL_URI

README = Path(__file__).resolve().parents[2] / "packages" / "clustersim" / "README.md"


@pytest.mark.skipif(bool(REAL_URI), reason="the example starts a simulated replica set")
def test_readme_example_runs() -> None:
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})

"""photonpump's README example runs as written, pointed at a simulated cluster's gossip port."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from clustersim.eventstore import Cluster

README = Path(__file__).resolve().parents[2] / "packages" / "photonpump" / "README.md"


def test_readme_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    (block,) = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)
    assert block.count('discovery_host="127.0.0.1"') == block.count("discovery_port=2113") == 1
    with Cluster(3) as es:
        host, port = es.gossip_seeds[1].rsplit(":", 1)  # a follower's gossip: discovery must work
        code = block.replace('discovery_host="127.0.0.1"', f'discovery_host="{host}"').replace(
            "discovery_port=2113", f"discovery_port={port}"
        )
        exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "{'Pony': 'Derpy'}"
    assert printed[1:5] == ["3 {'i': 2}", "2 {'i': 1}", "1 {'i': 0}", "0 {'Pony': 'Derpy'}"]

"""The original README's usage snippet, run exactly as written, against ``localhost:27017``.

The snippet is read from the seed documents beside the repository (``SEEDS_DIR``, by default
``../shared/seeds``), not copied here; a simulated standalone server listens on port 27017.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from clustersim.errors import SimulatorConfigurationError
from clustersim.mongo import Standalone
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parents[2]


def seed_snippet() -> str:
    folder = Path(os.environ.get("SEEDS_DIR") or ROOT.parent / "shared" / "seeds")
    if not folder.is_dir():
        pytest.skip(f"seed documents not found in {folder} (set SEEDS_DIR)")
    for path in sorted(folder.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        if "from mongomancy import" in text:
            found = re.search(r"```python\n(.*?)```", text, re.DOTALL)
            assert found, f"{path.name} has no python block"
            return found.group(1)
    pytest.fail(f"no mongomancy usage snippet among the seeds in {folder}")


def test_the_original_usage_snippet_runs_as_written() -> None:
    snippet = seed_snippet()
    try:
        server = Standalone(port=27017)
        server.__enter__()
    except SimulatorConfigurationError as exc:
        pytest.skip(f"port 27017 is taken here, the snippet needs it: {exc}")
    namespace: dict[str, Any] = {"__name__": "seed_snippet"}
    try:
        exec(compile(snippet, "seed-snippet", "exec"), namespace)
        with MongoClient[dict[str, Any]](server.uri) as client:
            database = client.get_database(namespace["db"].name)
            assert {"game", "player"} <= set(database.list_collection_names())
            player_indexes = database.player.index_information()
            assert any(spec.get("unique") for spec in player_indexes.values())
            assert [("genre", 1)] in [
                spec["key"] for spec in database.game.index_information().values()
            ]
    finally:
        if "engine" in namespace:
            namespace["engine"].dispose()
        server.__exit__(None, None, None)

"""The original README's example, run as written (with motor, and with pymongo's async client).

The example is read from the seed documents beside the repository (``SEEDS_DIR``, by default
``../shared/seeds``), not copied here. It connects to ``mongodb://127.0.0.1`` (port 27017), where
a one-member simulated replica set listens, and runs forever: it runs in a child process that is
stopped once writes made meanwhile have had time to flow. A few lines put before the example
(``PROBE``) make its ReactiveCollection print each insert it applies, so the test can see it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clustersim.errors import SimulatorConfigurationError
from clustersim.mongo import ReplicaSet
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parents[2]
SEED_MARKER = "from mongo_observer.observer import Observer"
PROBE = """
import mongo_observer.reactive as reactive
original = reactive.ReactiveCollection.on_insert
async def on_insert(self, operation):
    await original(self, operation)
    print("inserted", operation["o"]["_id"], len(self), flush=True)
reactive.ReactiveCollection.on_insert = on_insert
"""


def seed_example() -> str:
    folder = Path(os.environ.get("SEEDS_DIR") or ROOT.parent / "shared" / "seeds")
    if not folder.is_dir():
        pytest.skip(f"seed documents not found in {folder} (set SEEDS_DIR)")
    for path in sorted(folder.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        if SEED_MARKER in text:
            found = re.search(r"```python\n(.*?)```", text, re.DOTALL)
            assert found, f"{path.name} has no python block"
            return found.group(1)
    pytest.fail(f"no mongo_observer example among the seeds in {folder}")


@pytest.mark.parametrize("driver", ["motor", "pymongo"])
def test_the_original_example_runs_as_written(driver: str, tmp_path: Path) -> None:
    example = seed_example()
    if driver == "pymongo":  # the same program on pymongo's own async client
        example = example.replace(
            "from motor.motor_asyncio import AsyncIOMotorClient",
            "from pymongo import AsyncMongoClient as AsyncIOMotorClient",
        )
    script = tmp_path / "example.py"
    script.write_text(PROBE + example, encoding="utf-8")
    try:
        rs = ReplicaSet(members=1, name="rs0", ports=[27017])
        rs.__enter__()
    except SimulatorConfigurationError as exc:
        pytest.skip(f"port 27017 is taken here, the example needs it: {exc}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-W", "ignore::DeprecationWarning", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        with MongoClient[dict[str, object]](rs.uri) as client:
            collection = client.your_db.your_collection
            deadline = time.monotonic() + 20
            written = 0
            # The example starts observing at the end of the oplog once it is up; keep writing
            # until its replica reports our documents.
            while time.monotonic() < deadline and child.poll() is None:
                collection.insert_one({"_id": written})
                written += 1
                time.sleep(0.2)
                if written >= 10:
                    break
            time.sleep(1.0)
    finally:
        child.terminate()
        out, err = child.communicate(timeout=10)
        rs.__exit__(None, None, None)
    assert "Traceback" not in err, err
    lines = [line for line in out.splitlines() if line.startswith("inserted")]
    assert lines, f"the example's replica saw no insert; stderr: {err}"
    last_id = int(lines[-1].split()[1])
    assert last_id == written - 1

"""Locating and loading the MongoDB spec test files, which are read in place and never committed."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPEC_DIR = REPO_ROOT.parent / "shared" / "specs"
ENV_VAR = "SPEC_TESTS_DIR"


def spec_dir() -> Path:
    configured = os.environ.get(ENV_VAR)
    return Path(configured).resolve() if configured else DEFAULT_SPEC_DIR


def spec_params(*folders: str) -> list[Any]:
    """One pytest param per JSON file under ``folders``, its id the path under the spec dir.

    When the directory is missing, a single param that skips and says why.
    """
    root = spec_dir()
    if not root.is_dir():
        reason = (
            f"spec tests not found: {ENV_VAR} is {os.environ.get(ENV_VAR)!r} and {root} is not a "
            "directory; set SPEC_TESTS_DIR to the folder holding the MongoDB spec JSON"
        )
        return [pytest.param(None, id="spec-dir-missing", marks=pytest.mark.skip(reason=reason))]
    files = sorted(f for folder in folders for f in (root / folder).rglob("*.json"))
    return [pytest.param(f, id=f.relative_to(root).as_posix()) for f in files]


def load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        data = json.load(handle)
    return convert_extended_json(data)  # type: ignore[no-any-return]


def convert_extended_json(value: Any) -> Any:
    """Turn the extended-JSON wrappers the spec files use into plain Python values."""
    if isinstance(value, dict):
        if set(value) == {"$oid"}:
            return bytes.fromhex(value["$oid"])
        if set(value) == {"$numberLong"}:
            return int(value["$numberLong"])
        if set(value) == {"$date"}:
            millis = convert_extended_json(value["$date"])
            return datetime.fromtimestamp(int(millis) / 1000, tz=UTC)
        return {k: convert_extended_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [convert_extended_json(v) for v in value]
    return value


def all_spec_files() -> Iterator[Path]:
    root = spec_dir()
    if root.is_dir():
        yield from sorted(root.rglob("*.json"))


def check_keys(where: str, mapping: dict[str, Any], known: set[str]) -> None:
    """A key the runner does not understand is a failure, never silently ignored."""
    unknown = set(mapping) - known
    if unknown:
        pytest.fail(f"{where}: the runner cannot interpret keys {sorted(unknown)}")

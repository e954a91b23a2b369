"""Fixtures for mongomancy's tests: a simulated replica set, or a real one from MONGODB_URI."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from clustersim.mongo import ReplicaSet


@pytest.fixture
def rs() -> Iterator[ReplicaSet]:
    """A three-member simulated replica set named rs0 (sync use: its own loop thread)."""
    with ReplicaSet(members=3, name="rs0") as deployment:
        yield deployment


@pytest.fixture
def mongodb_uri(rs: ReplicaSet) -> str:
    """Where the tests that need no fault injection connect: MONGODB_URI if set, else ``rs``."""
    return os.environ.get("MONGODB_URI") or rs.uri

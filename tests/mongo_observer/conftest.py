"""Fixtures for mongo_observer's sync-side tests: a simulated replica set on its own loop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clustersim.mongo import ReplicaSet


@pytest.fixture
def rs() -> Iterator[ReplicaSet]:
    with ReplicaSet(members=1, name="rs0") as deployment:
        yield deployment

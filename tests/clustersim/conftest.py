"""Fixtures: a simulated replica set, or a real one when MONGODB_URI is set.

Tests that need the simulator's own controls (kill, restart, election windows) take the
``simulated`` fixture and skip with a reason against a real deployment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from clustersim.mongo import ReplicaSet

REAL_URI = os.environ.get("MONGODB_URI")


@pytest.fixture(params=["streaming", "polling"])
def simulated(request: pytest.FixtureRequest) -> Iterator[ReplicaSet]:
    """A three-member simulated set, in streaming and in polling SDAM mode."""
    if REAL_URI:
        pytest.skip("needs the simulator's fault controls; MONGODB_URI points at a real deployment")
    with ReplicaSet(members=3, name="rs0", polling=request.param == "polling") as rs:
        yield rs


@pytest.fixture
def mongodb_uri() -> Iterator[str]:
    """A replica set URI: MONGODB_URI when set, else a fresh simulated set's."""
    if REAL_URI:
        yield REAL_URI
        return
    with ReplicaSet(members=3, name="rs0") as rs:
        yield rs.uri

"""Standalone and router deployments, unacknowledged writes, failpoint skip mode."""

from __future__ import annotations

import socket
import time
import uuid
from typing import Any

import pytest
from clustersim.errors import SimulatorConfigurationError
from clustersim.mongo import ReplicaSet, Router, Standalone
from pymongo import MongoClient, WriteConcern
from pymongo.errors import OperationFailure
from pymongo.topology_description import TOPOLOGY_TYPE

from .conftest import REAL_URI

FAST: dict[str, Any] = {"heartbeatFrequencyMS": 500, "serverSelectionTimeoutMS": 10_000}

pytestmark = pytest.mark.skipif(bool(REAL_URI), reason="starts its own simulated deployments")


def test_standalone_is_seen_as_single() -> None:
    with Standalone() as server, MongoClient(server.uri, **FAST) as client:
        client.test.s.insert_one({"x": 1})
        assert client.topology_description.topology_type == TOPOLOGY_TYPE.Single
        assert client.test.s.count_documents({}) == 1


def test_router_is_seen_as_sharded() -> None:
    with Router(routers=2) as router, MongoClient(router.uri, **FAST) as client:
        client.test.r.insert_one({"x": 1})
        assert client.topology_description.topology_type == TOPOLOGY_TYPE.Sharded
        assert client.test.r.find_one({}, {"_id": 0}) == {"x": 1}


def test_unacknowledged_writes_get_no_reply_but_are_applied() -> None:
    with ReplicaSet(members=1) as rs, MongoClient(rs.uri, **FAST) as client:
        coll = client.test.get_collection("w0", write_concern=WriteConcern(w=0))
        for n in range(20):
            coll.insert_one({"n": n})
        deadline = time.monotonic() + 5
        while client.test.w0.count_documents({}) < 20:
            assert time.monotonic() < deadline, "w:0 writes were lost"
            time.sleep(0.01)


def test_failpoint_skip_mode_lets_the_first_commands_through() -> None:
    with ReplicaSet(members=1) as rs, MongoClient(rs.uri, retryReads=False, **FAST) as client:
        coll = client.test[f"skip_{uuid.uuid4().hex[:8]}"]
        client.admin.command(
            "configureFailPoint",
            "failCommand",
            mode={"skip": 2},
            data={"failCommands": ["count"], "errorCode": 2},
        )
        assert coll.estimated_document_count() == 0
        assert coll.estimated_document_count() == 0
        with pytest.raises(OperationFailure):
            coll.estimated_document_count()
        client.admin.command("configureFailPoint", "failCommand", mode="off")
        assert coll.estimated_document_count() == 0


def test_sizes_out_of_range_are_refused() -> None:
    with pytest.raises(SimulatorConfigurationError):
        ReplicaSet(members=0)
    with pytest.raises(SimulatorConfigurationError):
        ReplicaSet(members=8)


def test_a_port_in_use_fails_cleanly_without_leaving_members_listening() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            free_port = free.getsockname()[1]
        with pytest.raises(SimulatorConfigurationError, match="cannot start"):
            ReplicaSet(members=2, ports=[free_port, port]).__enter__()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", free_port)) != 0  # the first member was closed

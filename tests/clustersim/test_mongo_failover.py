"""Faults under the real drivers: step-downs, kills, election windows, failpoints."""

from __future__ import annotations

import contextlib
import gc
import socket
import threading
import time
import uuid
import warnings
from typing import Any

import pymongo
import pymongo.errors
import pytest
from clustersim.mongo import ReplicaSet
from clustersim.mongo.wire import decode_reply, encode_request
from pymongo import MongoClient, monitoring

FAST: dict[str, Any] = {"heartbeatFrequencyMS": 500, "serverSelectionTimeoutMS": 10_000}


def address_of(rs: ReplicaSet, index: int) -> tuple[str, int]:
    host, port = rs.addresses[index].split(":")
    return host, int(port)


def wait_for_primary(client: MongoClient[dict[str, Any]], expected: tuple[str, int]) -> None:
    deadline = time.monotonic() + 10
    while client.primary != expected:
        assert time.monotonic() < deadline, f"primary is {client.primary}, wanted {expected}"
        time.sleep(0.01)


def test_writes_survive_repeated_step_downs_and_kills(simulated: ReplicaSet) -> None:
    rs = simulated
    with MongoClient(rs.uri, **FAST) as client:
        coll = client.test[f"loop_{uuid.uuid4().hex[:8]}"]
        written = 0
        for round_number in range(4):
            for _ in range(25):
                coll.insert_one({"n": written})
                written += 1
            if round_number % 2 == 0:
                rs.step_down()
            else:
                old = rs.primary
                assert old is not None
                rs.kill(old)
                for _ in range(10):
                    coll.insert_one({"n": written})
                    written += 1
                rs.restart(old)
        for _ in range(10):
            coll.insert_one({"n": written})
            written += 1
        values = sorted(d["n"] for d in coll.find())
    assert values == list(range(written))  # every write applied exactly once


def test_election_window_makes_writes_wait_not_fail(simulated: ReplicaSet) -> None:
    rs = simulated
    rs.election_delay = 0.8
    with MongoClient(rs.uri, **FAST) as client:
        coll = client.test.window
        coll.insert_one({"before": True})
        rs.step_down()
        assert rs.primary is None  # the window: no primary for election_delay seconds
        coll.insert_one({"after": True})  # waits in server selection instead of failing
        assert coll.count_documents({}) == 2
    assert rs.primary is not None


def test_primary_switch_is_followed(simulated: ReplicaSet) -> None:
    rs = simulated
    with MongoClient(rs.uri, **FAST) as client:
        client.admin.command("ping")
        wait_for_primary(client, address_of(rs, 0))
        rs.failover(2)
        wait_for_primary(client, address_of(rs, 2))
        client.test.switch.insert_one({"x": 1})


def test_repl_set_step_down_through_the_driver(simulated: ReplicaSet) -> None:
    rs = simulated
    with MongoClient(rs.uri, **FAST) as client:
        client.test.sd.insert_one({"x": 1})
        assert client.admin.command("replSetStepDown", 60)["ok"] == 1  # 4.2+: no disconnect
        client.test.sd.insert_one({"x": 2})
        assert client.test.sd.count_documents({}) == 2
    assert rs.primary != 0


def test_secondary_refuses_writes_but_serves_reads(simulated: ReplicaSet) -> None:
    rs = simulated
    with MongoClient(rs.addresses[1], directConnection=True, **FAST) as direct:
        with pytest.raises(pymongo.errors.NotPrimaryError) as info:
            direct.test.refused.insert_one({"x": 1})
        assert isinstance(info.value.details, dict)
        assert info.value.details["code"] == 10107
        # A direct connection reads with primaryPreferred, which a secondary serves.
        assert direct.test.refused.find_one() is None


def test_secondary_refuses_reads_that_want_the_primary(simulated: ReplicaSet) -> None:
    host, port = address_of(simulated, 1)
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(encode_request({"find": "c", "filter": {}}, request_id=7, database="test"))
        data = b""
        while len(data) < 4 or len(data) < int.from_bytes(data[:4], "little"):
            data += sock.recv(65536)
    _, _, reply = decode_reply(data)
    assert reply["ok"] == 0
    assert reply["code"] == 13435
    assert "topologyVersion" in reply or simulated.deployment.roles.mode.value == "polling"


class HeartbeatRecorder(monitoring.ServerHeartbeatListener):
    def __init__(self) -> None:
        self.events: list[object] = []

    def started(self, event: monitoring.ServerHeartbeatStartedEvent) -> None:
        self.events.append(event)

    def succeeded(self, event: monitoring.ServerHeartbeatSucceededEvent) -> None:
        self.events.append(event)

    def failed(self, event: monitoring.ServerHeartbeatFailedEvent) -> None:
        self.events.append(event)


def test_heartbeats_are_awaited_in_streaming_mode_only(simulated: ReplicaSet) -> None:
    rs = simulated
    recorder = HeartbeatRecorder()
    with MongoClient(rs.uri, event_listeners=[recorder], **FAST) as client:
        client.admin.command("ping")
        time.sleep(1.2)
        rs.kill(2)
        deadline = time.monotonic() + 5
        while not any(
            isinstance(e, monitoring.ServerHeartbeatFailedEvent) for e in recorder.events
        ):
            assert time.monotonic() < deadline, "no failed heartbeat after a kill"
            time.sleep(0.05)
    succeeded = [
        e for e in recorder.events if isinstance(e, monitoring.ServerHeartbeatSucceededEvent)
    ]
    streaming = rs.deployment.roles.mode.value == "streaming"
    assert any(e.awaited for e in succeeded) is streaming


@pytest.mark.parametrize(
    ("data", "expected_docs"),
    [
        ({"closeConnection": True}, 1),
        ({"errorCode": 91, "errorLabels": ["RetryableWriteError"]}, 1),
        (
            {
                "writeConcernError": {
                    "code": 91,
                    "errmsg": "shutdown",
                    "errorLabels": ["RetryableWriteError"],
                }
            },
            1,
        ),
    ],
)
def test_failpoints_on_insert_are_retried_exactly_once(
    simulated: ReplicaSet, data: dict[str, Any], expected_docs: int
) -> None:
    rs = simulated
    with MongoClient(rs.uri, **FAST) as client:
        coll = client.test[f"fp_{uuid.uuid4().hex[:8]}"]
        client.admin.command(
            "configureFailPoint",
            "failCommand",
            mode={"times": 1},
            data={"failCommands": ["insert"], **data},
        )
        coll.insert_one({"x": 1})
        assert coll.count_documents({}) == expected_docs


def test_failpoint_error_without_label_reaches_the_application(simulated: ReplicaSet) -> None:
    rs = simulated
    with MongoClient(rs.uri, **FAST) as client:
        client.admin.command(
            "configureFailPoint",
            "failCommand",
            mode={"times": 1},
            data={"failCommands": ["find"], "errorCode": 2},
        )
        with pytest.raises(pymongo.errors.OperationFailure) as info:
            client.test.any.find_one()
        assert info.value.code == 2
        assert client.test.any.find_one() is None  # the failpoint fired once only


def test_block_connection_delays_the_reply(simulated: ReplicaSet) -> None:
    rs = simulated
    with MongoClient(rs.uri, **FAST) as client:
        client.admin.command("ping")
        client.admin.command(
            "configureFailPoint",
            "failCommand",
            mode={"times": 1},
            data={"failCommands": ["ping"], "blockConnection": True, "blockTimeMS": 300},
        )
        started = time.monotonic()
        client.admin.command("ping")
        assert time.monotonic() - started >= 0.25


def test_partitioned_primary_is_replaced(simulated: ReplicaSet) -> None:
    rs = simulated
    with MongoClient(rs.uri, **FAST) as client:
        client.test.part.insert_one({"x": 1})
        rs.partition(0)
        client.test.part.insert_one({"x": 2})
        assert rs.primary not in (None, 0)
        rs.heal(0)
        assert client.test.part.count_documents({}) == 2


def test_slow_member_delays_its_replies(simulated: ReplicaSet) -> None:
    rs = simulated
    with MongoClient(rs.uri, **FAST) as client:
        client.admin.command("ping")
        rs.slow(0, 200)
        started = time.monotonic()
        client.admin.command("ping")
        assert time.monotonic() - started >= 0.18
        rs.slow(0, 0)


def test_repl_set_get_status_reports_every_member(simulated: ReplicaSet) -> None:
    with MongoClient(simulated.uri, **FAST) as client:
        status = client.admin.command("replSetGetStatus")
    assert status["set"] == "rs0"
    assert [m["stateStr"] for m in status["members"]] == ["PRIMARY", "SECONDARY", "SECONDARY"]


def test_cursors_closed_early_are_killed(simulated: ReplicaSet) -> None:
    with MongoClient(simulated.uri, **FAST) as client:
        coll = client.test[f"kill_{uuid.uuid4().hex[:8]}"]
        coll.insert_many([{"n": n} for n in range(50)])
        cursor = coll.find(batch_size=5)
        next(cursor)
        cursor_id = cursor.cursor_id
        assert cursor_id
        cursor.close()  # sends killCursors
        reply = client.test.command("killCursors", coll.name, cursors=[cursor_id])
        assert reply["cursorsNotFound"] == [cursor_id]


def test_a_kill_amid_incoming_connections_leaves_no_socket_behind() -> None:
    # Sockets accepted in the very loop step that kills the member must still be closed by the
    # simulator (Python 3.11's asyncio drops one built after Server.close() without closing it).
    stop = threading.Event()

    def connect_repeatedly(port: int) -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                pass

    with ReplicaSet(members=1) as rs, warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        port = int(rs.addresses[0].rsplit(":", 1)[1])
        for _ in range(30):
            stop.clear()
            workers = [threading.Thread(target=connect_repeatedly, args=(port,)) for _ in range(2)]
            for worker in workers:
                worker.start()
            time.sleep(0.005)
            rs.kill(0)
            stop.set()
            for worker in workers:
                worker.join()
            rs.restart(0)
        gc.collect()
    assert [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)] == []

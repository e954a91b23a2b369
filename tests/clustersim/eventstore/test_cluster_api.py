"""The ``Cluster`` API: both ways of running it, its addresses, argument checks, and clean exits."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from clustersim.errors import SimulatorConfigurationError
from clustersim.eventstore.cluster import MAX_NODES, Cluster

from resilient_topology.eventstore.framing import Frame, FrameDecoder, encode_frame
from resilient_topology.eventstore.proto import messages_pb2 as pb

from ._raw import WAIT, C, Connector, decode, new_event, parse_address, write

THREAD = "clustersim-eventstore"


def exchange(address: str, frame: Frame) -> Frame:
    """One request and its reply over a blocking socket (no event loop in this thread)."""
    with socket.create_connection(parse_address(address), timeout=WAIT) as sock:
        sock.sendall(encode_frame(frame))
        decoder = FrameDecoder()
        while True:
            data = sock.recv(65536)
            assert data, "closed before replying"
            for reply in decoder.feed(data):
                if reply.correlation_id == frame.correlation_id:
                    return reply


def ping(address: str) -> None:
    assert exchange(address, Frame(C.Ping, uuid.uuid4())).command == C.Pong


def leader_write(address: str) -> Frame:
    payload = write("s", new_event(), require_master=True).SerializeToString()
    return exchange(address, Frame(C.WriteEvents, uuid.uuid4(), payload))


def check_addresses(addresses: list[str], count: int) -> list[int]:
    assert len(addresses) == count
    ports = []
    for address in addresses:
        host, port = parse_address(address)
        assert host == "127.0.0.1"
        assert 0 < port < 65_536
        ports.append(port)
    return ports


def threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# --- running it --------------------------------------------------------------------------------


def test_sync_cluster_serves_from_a_background_thread() -> None:
    before = len(threads())
    with Cluster(3) as es:
        assert len(threads()) == before + 1
        tcp = check_addresses(es.tcp_addresses, 3)
        http = check_addresses(es.gossip_seeds, 3)
        assert len(set(tcp + http)) == 6
        assert (es.nodes, es.leader) == (3, 0)
        for address in es.tcp_addresses:
            ping(address)
    assert len(threads()) == before
    with pytest.raises(ConnectionRefusedError):
        ping(es.tcp_addresses[0])


async def test_async_cluster_serves_on_the_running_loop() -> None:
    async with Cluster(3) as es:
        assert threads() == []
        check_addresses(es.tcp_addresses, 3)
        check_addresses(es.gossip_seeds, 3)
        connector = Connector(es)
        try:
            for index in range(3):
                await (await connector(index)).barrier()
        finally:
            await connector.aclose()
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.parametrize("nodes", [1, MAX_NODES])
def test_smallest_and_largest_clusters(nodes: int) -> None:
    with Cluster(nodes) as es:
        check_addresses(es.tcp_addresses, nodes)
        check_addresses(es.gossip_seeds, nodes)
        ping(es.tcp_addresses[-1])


def test_chosen_ports_are_used() -> None:
    tcp, http = free_ports(2), free_ports(2)
    with Cluster(2, tcp_ports=tcp, http_ports=http) as es:
        assert check_addresses(es.tcp_addresses, 2) == tcp
        assert check_addresses(es.gossip_seeds, 2) == http
        ping(es.tcp_addresses[1])


def test_sync_faults_run_on_the_clusters_thread() -> None:
    with Cluster(3) as es:
        es.kill(0)
        assert es.leader == 1
        es.restart(0)
        ping(es.tcp_addresses[0])
        assert es.step_down() == 1
        assert es.leader == 0  # the first live node other than the one that stepped down
        es.partition(0)
        assert es.leader == 1
        es.heal(0)
        es.slow(2, 10)
        es.drop_connections()
        es.drop_connections(1)
        es.stop_heartbeats()
        es.stop_heartbeats(0, stopped=False)
        es.set_too_busy(2)
        es.set_not_ready(2)
        es.add_user("alice", "pw")
        es.restrict("s", readers={"alice"}, writers={None})
        reply = decode(pb.NotHandled, leader_write(es.tcp_addresses[2]))
        assert reply.reason == pb.NotHandled.NotReady
        es.set_not_ready(2, False)
        reply = decode(pb.NotHandled, leader_write(es.tcp_addresses[2]))
        assert reply.reason == pb.NotHandled.TooBusy
        es.set_too_busy(2, False)
        reply = decode(pb.NotHandled, leader_write(es.tcp_addresses[2]))
        assert reply.reason == pb.NotHandled.NotMaster
        assert leader_write(es.tcp_addresses[1]).command == C.WriteEventsCompleted
        assert es.node(2).serving


# --- arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "options", "words"),
    [
        ((0,), {}, "1 to 5"),
        ((6,), {}, "1 to 5"),
        ((3,), {"gossip": "v6"}, "gossip"),
        ((3,), {"read_only_replicas": 1}, "read-only"),
        ((3,), {"gossip": "v20", "read_only_replicas": 3}, "read-only"),
        ((3,), {"tcp_ports": [1113]}, "tcp_ports"),
        ((2,), {"http_ports": [2113, 2114, 2115]}, "http_ports"),
    ],
    ids=[
        "zero-nodes",
        "six-nodes",
        "bad-gossip",
        "v5-read-only",
        "all-read-only",
        "tcp-ports",
        "http-ports",
    ],
)
def test_bad_arguments(args: tuple[Any, ...], options: dict[str, Any], words: str) -> None:
    with pytest.raises(SimulatorConfigurationError, match=words):
        Cluster(*args, **options)


def test_a_port_in_use_fails_a_sync_start_cleanly(taken_port: int) -> None:
    before = len(threads())
    cluster = Cluster(2, tcp_ports=[taken_port, 0])

    with pytest.raises(SimulatorConfigurationError, match="cannot start"), cluster:
        pass
    assert len(threads()) == before


async def test_a_port_in_use_fails_an_async_start_cleanly(taken_port: int) -> None:
    cluster = Cluster(2, http_ports=[0, taken_port])

    with pytest.raises(SimulatorConfigurationError, match="cannot start"):
        async with cluster:
            pass
    assert asyncio.all_tasks() == {asyncio.current_task()}


def test_a_cluster_that_is_not_running_says_so() -> None:
    cluster = Cluster(3)

    for use in (
        lambda: cluster.tcp_addresses,
        lambda: cluster.leader,
        lambda: cluster.kill(0),
        lambda: cluster.step_down(),
        lambda: cluster.add_user("a", "b"),
    ):
        with pytest.raises(SimulatorConfigurationError):
            use()
    cluster.close()  # closing a cluster never started is harmless


@pytest.mark.parametrize("index", [-1, 3])
def test_a_node_index_out_of_range(index: int) -> None:
    with Cluster(3) as es:
        for use in (
            lambda: es.kill(index),
            lambda: es.restart(index),
            lambda: es.partition(index),
            lambda: es.heal(index),
            lambda: es.slow(index, 1),
            lambda: es.set_not_ready(index),
            lambda: es.set_too_busy(index),
            lambda: es.drop_connections(index),
            lambda: es.stop_heartbeats(index),
            lambda: es.node(index),
        ):
            with pytest.raises(SimulatorConfigurationError, match="no node"):
                use()


async def test_sync_methods_refuse_an_async_cluster() -> None:
    async with Cluster(1) as es:
        uses: list[Callable[[], None]] = [lambda: es.kill(0), lambda: es.restart(0), es.close]
        for use in uses:
            with pytest.raises(SimulatorConfigurationError, match="await"):
                use()
        assert es.leader == 0


# --- closing -----------------------------------------------------------------------------------


def test_sync_close_is_idempotent() -> None:
    with Cluster(3) as es:
        es.close()
        es.close()
    es.close()
    with pytest.raises(SimulatorConfigurationError):
        es.kill(0)


async def test_async_close_is_idempotent() -> None:
    async with Cluster(3) as es:
        await es.aclose()
        await es.aclose()
    await es.aclose()
    with pytest.raises(SimulatorConfigurationError):
        await es.akill(0)
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_closing_with_clients_connected_and_subscribed_leaks_nothing() -> None:
    async with Cluster(3, election_delay=5.0, startup_delay=5.0) as es:
        connector = Connector(es)
        client = await connector(0)
        await client.write("s", new_event())
        correlation_id = client.send(
            C.SubscribeToStream, pb.SubscribeToStream(event_stream_id="", resolve_link_tos=False)
        )
        await client.expect(correlation_id, C.SubscriptionConfirmation)
        await es.akill(1)
        await es.arestart(1)  # a startup timer pending
        es.step_down()  # an election timer pending
        await es.aclose()
        await client.wait_closed_by_server()
        await connector.aclose()
    assert asyncio.all_tasks() == {asyncio.current_task()}


def test_a_sync_cluster_can_be_used_again_after_closing() -> None:
    cluster = Cluster(1)
    with cluster as es:
        ping(es.tcp_addresses[0])
    with cluster as es:
        ping(es.tcp_addresses[0])

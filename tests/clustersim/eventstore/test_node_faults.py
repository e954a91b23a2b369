"""Roles and injected faults of a three-node cluster, seen over real sockets and HTTP gossip.

Each test runs its cluster on its own event loop (``async with``), so a control call such as
``await es.akill(0)`` has taken effect when it returns and timers (elections, startup) can only
fire while the test awaits I/O. No test measures how long anything took.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from clustersim.eventstore.cluster import Cluster

from resilient_topology.eventstore.framing import Frame
from resilient_topology.eventstore.proto import messages_pb2 as pb

from ._raw import (
    WAIT,
    C,
    Connector,
    RawClient,
    decode,
    eventually,
    new_event,
    read_all,
    read_event,
    read_stream,
    running,
    write,
)

NotHandled = pb.NotHandled


@pytest.fixture
async def es() -> AsyncIterator[Cluster]:
    async with Cluster(3) as cluster:
        yield cluster


@pytest.fixture
async def connect(es: Cluster) -> AsyncIterator[Connector]:
    connector = Connector(es)
    yield connector
    await connector.aclose()


def not_handled(frame: Frame) -> pb.NotHandled:
    assert frame.command == C.NotHandled, frame
    return decode(NotHandled, frame)


def master_address(frame: Frame) -> tuple[str, str]:
    """The leader's TCP and HTTP ``host:port`` from a NotHandled(NotMaster) reply."""
    message = not_handled(frame)
    assert message.reason == NotHandled.NotMaster
    info = NotHandled.MasterInfo()
    info.ParseFromString(message.additional_info)
    return (
        f"{info.external_tcp_address}:{info.external_tcp_port}",
        f"{info.external_http_address}:{info.external_http_port}",
    )


async def leader_write(client: RawClient) -> Frame:
    return await client.request(C.WriteEvents, write("s", new_event(), require_master=True))


async def assert_leader(es: Cluster, connect: Connector, leader: int) -> None:
    """``leader`` serves require_master writes and every other node redirects to it."""
    assert es.leader == leader
    for index in range(es.nodes):
        role = es.state.roles[index]
        if not role.alive or role.partitioned:
            continue
        frame = await leader_write(await connect(index))
        if index == leader:
            assert frame.command == C.WriteEventsCompleted, frame
            assert decode(pb.WriteEventsCompleted, frame).result == pb.Success
        else:
            assert master_address(frame) == (es.tcp_addresses[leader], es.gossip_seeds[leader])


async def gossip(session: aiohttp.ClientSession, seed: str) -> dict[str, Any]:
    async with session.get(f"http://{seed}/gossip", timeout=aiohttp.ClientTimeout(total=WAIT)) as r:
        assert r.status == 200
        body: dict[str, Any] = await r.json()
        return body


def states(document: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(m["state"], m["isAlive"]) for m in document["members"]]


async def wait_for_leader(es: Cluster) -> int:
    async def elected() -> bool:
        return es.leader is not None

    await eventually(elected)
    assert es.leader is not None
    return es.leader


# --- roles and redirection ---------------------------------------------------------------------


async def test_node_zero_leads_and_followers_redirect(es: Cluster, connect: Connector) -> None:
    await assert_leader(es, connect, 0)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (C.WriteEvents, write("s", new_event(), require_master=True)),
        (
            C.DeleteStream,
            pb.DeleteStream(event_stream_id="s", expected_version=-2, require_master=True),
        ),
        (C.ReadEvent, read_event("s", 0, require_master=True)),
        (
            C.ReadStreamEventsForward,
            pb.ReadStreamEvents(
                event_stream_id="s",
                from_event_number=0,
                max_count=1,
                resolve_link_tos=False,
                require_master=True,
            ),
        ),
        (
            C.ReadAllEventsBackward,
            pb.ReadAllEvents(
                commit_position=-1,
                prepare_position=-1,
                max_count=1,
                resolve_link_tos=False,
                require_master=True,
            ),
        ),
    ],
    ids=["write", "delete", "read-event", "read-stream", "read-all"],
)
async def test_a_follower_redirects_require_master_requests(
    es: Cluster, connect: Connector, command: int, message: Any
) -> None:
    follower = await connect(2)

    frame = await follower.request(command, message)

    assert master_address(frame) == (es.tcp_addresses[0], es.gossip_seeds[0])


async def test_a_follower_serves_requests_that_do_not_require_the_master(
    connect: Connector,
) -> None:
    follower = await connect(1)

    written = await follower.write("s", new_event(), require_master=False)
    page = await follower.call(
        C.ReadAllEventsForward,
        read_all(0, 10),
        C.ReadAllEventsForwardCompleted,
        pb.ReadAllEventsCompleted,
    )

    assert written.result == pb.Success
    assert [e.commit_position for e in page.events] == [written.commit_position]


# --- kill, restart, step down ------------------------------------------------------------------


async def test_killing_the_leader_elects_another(es: Cluster, connect: Connector) -> None:
    on_old = await connect(0)

    await es.akill(0)

    assert es.leader == 1
    await on_old.wait_closed_by_server()
    with pytest.raises(ConnectionRefusedError):
        await connect(0)
    await assert_leader(es, connect, 1)


async def test_no_leader_during_the_election_delay() -> None:
    async with running(3, election_delay=1.0) as (es, connect):
        follower = await connect(1)

        await es.akill(0)

        assert es.leader is None
        assert not_handled(await leader_write(follower)).reason == NotHandled.NotReady
        assert await wait_for_leader(es) == 1
        assert_written(await leader_write(follower))


def assert_written(frame: Frame) -> None:
    assert frame.command == C.WriteEventsCompleted, frame
    assert decode(pb.WriteEventsCompleted, frame).result == pb.Success


async def test_a_restarted_node_comes_back_as_a_follower(es: Cluster, connect: Connector) -> None:
    address = es.tcp_addresses[0]
    await es.akill(0)

    await es.arestart(0)

    assert es.tcp_addresses[0] == address
    back = await connect(0)
    await back.barrier()
    assert master_address(await leader_write(back))[0] == es.tcp_addresses[1]
    await es.arestart(0)  # already running: nothing happens
    await back.barrier()


async def test_a_restarted_node_is_not_ready_during_the_startup_delay() -> None:
    async with running(3, startup_delay=1.0) as (es, connect):
        await es.akill(2)
        await es.arestart(2)
        client = await connect(2)

        reply = await client.request(C.WriteEvents, write("s", new_event()))
        assert not_handled(reply).reason == NotHandled.NotReady
        await client.barrier()  # ping is served while starting

        async def ready() -> bool:
            frame = await client.request(C.WriteEvents, write("s", new_event()))
            return frame.command == C.WriteEventsCompleted

        await eventually(ready)


async def test_killing_every_node_leaves_no_leader_until_one_restarts(es: Cluster) -> None:
    for index in range(3):
        await es.akill(index)
    assert es.leader is None

    await es.arestart(2)

    assert es.leader == 2


async def test_step_down_hands_leadership_to_another(es: Cluster, connect: Connector) -> None:
    old = es.step_down()

    assert old == 0
    assert es.leader == 1
    await assert_leader(es, connect, 1)


async def test_step_down_with_an_election_delay() -> None:
    async with running(3, election_delay=1.0) as (es, _):
        assert es.step_down() == 0
        assert es.leader is None
        assert await wait_for_leader(es) == 1


# --- partitions --------------------------------------------------------------------------------


async def test_a_partitioned_node_drops_and_refuses_connections(
    es: Cluster, connect: Connector
) -> None:
    cut = await connect(1)
    other = await connect(0)

    await es.apartition(1)

    await cut.wait_closed_by_server()
    refused = await connect(1)
    await refused.wait_closed_by_server()
    await other.barrier()
    assert es.leader == 0

    es.heal(1)

    healed = await connect(1)
    await healed.barrier()
    assert master_address(await leader_write(healed))[0] == es.tcp_addresses[0]


async def test_partitioning_the_leader_elects_another(es: Cluster, connect: Connector) -> None:
    await es.apartition(0)

    assert es.leader == 1
    await assert_leader(es, connect, 1)
    es.heal(0)
    assert es.leader == 1  # healing does not take leadership back


# --- slow nodes and dropped connections --------------------------------------------------------


async def test_a_slow_node_still_answers(es: Cluster, connect: Connector) -> None:
    es.slow(0, 100)
    client = await connect(0)

    await client.barrier()
    written = await client.write("s", new_event())
    async with aiohttp.ClientSession() as session:
        document = await gossip(session, es.gossip_seeds[0])

    assert written.result == pb.Success
    assert len(document["members"]) == 3


async def test_drop_connections_of_one_node(es: Cluster, connect: Connector) -> None:
    clients = [await connect(i) for i in range(3)]

    await es.adrop_connections(1)

    await clients[1].wait_closed_by_server()
    for index in (0, 2):
        await clients[index].barrier()
    await (await connect(1)).barrier()  # clients may reconnect


async def test_drop_connections_of_every_node(es: Cluster, connect: Connector) -> None:
    clients = [await connect(i) for i in range(3)]

    await es.adrop_connections()

    for client in clients:
        await client.wait_closed_by_server()
    for index in range(3):
        await (await connect(index)).barrier()


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("set_not_ready", NotHandled.NotReady), ("set_too_busy", NotHandled.TooBusy)],
)
async def test_not_ready_and_too_busy(
    es: Cluster, connect: Connector, fault: str, reason: int
) -> None:
    client = await connect(0)
    inject = getattr(es, fault)

    inject(0)

    assert not_handled(await client.request(C.WriteEvents, write("s", new_event()))).reason == (
        reason
    )
    read = await client.request(C.ReadStreamEventsForward, read_stream("s", 0, 1))
    assert not_handled(read).reason == reason
    await client.barrier()  # ping is still served
    inject(0, False)
    assert (await client.write("s", new_event())).result == pb.Success


async def test_a_read_only_replica_refuses_writes_and_serves_reads() -> None:
    async with running(3, gossip="v20", read_only_replicas=1) as (es, connect):
        replica = await connect(2)
        refused = await replica.request(C.WriteEvents, write("s", new_event()))
        assert not_handled(refused).reason == NotHandled.IsReadOnly
        leader = await connect(es.leader or 0)
        assert (await leader.write("s", new_event())).result == pb.Success
        page = decode(
            pb.ReadStreamEventsCompleted,
            await replica.request(C.ReadStreamEventsForward, read_stream("s", 0, 10)),
        )
        assert len(page.events) == 1
        await es.akill(0)
        await es.akill(1)
        assert es.leader is None  # a read-only replica is never elected


# --- heartbeats --------------------------------------------------------------------------------


async def test_a_silent_client_gets_a_heartbeat_then_is_dropped() -> None:
    async with running(1, heartbeat_interval=0.2, heartbeat_timeout=0.2) as (_, connect):
        silent = await connect(0, answer_heartbeats=False)

        await silent.wait_closed_by_server()

        assert silent.heartbeats
        assert all(frame.payload == b"" for frame in silent.heartbeats)


async def test_a_client_that_answers_heartbeats_stays_connected() -> None:
    async with running(1, heartbeat_interval=0.2, heartbeat_timeout=2.0) as (_, connect):
        client = await connect(0)

        async def three() -> bool:
            return len(client.heartbeats) >= 3

        await eventually(three)

        assert not client.closed.is_set()
        await client.barrier()
        ids = [frame.correlation_id for frame in client.heartbeats]
        assert len(set(ids)) == len(ids)


async def test_the_node_answers_the_clients_heartbeats(connect: Connector) -> None:
    client = await connect(0)

    correlation_id = client.send(C.HeartbeatRequest)

    reply = await client.expect(correlation_id, C.HeartbeatResponse)
    assert reply.payload == b""


async def test_stopped_heartbeats_are_neither_answered_nor_sent() -> None:
    async with running(1, heartbeat_interval=0.1, heartbeat_timeout=0.1) as (es, connect):
        es.stop_heartbeats(0)
        client = await connect(0, answer_heartbeats=False)

        correlation_id = client.send(C.HeartbeatRequest)
        await client.barrier()
        assert client.pending(correlation_id) == []
        await asyncio.sleep(0.5)  # several intervals of silence: no request, no drop
        assert client.heartbeats == []
        assert not client.closed.is_set()

        es.stop_heartbeats(0, stopped=False)

        correlation_id = client.send(C.HeartbeatRequest)
        await client.expect(correlation_id, C.HeartbeatResponse)
        async with asyncio.timeout(WAIT):
            await client.heartbeat_seen.wait()


# --- gossip ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vocabulary", "leader", "follower"),
    [("v5", "Master", "Slave"), ("v20", "Leader", "Follower")],
)
async def test_gossip_shows_roles_and_follows_a_kill(
    vocabulary: Any, leader: str, follower: str
) -> None:
    async with running(3, gossip=vocabulary) as (es, _), aiohttp.ClientSession() as session:
        for seed in es.gossip_seeds:
            document = await gossip(session, seed)
            assert states(document) == [(leader, True), (follower, True), (follower, True)]
            tcp = [f"{m['externalTcpIp']}:{m['externalTcpPort']}" for m in document["members"]]
            assert tcp == es.tcp_addresses

        await es.akill(0)

        for seed in es.gossip_seeds[1:]:
            document = await gossip(session, seed)
            assert states(document)[0][1] is False
            assert states(document)[1:] == [(leader, True), (follower, True)]
        with pytest.raises(aiohttp.ClientConnectionError):
            await gossip(session, es.gossip_seeds[0])


async def test_gossip_marks_a_partitioned_node_dead(es: Cluster) -> None:
    await es.apartition(2)

    async with aiohttp.ClientSession() as session:
        document = await gossip(session, es.gossip_seeds[0])

    assert [m["isAlive"] for m in document["members"]] == [True, True, False]

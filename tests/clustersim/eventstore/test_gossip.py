"""The simulated gossip: documents the core parser reads back, and a server that can fail."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from clustersim.eventstore.gossip import GossipServer, MemberView, gossip_document

from resilient_topology.address import Address
from resilient_topology.eventstore import NodeState, parse_gossip, parse_gossip_json

SERVER = ("127.0.0.1", 2113)
STAMP = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
EPOCH = uuid.UUID("0b0c1b7e-5c56-4b8e-9d2a-6f0e1d2c3b4a")

V5_KEYS = {
    "instanceId",
    "timeStamp",
    "state",
    "isAlive",
    "internalTcpIp",
    "internalTcpPort",
    "internalSecureTcpPort",
    "externalTcpIp",
    "externalTcpPort",
    "externalSecureTcpPort",
    "internalHttpIp",
    "internalHttpPort",
    "externalHttpIp",
    "externalHttpPort",
    "lastCommitPosition",
    "writerCheckpoint",
    "chaserCheckpoint",
    "epochPosition",
    "epochNumber",
    "epochId",
    "nodePriority",
}
V5_HTTP_KEYS = {"internalHttpIp", "internalHttpPort", "externalHttpIp", "externalHttpPort"}
V20_KEYS = (V5_KEYS - V5_HTTP_KEYS) | {"httpEndPointIp", "httpEndPointPort", "isReadOnlyReplica"}


def member(index: int, state: str, *, alive: bool = True, epoch: int = 4) -> MemberView:
    return MemberView(
        instance_id=uuid.UUID(int=index + 1),
        state=state,
        is_alive=alive,
        tcp=("127.0.0.1", 1113 + 10 * index),
        http=("127.0.0.1", 2113 + 10 * index),
        epoch_number=epoch,
        epoch_id=EPOCH,
        writer_checkpoint=1000 + index,
        chaser_checkpoint=900 + index,
        last_commit_position=800 + index,
        node_priority=index,
        timestamp=STAMP,
        epoch_position=500,
    )


CLUSTER = (
    member(0, "Leader"),
    member(1, "Follower"),
    member(2, "Follower", alive=False, epoch=3),
)


@pytest.mark.parametrize(
    ("vocabulary", "sent"),
    [("v5", ["Master", "Slave", "Slave"]), ("v20", ["Leader", "Follower", "Follower"])],
)
def test_documents_parse_back_to_the_same_cluster(vocabulary: Any, sent: list[str]) -> None:
    gossip = parse_gossip(gossip_document(CLUSTER, vocabulary=vocabulary, server=SERVER))

    assert gossip.server_address == Address(*SERVER)
    assert [m.raw_state for m in gossip.members] == sent
    assert [m.state for m in gossip.members] == [
        NodeState.LEADER,
        NodeState.FOLLOWER,
        NodeState.FOLLOWER,
    ]
    assert [m.is_alive for m in gossip.members] == [True, True, False]
    for view, parsed in zip(CLUSTER, gossip.members, strict=True):
        assert parsed.instance_id == str(view.instance_id)
        assert parsed.http_address == Address(*view.http)
        assert parsed.tcp_address == Address(*view.tcp)
        assert parsed.secure_tcp_address is None
        assert parsed.is_read_only_replica is False
        assert (parsed.epoch_number, parsed.epoch_position) == (view.epoch_number, 500)
        assert (parsed.writer_checkpoint, parsed.chaser_checkpoint) == (
            view.writer_checkpoint,
            view.chaser_checkpoint,
        )
        assert parsed.last_commit_position == view.last_commit_position
        assert parsed.node_priority == view.node_priority
        assert parsed.timestamp is not None
        assert datetime.fromisoformat(parsed.timestamp) == STAMP
    assert gossip.leader is not None
    assert gossip.leader.instance_id == str(CLUSTER[0].instance_id)


@pytest.mark.parametrize(("vocabulary", "keys"), [("v5", V5_KEYS), ("v20", V20_KEYS)])
def test_each_vocabulary_sends_exactly_its_fields(vocabulary: Any, keys: set[str]) -> None:
    document = gossip_document(CLUSTER, vocabulary=vocabulary, server=SERVER)

    assert set(document) == {"members", "serverIp", "serverPort"}
    assert all(set(m) == keys for m in document["members"])
    first = document["members"][0]
    assert first["epochId"] == str(EPOCH)
    assert first["instanceId"] == "00000000-0000-0000-0000-000000000001"
    assert first["internalTcpPort"] == first["externalTcpPort"] == 1113
    assert first["internalSecureTcpPort"] == first["externalSecureTcpPort"] == 0


def test_v20_marks_read_only_replicas() -> None:
    views = (member(0, "Leader"), member(1, "ReadOnlyReplica"))
    gossip = parse_gossip(gossip_document(views, vocabulary="v20", server=SERVER))

    assert [m.state for m in gossip.members] == [NodeState.LEADER, NodeState.READ_ONLY_REPLICA]
    assert [m.is_read_only_replica for m in gossip.members] == [False, True]


def test_v5_refuses_a_state_only_v20_has() -> None:
    views = (member(0, "Leader"), member(1, "ReadOnlyReplica"))

    with pytest.raises(ValueError, match="ReadOnlyReplica"):
        gossip_document(views, vocabulary="v5", server=SERVER)


def test_v5_renames_pre_leader_and_keeps_shared_names() -> None:
    views = (member(0, "PreLeader"), member(1, "Clone"), member(2, "ShuttingDown"))
    document = gossip_document(views, vocabulary="v5", server=SERVER)

    assert [m["state"] for m in document["members"]] == ["PreMaster", "Clone", "ShuttingDown"]


def test_an_unknown_state_is_sent_verbatim() -> None:
    views = (member(0, "Leader"), member(1, "Ascending"))
    gossip = parse_gossip(gossip_document(views, vocabulary="v20", server=SERVER))

    assert gossip.members[1].raw_state == "Ascending"
    assert gossip.members[1].state is NodeState.UNRECOGNISED
    assert gossip.leader is not None


def test_a_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        MemberView(
            instance_id=uuid.uuid4(),
            state="Leader",
            is_alive=True,
            tcp=("127.0.0.1", 1113),
            http=("127.0.0.1", 2113),
            epoch_number=0,
            epoch_id=EPOCH,
            writer_checkpoint=0,
            chaser_checkpoint=0,
            last_commit_position=0,
            timestamp=datetime(2024, 1, 1),  # naive on purpose
        )


# --- the server ---------------------------------------------------------------------------


class Cluster:
    """A mutable provider: what the node would answer, or None for a silent node."""

    def __init__(self) -> None:
        self.document: dict[str, Any] | None = gossip_document(
            CLUSTER, vocabulary="v20", server=SERVER
        )

    def __call__(self) -> dict[str, Any] | None:
        return self.document


@pytest.fixture
async def cluster() -> Cluster:
    return Cluster()


@pytest.fixture
async def server(cluster: Cluster) -> AsyncIterator[GossipServer]:
    gossip = GossipServer(cluster)
    await gossip.start()
    yield gossip
    await gossip.stop()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def url(server: GossipServer, path: str = "/gossip") -> str:
    host, port = server.address
    return f"http://{host}:{port}{path}"


SHORT = aiohttp.ClientTimeout(total=0.1)


@pytest.mark.parametrize("path", ["/gossip", "/gossip?format=json"])
async def test_gossip_is_served_as_json(
    server: GossipServer, client: aiohttp.ClientSession, path: str
) -> None:
    async with client.get(url(server, path)) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        gossip = parse_gossip_json(await response.read())

    assert [m.state for m in gossip.members] == [
        NodeState.LEADER,
        NodeState.FOLLOWER,
        NodeState.FOLLOWER,
    ]
    assert server.requests == 1


async def test_the_provider_is_asked_on_every_request(
    server: GossipServer, client: aiohttp.ClientSession, cluster: Cluster
) -> None:
    cluster.document = gossip_document(CLUSTER[:1], vocabulary="v5", server=SERVER)

    async with client.get(url(server)) as response:
        body = await response.json()

    assert [m["state"] for m in body["members"]] == ["Master"]


@pytest.mark.parametrize("path", ["/", "/gossipx", "/stats", "/gossip/more"])
async def test_other_paths_are_not_found(
    server: GossipServer, client: aiohttp.ClientSession, path: str
) -> None:
    async with client.get(url(server, path)) as response:
        assert response.status == 404
    assert server.requests == 0


async def test_other_methods_are_not_allowed(
    server: GossipServer, client: aiohttp.ClientSession
) -> None:
    async with client.post(url(server)) as response:
        assert response.status == 405


async def test_a_silent_node_never_answers(
    server: GossipServer, client: aiohttp.ClientSession, cluster: Cluster
) -> None:
    cluster.document = None

    with pytest.raises(TimeoutError):
        async with client.get(url(server), timeout=SHORT):
            pass
    assert server.requests == 1

    # The node is reachable again as soon as the provider answers.
    cluster.document = gossip_document(CLUSTER, vocabulary="v20", server=SERVER)
    async with client.get(url(server)) as response:
        assert response.status == 200


async def test_stop_drops_a_request_left_hanging(client: aiohttp.ClientSession) -> None:
    asked = asyncio.Event()

    def silent() -> None:
        asked.set()

    server = GossipServer(silent)
    await server.start()

    async def fetch() -> int:
        async with client.get(url(server)) as response:
            return response.status

    pending = asyncio.create_task(fetch())
    async with asyncio.timeout(5):
        await asked.wait()
    # Well above the milliseconds stop() takes, yet below the 1 s aiohttp would wait for a
    # handler that stop() had not released.
    async with asyncio.timeout(0.5):
        await server.stop()

    with pytest.raises(aiohttp.ClientConnectionError):
        await pending
    assert server.requests == 1
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_a_slow_node_answers_late(
    server: GossipServer, client: aiohttp.ClientSession
) -> None:
    server.delay = 0.3
    with pytest.raises(TimeoutError):
        async with client.get(url(server), timeout=SHORT):
            pass

    server.delay = 0.0
    async with client.get(url(server), timeout=aiohttp.ClientTimeout(total=5)) as response:
        assert response.status == 200
    assert server.requests == 2


async def test_stop_is_idempotent_and_releases_the_port(
    cluster: Cluster, client: aiohttp.ClientSession
) -> None:
    server = GossipServer(cluster)
    await server.stop()  # never started: nothing to do
    await server.start()
    host, port = server.address
    async with client.get(url(server)) as response:
        assert response.status == 200

    await server.stop()
    await server.stop()

    with pytest.raises(aiohttp.ClientConnectionError):
        async with client.get(f"http://{host}:{port}/gossip"):
            pass
    with socket.socket() as probe:
        # SO_REUSEADDR as any server sets it: this still fails while something listens.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        probe.listen()


async def test_a_restarted_node_answers_on_its_old_port(
    cluster: Cluster, client: aiohttp.ClientSession
) -> None:
    server = GossipServer(cluster)
    await server.start()
    first = server.address
    await server.stop()
    await server.start()
    try:
        assert server.address == first
        async with client.get(url(server)) as response:
            assert response.status == 200
    finally:
        await server.stop()


async def test_address_is_unknown_before_start(cluster: Cluster) -> None:
    server = GossipServer(cluster)
    with pytest.raises(RuntimeError, match="not been started"):
        _ = server.address

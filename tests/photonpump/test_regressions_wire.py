"""Regression scenarios R7-R19 of the original photon-pump: paging iterators across reconnects,
NotHandled, NotModified, credentials and require_master on the wire, retried nodes, failed
subscription setups, persistent positions, imports (R1-R6 are in test_regressions.py)."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import photonpump
import pytest
from clustersim.eventstore import Cluster
from photonpump import Credential, Event, StreamSlice
from photonpump.exceptions import (
    AccessDenied,
    RequestTimeout,
)

import resilient_topology
from resilient_topology.address import Address
from resilient_topology.eventstore.framing import (
    Credentials,
    Frame,
    InvalidCredentials,
)
from resilient_topology.eventstore.proto import messages_pb2 as pb

from ._fake_node import FakeConnection, FakeNode, pong
from ._regressions import (
    BOUND,
    C,
    bounded,
    eventually,
    fake_client,
    first,
    node_client,
    publish,
    record,
    take,
    written,
)

# --- R7 / R8: paging iterators across a reconnect -----------------------------------------------


async def reconnect_while_next(es: Cluster, iterator: AsyncIterator[Event]) -> Event:
    """The next event, with the node's connections dropped while its page request is out."""
    es.slow(0, 300)
    task = asyncio.create_task(first(iterator))
    await asyncio.sleep(0.05)  # the request is with the (slow) node now
    await es.adrop_connections()
    es.slow(0, 0)
    return await bounded(task)


@pytest.mark.parametrize("in_flight", [False, True])
async def test_r7_iter_all_resumes_after_a_reconnect_without_duplicates(in_flight: bool) -> None:
    async with Cluster(1) as es, node_client(es, 0) as client:
        for n in range(11):
            await publish(client, f"r7-{n % 3}", 1, n)
        expected = [event.id for event in await bounded(client.get_all(max_count=100))]
        assert len(expected) == 11
        iterator = client.iter_all(batch_size=3)
        seen = [event.id for event in await take(iterator, 4)]  # inside the second page
        await es.adrop_connections()
        seen += [event.id for event in await take(iterator, 2)]  # the second page's rest
        if in_flight:
            seen.append((await reconnect_while_next(es, iterator)).id)
        async with asyncio.timeout(BOUND):
            seen += [event.id async for event in iterator]
        assert seen == expected


@pytest.mark.parametrize("in_flight", [False, True])
async def test_r8_iter_resumes_after_a_reconnect_without_re_yielding_event_0(
    in_flight: bool,
) -> None:
    async with Cluster(1) as es, node_client(es, 0) as client:
        ids = await publish(client, "r8", 4)
        iterator = client.iter("r8", batch_size=1)
        seen = await take(iterator, 1)
        assert seen[0].event_number == 0  # the last event delivered is number 0
        if in_flight:
            seen.append(await reconnect_while_next(es, iterator))
        else:
            await es.adrop_connections()
        async with asyncio.timeout(BOUND):
            seen += [event async for event in iterator]
        assert [event.event_number for event in seen] == [0, 1, 2, 3]
        assert [event.id for event in seen] == ids


async def test_r8_iter_resumes_after_a_reconnect_in_the_middle_of_the_stream() -> None:
    async with Cluster(1) as es, node_client(es, 0) as client:
        ids = await publish(client, "r8", 7)
        iterator = client.iter("r8", from_event=2, batch_size=2)
        seen = await take(iterator, 3)  # 2, 3 and the first of the next page
        await es.adrop_connections()
        seen.append(await reconnect_while_next(es, iterator))  # 5: from the page in hand
        seen.append(await reconnect_while_next(es, iterator))  # 6: a request cut off
        async with asyncio.timeout(BOUND):
            seen += [event async for event in iterator]
        assert [event.id for event in seen] == ids[2:]


# --- R9: NotHandled ----------------------------------------------------------------------------


async def test_r9_not_master_is_followed_to_the_leader_and_completes_there() -> None:
    async with Cluster(3) as es:
        leader = es.leader
        assert leader is not None
        follower = next(i for i in range(3) if i != leader)
        async with node_client(es, follower) as client:
            await bounded(client.ping())
            assert client.connection_address == Address.of(es.tcp_addresses[follower])
            event_id = uuid.uuid4()
            result = await bounded(
                client.publish_event("r9", "t", {"n": 1}, id=event_id, require_master=True)
            )
            assert result.succeeded
            assert result.first_event_number == 0
            assert client.connection_address == Address.of(es.tcp_addresses[leader])
            stored = es.state.log.stream_events("r9")
            assert [(e.event_number, e.event_id) for e in stored] == [(0, event_id.bytes_le)]
            event = await bounded(client.get_event("r9", 0, require_master=True))
            assert event.id == event_id


@pytest.mark.parametrize("fault", ["not_ready", "too_busy"])
async def test_r9_not_ready_and_too_busy_are_retried_until_the_node_recovers(fault: str) -> None:
    async with Cluster(1) as es, node_client(es, 0) as client:
        await publish(client, "r9-read", 1)
        set_fault = es.set_not_ready if fault == "not_ready" else es.set_too_busy
        set_fault(0, True)
        write = asyncio.create_task(client.publish_event("r9-write", "t", {"n": 0}))
        read = asyncio.create_task(client.get("r9-read"))
        await asyncio.sleep(0.3)  # refused a few times meanwhile (retries every 0.1 s)
        assert not write.done()
        assert not read.done()
        assert es.state.log.stream_events("r9-write") == []
        set_fault(0, False)
        assert (await bounded(write)).succeeded
        assert len(await bounded(read)) == 1
        assert len(es.state.log.stream_events("r9-write")) == 1


# --- R11: NotModified ---------------------------------------------------------------------------


async def test_r11_not_modified_is_an_empty_page() -> None:
    def handler(connection: FakeConnection, frame: Frame) -> None:
        pong(connection, frame)
        if frame.command == C.ReadStreamEventsForward:
            reply = pb.ReadStreamEventsCompleted(
                result=pb.ReadStreamEventsCompleted.NotModified,
                next_event_number=5,
                last_event_number=4,
                is_end_of_stream=True,
                last_commit_position=100,
            )
            connection.reply(frame, C.ReadStreamEventsForwardCompleted, reply)

    async with FakeNode(handler) as node, fake_client(node) as client:
        page = await bounded(client.get("unchanged", from_event=5))
        assert isinstance(page, StreamSlice)
        assert list(page) == []
        assert page.events == []
        assert page.is_end_of_stream
        assert page.last_event_number == 4
        async with asyncio.timeout(BOUND):
            assert [event async for event in client.iter("unchanged", from_event=5)] == []
        assert await bounded(client.ping()) >= 0


# --- R13 / R14: credentials and require_master on the wire --------------------------------------


def serving_five_events(connection: FakeConnection, frame: Frame) -> None:
    """Serves stream ``s`` and ``$all`` with five events, and answers writes and pings."""
    pong(connection, frame)
    events = [record("s", n) for n in range(5)]
    if frame.command == C.WriteEvents:
        connection.reply(frame, C.WriteEventsCompleted, written(0))
    elif frame.command == C.ReadStreamEventsForward:
        request = pb.ReadStreamEvents.FromString(frame.payload)
        start = request.from_event_number
        page = events[start : start + request.max_count]
        following = start + len(page)
        reply = pb.ReadStreamEventsCompleted(
            result=pb.ReadStreamEventsCompleted.Success,
            next_event_number=following,
            last_event_number=4,
            is_end_of_stream=following > 4,
            last_commit_position=4,
        )
        for item in page:
            reply.events.add().event.CopyFrom(item)
        connection.reply(frame, C.ReadStreamEventsForwardCompleted, reply)
    elif frame.command == C.ReadAllEventsForward:
        read = pb.ReadAllEvents.FromString(frame.payload)
        start = read.commit_position
        page = events[start : start + read.max_count]
        following = start + len(page)
        answer = pb.ReadAllEventsCompleted(
            commit_position=start,
            prepare_position=start,
            next_commit_position=following,
            next_prepare_position=following,
        )
        for n, item in enumerate(page, start):
            answer.events.add(event=item, commit_position=n, prepare_position=n)
        connection.reply(frame, C.ReadAllEventsForwardCompleted, answer)
    elif frame.command == C.ReadEvent:
        number = pb.ReadEvent.FromString(frame.payload).event_number
        found = pb.ReadEventCompleted(result=pb.ReadEventCompleted.Success)
        found.event.event.CopyFrom(events[number])
        connection.reply(frame, C.ReadEventCompleted, found)


def test_r13_credentials_survive_a_round_trip() -> None:
    for username, password in [("admin", "changeit"), ("ünïcødé", "pässwörd"), ("a" * 255, "b")]:
        credential = Credential(username, password)
        assert Credential.from_bytes(credential.bytes) == credential
        assert len(credential.bytes) == credential.length
    Credential("é" * 127 + "a", "x")  # 255 bytes as UTF-8: the limit itself is fine


async def test_r13_credentials_travel_with_requests_and_oversize_ones_never_leave() -> None:
    async with FakeNode(serving_five_events) as node:
        for username, password in [("é" * 128, "x"), ("user", "p" * 256)]:  # 256 bytes each
            with pytest.raises(InvalidCredentials):
                photonpump.connect(node.host, node.port, username=username, password=password)
        assert node.connections == []  # rejected before anything was sent
        login = "é" * 127 + "a"
        async with fake_client(node, username=login, password="pässwörd") as client:
            await bounded(client.publish_event("s", "t"))
            await bounded(client.get("s"))
            await bounded(client.ping())
        expected = Credentials(login, "pässwörd")
        assert node.frames(C.WriteEvents)[0].credentials == expected
        assert node.frames(C.ReadStreamEventsForward)[0].credentials == expected
        assert node.frames(C.Ping)[0].credentials is None  # as the original: none on ping


async def test_r14_iter_really_sends_require_master() -> None:
    async with FakeNode(serving_five_events) as node, fake_client(node) as client:
        async with asyncio.timeout(BOUND):
            led = [
                event.event_number
                async for event in client.iter("s", batch_size=2, require_master=True)
            ]
            assert led == [0, 1, 2, 3, 4]
            everything = [
                e.event_number async for e in client.iter_all(batch_size=2, require_master=True)
            ]
            assert everything == [0, 1, 2, 3, 4]
        await bounded(client.get_event("s", 3, require_master=True))
        pages = [
            pb.ReadStreamEvents.FromString(f.payload)
            for f in node.frames(C.ReadStreamEventsForward)
        ]
        assert len(pages) == 3
        assert all(page.require_master for page in pages)
        all_pages = [
            pb.ReadAllEvents.FromString(f.payload) for f in node.frames(C.ReadAllEventsForward)
        ]
        assert len(all_pages) == 4  # three with events, and the empty one that ends it
        assert all(page.require_master for page in all_pages)
        assert pb.ReadEvent.FromString(node.frames(C.ReadEvent)[0].payload).require_master
        node.received.clear()
        async with asyncio.timeout(BOUND):
            assert len([event async for event in client.iter("s", batch_size=2)]) == 5
        pages = [
            pb.ReadStreamEvents.FromString(f.payload)
            for f in node.frames(C.ReadStreamEventsForward)
        ]
        assert not any(page.require_master for page in pages)  # the caller's flag, not a constant


async def test_r14_iter_with_require_master_from_a_follower_reads_on_the_leader() -> None:
    async with Cluster(3) as es:
        leader = es.leader
        assert leader is not None
        follower = next(i for i in range(3) if i != leader)
        async with node_client(es, follower) as client:
            ids = await publish(client, "r14", 5)
            assert client.connection_address == Address.of(es.tcp_addresses[follower])
            async with asyncio.timeout(BOUND):
                read = [e.id async for e in client.iter("r14", batch_size=2, require_master=True)]
            assert read == ids
            assert client.connection_address == Address.of(es.tcp_addresses[leader])


# --- R16: a node that failed is tried again --------------------------------------------------


async def test_r16_a_node_that_failed_is_tried_again_and_pending_work_completes() -> None:
    async with Cluster(1) as es, node_client(es, 0) as client:
        await bounded(client.ping())
        await es.akill(0)
        write = asyncio.create_task(client.publish_event("r16", "t", {"n": 0}))
        ping = asyncio.create_task(client.ping())
        await asyncio.sleep(0.1)  # a few refused connection attempts
        await es.arestart(0)
        assert (await bounded(write)).succeeded
        assert await bounded(ping) >= 0
        assert len(es.state.log.stream_events("r16")) == 1


# --- R17: a failed subscription setup is forgotten -----------------------------------------


def connected_times(node: FakeNode, count: int) -> bool:
    return len(node.connections) == count


async def test_r17_a_failed_subscription_setup_is_not_sent_again_on_reconnect() -> None:
    def handler(connection: FakeConnection, frame: Frame) -> None:
        pong(connection, frame)
        denied = pb.SubscriptionDropped(reason=pb.SubscriptionDropped.AccessDenied)
        if frame.command == C.SubscribeToStream:
            if pb.SubscribeToStream.FromString(frame.payload).event_stream_id == "denied":
                connection.reply(frame, C.SubscriptionDropped, denied)
        elif frame.command == C.ConnectToPersistentSubscription:
            connection.reply(frame, C.SubscriptionDropped, denied)

    async with FakeNode(handler) as node, fake_client(node, request_timeout=0.5) as client:
        with pytest.raises(AccessDenied):
            await bounded(client.subscribe_to("denied"))
        with pytest.raises(AccessDenied):
            await bounded(client.connect_subscription("group", "denied"))
        with pytest.raises(RequestTimeout):
            await bounded(client.subscribe_to("silent"))
        catch_up = await bounded(client.subscribe_to("denied", start_from=0))
        with pytest.raises(AccessDenied):
            await bounded(first(catch_up.events))
        setups = [C.SubscribeToStream, C.ConnectToPersistentSubscription]
        sent = {command: len(node.frames(command)) for command in setups}
        assert sent == {C.SubscribeToStream: 3, C.ConnectToPersistentSubscription: 1}
        for reconnect in range(1, 4):
            node.drop_connections()
            await eventually(functools.partial(connected_times, node, reconnect + 1))
            assert await bounded(client.ping()) >= 0
        assert {command: len(node.frames(command)) for command in setups} == sent


# --- R18: persistent events have no position -----------------------------------------------


async def test_r18_persistent_subscription_events_have_no_fake_position() -> None:
    async with Cluster(1) as es, node_client(es, 0) as client:
        ids = await publish(client, "r18", 3)
        await bounded(client.create_subscription("group", "r18", start_from=0))
        subscription = await bounded(client.connect_subscription("group", "r18"))
        events = await take(subscription.events, 3)
        assert [event.id for event in events] == ids
        assert [event.position for event in events] == [None, None, None]
        assert [event.event_number for event in events] == [0, 1, 2]
        await subscription.ack(events)
        await subscription.stop()
        volatile_events = await bounded(client.get_all())  # $all reads do carry one
        assert all(event.position is not None for event in volatile_events)


# --- R19: imports ------------------------------------------------------------------------------

_IMPORT_CHECK = """
import logging
before = dict(vars(logging.Logger))
import photonpump, photonpump.connection, photonpump.discovery
from google.protobuf.internal import api_implementation
from resilient_topology.eventstore.proto import messages_pb2 as pb
assert api_implementation.Type() == "python", api_implementation.Type()
assert dict(vars(logging.Logger)) == before, "logging.Logger was patched"
assert logging.getLoggerClass() is logging.Logger
event = photonpump.NewEvent("t", data={"a": 1})
message = photonpump.messages.new_event_message(event)
assert pb.NewEvent.FromString(message.SerializeToString()).data == b'{"a": 1}'
print("ok")
"""


def test_r19_imports_with_pure_python_protobuf_and_leaves_logging_alone() -> None:
    paths = [
        Path(photonpump.__file__).resolve().parent.parent,
        Path(resilient_topology.__file__).resolve().parent.parent,
    ]
    env = dict(os.environ)
    env["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = "python"
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_CHECK],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_r19_importing_here_did_not_patch_logging_either() -> None:
    assert logging.getLoggerClass() is logging.Logger
    assert not any(name.startswith("photon") for name in vars(logging.Logger))

"""One member's listener: reads wire messages, runs commands, writes replies.

Requests on one connection are answered in order, as mongod does; an awaitable hello blocks only
its own (monitoring) connection. A partitioned member keeps its sockets open and stops answering;
a killed member closes its listener and every connection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from collections.abc import Mapping
from typing import Any

from ..errors import WireProtocolError
from .commands.base import CommandContext
from .deployment import Deployment
from .topology import MonitoringMode
from .wire import MessageReader, Request, encode_reply

__all__ = ["MemberServer"]

logger = logging.getLogger("clustersim.mongo")
_request_ids = itertools.count(1)
_READ_SIZE = 1 << 16
# A socket accepted just before stop() needs three loop steps to reach its handler (protocol,
# transport callbacks, task start); stop() waits for them, with this many steps as a safety bound.
_SETTLE_STEPS = 100


class MemberServer:
    """The listener of member ``index`` of ``deployment``."""

    def __init__(self, deployment: Deployment, index: int) -> None:
        self.deployment = deployment
        self.index = index
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._arriving = 0  # connections accepted whose _serve has not started yet
        self._generation = 0  # bumped by start() and stop(): which listener a connection met
        self._reachable = asyncio.Event()
        self._reachable.set()

    @property
    def member(self) -> Any:
        return self.deployment.roles.members[self.index]

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        member = self.member
        loop = asyncio.get_running_loop()
        self._generation += 1
        server = await loop.create_server(self._protocol, member.host, member.port)
        self._server = server
        member.port = server.sockets[0].getsockname()[1]

    def _protocol(self) -> asyncio.StreamReaderProtocol:
        """asyncio.start_server's protocol, counting the connection until its _serve starts."""
        self._arriving += 1
        generation = self._generation
        reader = asyncio.StreamReader(limit=_READ_SIZE)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._arriving -= 1
            if generation != self._generation:
                writer.transport.abort()  # accepted just before a stop(): the member is gone
                return
            await self._serve(reader, writer)

        return asyncio.StreamReaderProtocol(reader, serve)

    async def stop(self) -> None:
        """Close the listener and every connection at once (a crash, seen from the client)."""
        server, self._server = self._server, None
        self._generation += 1
        if server is not None:
            # Stop accepting first, and close the server only once every socket already accepted
            # has reached its handler: Python 3.11 drops (unclosed) a socket whose transport is
            # built after Server.close(). Each late handler closes its own connection.
            loop = asyncio.get_running_loop()
            for sock in server.sockets:
                loop.remove_reader(sock.fileno())
        await asyncio.sleep(0)
        for _ in range(_SETTLE_STEPS):
            if not self._arriving:
                break
            await asyncio.sleep(0)
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    def set_reachable(self, reachable: bool) -> None:
        if reachable:
            self._reachable.set()
        else:
            self._reachable.clear()

    # --- connections --------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self._writers.add(writer)
        app_name: list[str | None] = [None]
        parser = MessageReader()
        try:
            while True:
                data = await reader.read(_READ_SIZE)
                if not data:
                    return
                parser.feed(data)
                while (request := parser.next_request()) is not None:
                    if not await self._answer(request, writer, app_name):
                        return
        except WireProtocolError as exc:
            logger.info("member %d closes a connection: %s", self.index, exc)
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            if self._server is not None:
                raise  # not our own stop(): let the canceller see it
            return  # stop() cancelled us: the connection is gone, as after a crash
        finally:
            self._connections.discard(task)
            self._writers.discard(writer)
            writer.transport.abort()

    async def _answer(
        self, request: Request, writer: asyncio.StreamWriter, app_name: list[str | None]
    ) -> bool:
        """Answer one request; False when the connection must be dropped."""
        await self._reachable.wait()
        if self.member.delay:
            await asyncio.sleep(self.member.delay)
        command = request.merged_command()
        if app_name[0] is None:
            app_name[0] = _application_name(command)
        streaming = self.deployment.roles.mode is MonitoringMode.STREAMING
        if streaming and request.command_name in ("hello", "ismaster") and _awaitable(command):
            await self._stream_hello(request, command, writer)
            return True
        context = CommandContext(
            self.deployment, self.index, request.database, command, app_name[0]
        )
        outcome = await self.deployment.execute(context)
        if outcome.close:
            return False
        if outcome.reply is not None and not request.more_to_come:
            writer.write(encode_reply(request, outcome.reply, request_id=next(_request_ids)))
            await writer.drain()
        return True

    async def _stream_hello(
        self, request: Request, command: Mapping[str, Any], writer: asyncio.StreamWriter
    ) -> None:
        """An awaitable hello: answer when this member's topology changes or the wait ends.

        With ``exhaustAllowed`` the member keeps answering, each reply flagged ``moreToCome``,
        until the client goes away, as mongod's streaming protocol does.
        """
        wait = float(command.get("maxAwaitTimeMS", 10_000)) / 1000
        seen = command.get("topologyVersion")
        current = request
        while True:
            roles = self.deployment.roles
            if _same_version(seen, roles.topology_version(self.index)):
                await self.deployment.wait_roles_changed(wait)
            await self._reachable.wait()
            reply = self.deployment.finish(
                roles.hello(self.index, legacy=request.command_name == "ismaster")
            )
            reply_id = next(_request_ids)
            more = request.exhaust_allowed
            writer.write(encode_reply(current, reply, request_id=reply_id, more_to_come=more))
            await writer.drain()
            if not more:
                return
            seen = reply.get("topologyVersion")
            current = dataclasses.replace(current, request_id=reply_id)


def _awaitable(command: Mapping[str, Any]) -> bool:
    return "topologyVersion" in command and "maxAwaitTimeMS" in command


def _same_version(seen: object, current: Mapping[str, Any]) -> bool:
    if not isinstance(seen, Mapping):
        return False
    return bool(
        seen.get("processId") == current["processId"]
        and int(seen.get("counter", -1)) == int(current["counter"])
    )


def _application_name(command: Mapping[str, Any]) -> str | None:
    client = command.get("client")
    if isinstance(client, Mapping):
        application = client.get("application")
        if isinstance(application, Mapping) and isinstance(application.get("name"), str):
            return str(application["name"])
    return None

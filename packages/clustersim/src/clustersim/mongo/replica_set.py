"""The Python API: ``ReplicaSet``, ``Standalone`` and ``Router``, with faults to inject.

Used with ``with``, the servers run on an event loop in a background thread, so synchronous
tests and programs can use them. Used with ``async with``, they run on the caller's loop. Fault
methods (``step_down``, ``kill``, ``partition``, ``slow``) work from either; ``restart`` needs the
loop, so async code awaits :meth:`arestart`.
"""

from __future__ import annotations

from .._hosting import LoopHost
from ..errors import SimulatorConfigurationError
from .deployment import Deployment
from .member import MemberServer
from .oplog import DEFAULT_MAX_ENTRIES
from .topology import Member, MonitoringMode, Roles

__all__ = ["ReplicaSet", "Router", "Standalone"]


class ReplicaSet(LoopHost):
    """A simulated replica set of 1 to 7 members on loopback ports."""

    _thread_name = "clustersim-loop"

    def __init__(
        self,
        members: int = 3,
        name: str = "rs0",
        *,
        ports: list[int] | None = None,
        host: str = "127.0.0.1",
        polling: bool = False,
        election_delay: float = 0.0,
        oplog_entries: int = DEFAULT_MAX_ENTRIES,
        _standalone: bool = False,
        _router: bool = False,
    ) -> None:
        super().__init__()
        if ports is not None and len(ports) != members:
            raise SimulatorConfigurationError("give one port per member, or none")
        mode = MonitoringMode.POLLING if polling else MonitoringMode.STREAMING
        listed = [Member(i, host, (ports or [0] * members)[i]) for i in range(members)]
        self._roles = Roles(name, listed, mode=mode, standalone=_standalone, router=_router)
        self._initial_election_delay = election_delay
        if oplog_entries < 1:
            raise SimulatorConfigurationError("the oplog must hold at least one entry")
        self._oplog_entries = oplog_entries
        self._deployment: Deployment | None = None
        self._servers: list[MemberServer] = []

    # --- lifecycle ----------------------------------------------------------------------------

    async def _start(self) -> None:
        self._deployment = Deployment(self._roles, oplog_entries=self._oplog_entries)
        self._deployment.election_delay = self._initial_election_delay
        self._servers = [MemberServer(self._deployment, m.index) for m in self._roles.members]
        try:
            for server in self._servers:
                await server.start()
        except OSError as exc:
            await self._stop()  # never leave the members that did start listening
            raise SimulatorConfigurationError(f"cannot start the deployment: {exc}") from exc
        if not (self._roles.standalone or self._roles.router):
            self._roles.elect(0)

    async def _stop(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            await server.stop()
        if self._deployment is not None:
            await self._deployment.finish_writes()
            self._deployment.close()

    @property
    def deployment(self) -> Deployment:
        if self._deployment is None:
            raise SimulatorConfigurationError("the deployment is not running")
        return self._deployment

    # --- what clients need --------------------------------------------------------------------

    @property
    def addresses(self) -> list[str]:
        return [m.address for m in self._roles.members]

    @property
    def uri(self) -> str:
        hosts = ",".join(self.addresses)
        if self._roles.standalone or self._roles.router:
            return f"mongodb://{hosts}/"
        return f"mongodb://{hosts}/?replicaSet={self._roles.name}"

    @property
    def name(self) -> str:
        return self._roles.name

    @property
    def primary(self) -> int | None:
        """The index of the current primary, or None during an election."""
        return self._roles.primary

    @property
    def election_delay(self) -> float:
        return self.deployment.election_delay

    @election_delay.setter
    def election_delay(self, seconds: float) -> None:
        if seconds < 0:
            raise SimulatorConfigurationError("the election delay cannot be negative")
        self.deployment.election_delay = float(seconds)

    # --- faults -------------------------------------------------------------------------------

    def step_down(self) -> int | None:
        """The primary steps down; a new one is elected after ``election_delay``."""
        old: int | None = self._call(self.deployment.step_down)
        return old

    def failover(self, to: int) -> None:
        """Make member ``to`` primary at once (a new term)."""

        def work() -> None:
            self.deployment.cancel_election()
            self._roles.elect(to)
            self.deployment.notify_roles_changed()

        self._call(work)

    def kill(self, index: int) -> None:
        """Member ``index`` crashes: its listener and every connection close."""
        self._server(index)
        if self._owns_loop:
            self._on_loop(self.akill(index))
            return
        raise SimulatorConfigurationError("with 'async with', use 'await rs.akill(i)'")

    async def akill(self, index: int) -> None:
        server = self._server(index)
        was_primary = self._roles.primary == index
        self._roles.kill(index)
        self.deployment.notify_roles_changed()
        await server.stop()
        if was_primary:
            self.deployment.schedule_election(exclude=index)

    def restart(self, index: int) -> None:
        """Member ``index`` comes back (a new processId), on the same port."""
        self._on_loop(self.arestart(index))

    async def arestart(self, index: int) -> None:
        server = self._server(index)
        if server.running:
            await server.stop()
        self._roles.restart(index)
        await server.start()
        self.deployment.notify_roles_changed()
        if self._roles.primary is None and not (self._roles.standalone or self._roles.router):
            self.deployment.schedule_election(exclude=None)

    def partition(self, index: int) -> None:
        """Member ``index`` stops answering but keeps its sockets open."""
        self._call(self._partition, index, True)

    def heal(self, index: int) -> None:
        """Undo :meth:`partition`."""
        self._call(self._partition, index, False)

    def _partition(self, index: int, cut: bool) -> None:
        member = self._roles.members[index]
        member.partitioned = cut
        self._server(index).set_reachable(not cut)
        if cut and self._roles.primary == index:
            self._roles.step_down()
            self.deployment.notify_roles_changed()
            self.deployment.schedule_election(exclude=index)

    def slow(self, index: int, milliseconds: float) -> None:
        """Delay every reply of member ``index`` by ``milliseconds``."""
        if milliseconds < 0:
            raise SimulatorConfigurationError("a delay cannot be negative")
        self._roles.members[index].delay = milliseconds / 1000

    def _server(self, index: int) -> MemberServer:
        if not 0 <= index < len(self._servers):
            raise SimulatorConfigurationError(f"there is no member {index}")
        return self._servers[index]


class Standalone(ReplicaSet):
    """One server that is not part of a replica set."""

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1", polling: bool = False) -> None:
        super().__init__(
            1, "standalone", ports=[port], host=host, polling=polling, _standalone=True
        )


class Router(ReplicaSet):
    """mongos-like routers (``msg: "isdbgrid"``) in front of one simulated set."""

    def __init__(
        self,
        routers: int = 1,
        *,
        ports: list[int] | None = None,
        host: str = "127.0.0.1",
        polling: bool = False,
    ) -> None:
        super().__init__(routers, "router", ports=ports, host=host, polling=polling, _router=True)

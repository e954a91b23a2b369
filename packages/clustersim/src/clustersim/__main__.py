"""Command line: serve a simulated deployment until interrupted.

    python -m clustersim mongo --members 3 [--port 27017] [--name rs0] [--polling]
    python -m clustersim mongo --standalone [--port 27017]
    python -m clustersim mongo --router 2 [--port 27017]
    python -m clustersim eventstore --nodes 3 [--tcp-port 1113] [--http-port 2113] [--gossip v5|v20]

For mongo, the connection URI is the first line on stdout, so a script can read it and connect;
for eventstore, that line is a JSON object with the ``tcp`` and ``gossip`` addresses. One line per
member follows on stderr. SIGINT (Ctrl-C) or SIGTERM stops every member and exits with code 0.
Bad arguments exit with 2, a deployment that cannot start (a port in use) with 1.
"""

from __future__ import annotations

import argparse
import functools
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from . import __version__
from .errors import ClustersimError
from .eventstore.cluster import MAX_NODES, Cluster
from .mongo import ReplicaSet, Router, Standalone
from .mongo.topology import MAX_MEMBERS

__all__ = ["main"]

_PROG = "clustersim"
_MAX_PORT = 65_535
_Command = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    command: _Command = args.run
    return command(args)


# --- arguments ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG, description="Simulated datastore clusters on loopback, for real drivers."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    mongo = commands.add_parser(
        "mongo",
        help="serve a simulated MongoDB replica set, standalone or router",
        description="Serve a simulated MongoDB deployment until SIGINT or SIGTERM. "
        "The connection URI is printed as the first line of stdout.",
    )
    mongo.add_argument(
        "--members",
        type=_member_count,
        default=None,
        help=f"replica set members, 1 to {MAX_MEMBERS} (default 3)",
    )
    mongo.add_argument(
        "--port",
        type=_port,
        default=None,
        help="member i listens on PORT+i (default: free ports chosen by the system)",
    )
    mongo.add_argument("--name", default=None, help="replica set name (default rs0)")
    mongo.add_argument(
        "--polling",
        action="store_true",
        help="polling SDAM monitoring: no topologyVersion, no awaitable hello",
    )
    kind = mongo.add_mutually_exclusive_group()
    kind.add_argument("--standalone", action="store_true", help="one server, not a replica set")
    kind.add_argument(
        "--router",
        type=_member_count,
        metavar="N",
        default=None,
        help="N mongos-like routers instead of a replica set",
    )
    mongo.set_defaults(run=functools.partial(_mongo, mongo))  # errors name "clustersim mongo"
    eventstore = commands.add_parser(
        "eventstore",
        help="serve a simulated EventStore cluster (TCP client protocol and HTTP gossip)",
        description="Serve a simulated EventStore cluster until SIGINT or SIGTERM. The first "
        'line of stdout is JSON: {"tcp": ["host:port", ...], "gossip": ["host:port", ...]}.',
    )
    eventstore.add_argument(
        "--nodes", type=_node_count, default=3, help=f"nodes, 1 to {MAX_NODES} (default 3)"
    )
    eventstore.add_argument(
        "--tcp-port", type=_port, default=None, help="node i's TCP port is TCP_PORT+i"
    )
    eventstore.add_argument(
        "--http-port", type=_port, default=None, help="node i's gossip port is HTTP_PORT+i"
    )
    eventstore.add_argument(
        "--gossip", choices=("v5", "v20"), default="v5", help="gossip vocabulary (default v5)"
    )
    eventstore.set_defaults(run=functools.partial(_eventstore, eventstore))
    return parser


def _node_count(text: str) -> int:
    value = _integer(text)
    if not 1 <= value <= MAX_NODES:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_NODES}, not {value}")
    return value


def _member_count(text: str) -> int:
    value = _integer(text)
    if not 1 <= value <= MAX_MEMBERS:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_MEMBERS}, not {value}")
    return value


def _port(text: str) -> int:
    value = _integer(text)
    if not 1 <= value <= _MAX_PORT:
        raise argparse.ArgumentTypeError(f"must be from 1 to {_MAX_PORT}, not {value}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _deployment(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ReplicaSet:
    """The deployment the arguments describe (not started); argument conflicts exit with 2."""
    if args.standalone or args.router is not None:
        option = "--standalone" if args.standalone else "--router"
        if args.members is not None:
            parser.error(f"--members does not apply to {option}")
        if args.name is not None:
            parser.error(f"--name does not apply to {option}")
    count = 1 if args.standalone else args.router or args.members or 3
    ports = None
    if args.port is not None:
        if args.port + count - 1 > _MAX_PORT:
            parser.error(f"--port {args.port} leaves no room for {count} members")
        ports = [args.port + i for i in range(count)]
    if args.standalone:
        return Standalone(port=args.port or 0, polling=args.polling)
    if args.router is not None:
        if ports is None:
            return Router(count, polling=args.polling)
        # Router() takes no ports; this is what it builds, with them.
        return ReplicaSet(count, "router", ports=ports, polling=args.polling, _router=True)
    return ReplicaSet(count, args.name or "rs0", ports=ports, polling=args.polling)


# --- serving -----------------------------------------------------------------------------------


def _serve_until_stopped(stop: threading.Event) -> None:
    # A timed wait: a signal delivered to another thread leaves a blocked main thread
    # asleep, and only the main thread runs Python signal handlers.
    while not stop.wait(0.5):
        pass
    print(f"{_PROG}: stopping", file=sys.stderr, flush=True)


def _eventstore(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    ports: dict[str, list[int] | None] = {}
    for option, base in (("--tcp-port", args.tcp_port), ("--http-port", args.http_port)):
        if base is not None and base + args.nodes - 1 > _MAX_PORT:
            parser.error(f"{option} {base} leaves no room for {args.nodes} nodes")
        ports[option] = None if base is None else [base + i for i in range(args.nodes)]
    cluster = Cluster(
        args.nodes,
        gossip=args.gossip,
        tcp_ports=ports["--tcp-port"],
        http_ports=ports["--http-port"],
    )
    stop = threading.Event()
    previous = _install_handlers(stop)
    started = False
    try:
        with cluster as es:
            started = True
            print(json.dumps({"tcp": es.tcp_addresses, "gossip": es.gossip_seeds}), flush=True)
            lines = [
                f"eventstore node {i}: tcp {tcp} gossip {http} "
                f"{'leader' if es.leader == i else 'follower'} ({args.gossip} gossip)"
                for i, (tcp, http) in enumerate(zip(es.tcp_addresses, es.gossip_seeds, strict=True))
            ]
            lines.append(f"{_PROG}: serving; stop with Ctrl-C or SIGTERM")
            print("\n".join(lines), file=sys.stderr, flush=True)
            _serve_until_stopped(stop)
    except (OSError, ClustersimError) as exc:
        if started:
            raise
        print(f"{_PROG}: error: cannot start the cluster: {exc}", file=sys.stderr)
        return 1
    finally:
        _restore_handlers(previous)
    return 0


def _mongo(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    deployment = _deployment(parser, args)
    stop = threading.Event()
    previous = _install_handlers(stop)
    started = False
    try:
        with deployment as rs:
            started = True
            print(rs.uri, flush=True)
            _describe(rs, args)
            _serve_until_stopped(stop)
    except (OSError, ClustersimError) as exc:
        if started:
            raise
        print(f"{_PROG}: error: cannot start the deployment: {exc}", file=sys.stderr)
        return 1
    finally:
        _restore_handlers(previous)
    return 0


def _describe(rs: ReplicaSet, args: argparse.Namespace) -> None:
    mode = "polling" if args.polling else "streaming"
    if args.standalone:
        lines = [f"standalone: {rs.addresses[0]} ({mode})"]
    elif args.router is not None:
        lines = [f"router {i}: {address} ({mode})" for i, address in enumerate(rs.addresses)]
    else:
        lines = [
            f"{rs.name} member {i}: {address} "
            f"{'primary' if rs.primary == i else 'secondary'} ({mode})"
            for i, address in enumerate(rs.addresses)
        ]
    lines.append(f"{_PROG}: serving; stop with Ctrl-C or SIGTERM")
    print("\n".join(lines), file=sys.stderr, flush=True)


_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _install_handlers(stop: threading.Event) -> dict[int, _Handler]:
    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, _Handler] = {}
    for signum in _SIGNALS:
        previous[signum] = signal.signal(signum, handle)
    return previous


def _restore_handlers(previous: dict[int, _Handler]) -> None:
    for signum, handler in previous.items():
        if handler is not None:  # None: set outside Python, cannot be put back from here
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())

"""The client: ``connect()`` and :class:`Client`, the original's API over one managed connection.

One task (the connector) finds a node through the discoverer, opens a connection, sends every
conversation still in progress (again, unchanged, after a reconnect: a publish keeps its event
ids, so the node's idempotency makes the retry safe), and waits for the connection to end. Frames
are routed by correlation id; a late reply to a request the caller gave up on is dropped.

``NotHandled``: ``NotMaster`` reconnects to the leader the node names and sends the request
there; ``NotReady``/``TooBusy`` send it again after a short pause; ``IsReadOnly`` fails it.
Every request has a deadline (``request_timeout``, or ``timeout=`` per call): its expiry raises
:class:`~photonpump.exceptions.RequestTimeout`, while the caller's own cancellation propagates
as such. ``close()`` fails everything pending with :class:`~photonpump.exceptions.ClientClosed`;
when discovery gives up, pending requests fail with its error and the next request starts a new
round.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from . import discovery
from ._subscribing import Subscribing
from .messages import Credential

__all__ = ["Client", "connect"]


class Client(Subscribing):
    """An EventStore client; ``async with`` it, or ``await connect()`` / ``await close()``.

    Methods: ``ping``, ``publish_event``, ``publish``, ``delete_stream``, ``get_event``, ``get``,
    ``get_all``, ``iter``, ``iter_all``, ``subscribe_to``, ``subscribe_to_all``,
    ``create_subscription``, ``update_subscription``, ``delete_subscription``,
    ``connect_subscription``; ``hooks`` for reconnect events.
    """


def connect(
    host: str = "localhost",
    port: int = 1113,
    discovery_host: str | Sequence[str] | None = None,
    discovery_port: int = 2113,
    username: str | None = None,
    password: str | None = None,
    loop: Any = None,
    name: str | None = None,
    selector: Any = discovery.select_random,
    retry_policy: Any = None,
    **options: Any,
) -> Client:
    """A client (nothing is started: no I/O, no running loop needed, R20).

    ``options`` are :class:`Client`'s keyword arguments (``request_timeout``, ``ssl_context``,
    ``heartbeat_interval``, ...). Credentials are used when both are given.
    """
    if loop is not None:
        warnings.warn("connect(loop=...) is ignored", DeprecationWarning, stacklevel=2)
    discoverer = discovery.get_discoverer(
        host, port, discovery_host, discovery_port, selector=selector, retry_policy=retry_policy
    )
    credential = Credential(username, password) if username and password else None
    return Client(discoverer, credential=credential, name=name, **options)

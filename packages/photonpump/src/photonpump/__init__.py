"""asyncio client for EventStore's TCP protocol (servers 3.x to 23.10), on the toolkit's core.

``connect()`` gives a :class:`Client`; the data types are in :mod:`photonpump.messages`, the
errors in :mod:`photonpump.exceptions`, discovery in :mod:`photonpump.discovery`. Unlike the
original (which star-imported 106 names), the package exports exactly what ``__all__`` lists.
"""

from . import discovery, exceptions, messages
from .connection import Client, connect
from .messages import (
    AllStreamSlice,
    Beginning,
    ContentType,
    Credential,
    End,
    Event,
    EventRecord,
    ExpectedVersion,
    NakAction,
    NewEvent,
    NewEventData,
    Position,
    StreamDirection,
    StreamSlice,
    WriteResult,
)

__version__ = "1.0.0a1"

__all__ = [
    "AllStreamSlice",
    "Beginning",
    "Client",
    "ContentType",
    "Credential",
    "End",
    "Event",
    "EventRecord",
    "ExpectedVersion",
    "NakAction",
    "NewEvent",
    "NewEventData",
    "Position",
    "StreamDirection",
    "StreamSlice",
    "WriteResult",
    "__version__",
    "connect",
    "discovery",
    "exceptions",
    "messages",
]

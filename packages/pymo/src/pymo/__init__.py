"""Fail-fast pymongo clients: ``pymo.mongo_client`` and ``await pymo.async_mongo_client``.

Since PyMongo 3, creating a client never fails: an unreachable or unsuitable deployment shows up
only at the first operation, after ``serverSelectionTimeoutMS``. pymo waits for the first
heartbeat of each seed instead and fails at once, naming every seed and what it answered.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import errors
from ._async.factory import async_mongo_client
from ._sync.factory import mongo_client
from .decision import SeedView
from .seeds import DEFAULT_FAIL_FAST_TIMEOUT
from .selectors import SERVER_STATE_SELECTORS, SERVER_TYPE_SELECTORS, ServerStateType

try:
    __version__ = version("pymo")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = [
    "__version__",
    "DEFAULT_FAIL_FAST_TIMEOUT",
    "SERVER_STATE_SELECTORS",
    "SERVER_TYPE_SELECTORS",
    "SeedView",
    "ServerStateType",
    "async_mongo_client",
    "errors",
    "mongo_client",
]

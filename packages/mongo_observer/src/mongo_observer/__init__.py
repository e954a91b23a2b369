"""mongo_observer: live observers over the MongoDB oplog and change streams.

Work in progress: this release holds the pure building blocks (applying every update form the
server logs, expanding transactions and batched writes); the observer and the reactive
collections come next.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import errors

try:
    __version__ = version("mongo-observer")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "errors"]

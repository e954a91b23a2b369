"""The original's module name for the handlers: ``from mongo_observer.operation_handlers import
ReactiveCollection`` keeps working."""

from __future__ import annotations

from .handlers import OperationHandler, ShouldStopObservation
from .reactive import ReactiveCollection, ReactivePartialCollection

__all__ = [
    "OperationHandler",
    "ReactiveCollection",
    "ReactivePartialCollection",
    "ShouldStopObservation",
]

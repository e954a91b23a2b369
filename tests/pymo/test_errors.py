"""pymo's errors belong to both pymongo's and the toolkit's error trees."""

from __future__ import annotations

import pymo
import pymongo.errors
from pymo.errors import PymoConfigurationError, PymoError, ServerSelectionTryOnceTimeoutError

import resilient_topology


def test_try_once_error_is_caught_by_pymongo_and_toolkit_handlers() -> None:
    error = ServerSelectionTryOnceTimeoutError("no seed", timeout=1.0)
    for base in (
        PymoError,
        pymongo.errors.ServerSelectionTimeoutError,
        pymongo.errors.ConnectionFailure,
        resilient_topology.ServerSelectionTimeout,
        resilient_topology.TopologyError,
    ):
        assert isinstance(error, base)
    assert str(error) == "no seed"
    assert error.fail_fast_timeout == 1.0
    assert error.labels == frozenset()
    assert dict(error.seeds) == {}


def test_configuration_error_is_both_kinds() -> None:
    error = PymoConfigurationError("bad")
    assert isinstance(error, pymongo.errors.ConfigurationError)
    assert isinstance(error, resilient_topology.ConfigurationError)
    assert issubclass(PymoError, resilient_topology.TopologyError)


def test_the_errors_module_is_reachable_from_the_package() -> None:
    assert pymo.errors.ServerSelectionTryOnceTimeoutError is ServerSelectionTryOnceTimeoutError

"""The package's shape: a flat public API, and pure modules that import no I/O."""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import resilient_topology
from resilient_topology import errors

PACKAGE_DIR = Path(resilient_topology.__file__).resolve().parent
# Only these may touch asyncio, sockets, threads or clocks.
DRIVER_PARTS = {"drivers", "mongo.py", "testing.py"}
FORBIDDEN = {"asyncio", "socket", "threading", "selectors", "time"}


def _pure_modules() -> list[Path]:
    return [
        path
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
        if not DRIVER_PARTS & set(path.relative_to(PACKAGE_DIR).parts)
    ]


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_pure_modules_import_no_io_or_clock() -> None:
    modules = _pure_modules()
    assert len(modules) > 10
    offenders = {
        str(path.relative_to(PACKAGE_DIR)): sorted(_imported_roots(path) & FORBIDDEN)
        for path in modules
        if _imported_roots(path) & FORBIDDEN
    }
    assert offenders == {}


def test_pure_modules_need_no_third_party_package() -> None:
    allowed = set(sys.stdlib_module_names) | {"resilient_topology"}
    offenders = {
        str(path.relative_to(PACKAGE_DIR)): sorted(_imported_roots(path) - allowed)
        for path in _pure_modules()
        if _imported_roots(path) - allowed
    }
    # The generated EventStore messages are the 'eventstore' extra: protobuf, and nothing else.
    assert offenders == {"eventstore/proto/messages_pb2.py": ["google"]}


def test_all_is_sorted_and_complete() -> None:
    names = resilient_topology.__all__
    assert list(names) == sorted(names, key=lambda n: (n.lower(), n))
    for name in names:
        assert hasattr(resilient_topology, name), name


def test_every_error_class_is_exported_and_under_the_root() -> None:
    classes = [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if obj.__module__ == errors.__name__
    ]
    for cls in classes:
        assert issubclass(cls, errors.TopologyError), cls
        assert getattr(resilient_topology, cls.__name__) is cls


def test_errors_mix_in_the_matching_builtins() -> None:
    assert issubclass(errors.ConfigurationError, ValueError)
    assert issubclass(errors.ServerSelectionTimeout, TimeoutError)
    assert issubclass(errors.ConnectionFailure, ConnectionError)
    assert issubclass(errors.RemoteProtocolError, ValueError)


def test_py_typed_marker_ships() -> None:
    assert (PACKAGE_DIR / "py.typed").is_file()

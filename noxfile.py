"""Sessions for the whole repository: lint, type checks, tests (together and per package).

Distributions are discovered, not listed: the core lives in ``shared/`` and every
``packages/*/pyproject.toml`` joins the sessions automatically. A package's import name is its
``[project].name`` with ``-`` turned into ``_``; its tests live in ``tests/<import name>/``.

    nox                                        # what CI runs (see .ci/run and README.md)
    nox -s tests -- tests/scripts -x   # posargs replace the default test paths
    nox -s tests-resilient_topology    # one package in an environment of its own
"""

from __future__ import annotations

import re
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
TESTS = ROOT / "tests"
CONFIG = ROOT / "pyproject.toml"

# Pinned so that a new release of a tool cannot turn CI red on its own; bump deliberately.
RUFF = "ruff==0.17.6"
MYPY = "mypy==2.4.1"
TYPES = "types-protobuf>=5.27"  # stubs for the generated EventStore messages
TEST_DEPS = ["pytest>=8", "pytest-asyncio>=0.24", "hypothesis>=6.100", "pymongo>=4.12,<5"]
RICH = "rich>=13"  # the demo's live console; a demo-only dependency
DOCS_DEPS = ["mkdocs==1.6.1", "mkdocs-material==9.8.2"]  # material brings pymdown-extensions
PLOTS = "matplotlib==3.11.2"  # bench/failover_timeline.py writes the docs' PNG plots

nox.options.sessions = [
    "lint",
    "typecheck",
    "typecheck-demo",
    "unasync",
    "proto",
    "docs",
    "tests",
    "conformance-eventstore",
]
nox.options.default_venv_backend = "uv|virtualenv"  # uv when installed, else virtualenv
nox.options.error_on_external_run = True


@dataclass(frozen=True)
class Package:
    folder: Path  # absolute path of the folder holding pyproject.toml
    dist: str  # distribution name, e.g. "resilient-topology"
    extras: tuple[str, ...]  # extras installed with it everywhere
    test_group: tuple[str, ...]  # requirements of its [dependency-groups].test, if any

    @property
    def import_name(self) -> str:
        return self.dist.replace("-", "_")

    @property
    def requirement(self) -> str:
        return f"{self.folder}[{','.join(self.extras)}]" if self.extras else str(self.folder)

    @property
    def sources(self) -> Path:
        return self.folder / "src" / self.import_name

    @property
    def tests(self) -> list[Path]:
        extra = [TESTS / "spec"] if self is CORE else []
        return [TESTS / self.import_name, *extra]


def _read(folder: Path, extras: tuple[str, ...] = ()) -> Package:
    data = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))
    group = data.get("dependency-groups", {}).get("test", [])
    return Package(
        folder=folder,
        dist=data["project"]["name"],
        extras=extras,
        test_group=tuple(item for item in group if isinstance(item, str)),
    )


CORE = _read(ROOT / "shared", extras=("mongo", "eventstore"))
PACKAGES = [CORE] + [_read(p.parent) for p in sorted(ROOT.glob("packages/*/pyproject.toml"))]
BY_NAME = {package.import_name: package for package in PACKAGES}


def _install(session: nox.Session, packages: list[Package], *extra: str) -> None:
    """Install ``packages`` from this checkout (never an index) plus ``extra`` requirements.

    Non-editable, so tests see what a wheel ships. All in one call, so a package's requirement
    on the core is satisfied by the local core. With uv, a reused environment is refreshed.
    """
    wanted = list(packages)
    groups: list[str] = []
    for requirement in (req for package in packages for req in package.test_group):
        local = _repo_package(requirement)
        if local is None:
            groups.append(requirement)
        elif local not in wanted:
            wanted.append(local)  # a sibling test dependency: from this checkout, not an index
    reinstall = []
    if session.venv_backend == "uv":
        reinstall = [f"--reinstall-package={package.dist}" for package in wanted]
    session.install(*reinstall, *(p.requirement for p in wanted), *groups, *extra)


def _repo_package(requirement: str) -> Package | None:
    """The repository's own distribution a requirement names, if it names one."""
    name = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].strip().lower()
    return next((p for p in PACKAGES if p.dist.lower() == name), None)


def _pytest(session: nox.Session, *paths: Path | str) -> None:
    # success_codes stays at its default [0]: pytest's 5 ("no tests collected") is a failure.
    session.run("pytest", *(str(p) for p in paths))


@nox.session
def tests(session: nox.Session) -> None:
    """Every distribution in one environment, the whole tests/ tree (the main run)."""
    _install(session, PACKAGES, *TEST_DEPS, RICH, *DOCS_DEPS)
    _pytest(session, *(session.posargs or [str(TESTS)]))


@nox.session
def spec(session: nox.Session) -> None:
    """The data-driven spec runners alone; SPEC_TESTS_DIR picks the spec JSON folder."""
    _install(session, PACKAGES, *TEST_DEPS)
    _pytest(session, TESTS / "spec", *session.posargs)


def _package_tests(package: Package) -> None:
    def run(session: nox.Session) -> None:
        _install(session, [CORE] if package is CORE else [CORE, package], *TEST_DEPS)
        _pytest(session, *package.tests, *session.posargs)

    run.__doc__ = f"{package.dist} alone with the core, in an isolated environment."
    nox.session(name=f"tests-{package.import_name}")(run)


for _package in PACKAGES:
    _package_tests(_package)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the repository."""
    session.install(RUFF)
    session.run("ruff", "check", ".", *session.posargs)
    session.run("ruff", "format", "--check", ".")


@nox.session
@nox.parametrize("name", list(BY_NAME), ids=list(BY_NAME))
def typecheck(session: nox.Session, name: str) -> None:
    """mypy --strict per package, with only that package (and the core) installed."""
    package = BY_NAME[name]
    _install(session, [CORE] if package is CORE else [CORE, package], MYPY, TYPES, *TEST_DEPS)
    cache = Path(session.create_tmp()) / "mypy_cache"
    mypy = ["mypy", "--config-file", str(CONFIG), "--cache-dir", str(cache)]
    session.run(*mypy, str(package.sources if package is CORE else package.folder / "src"))
    # Tests and scripts are checked against the installed package; module names come from
    # their paths (tests.<...>), which the relaxed "tests.*" override in pyproject.toml matches.
    targets = [p for p in package.tests if p.is_dir()]
    if package is CORE:
        targets += [*TESTS.glob("*.py"), TESTS / "scripts", ROOT / "scripts"]
    if targets:
        session.run(*mypy, "--explicit-package-bases", *(str(p.relative_to(ROOT)) for p in targets))


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark in bench/, one after the other (about five minutes); posargs pick one."""
    _install(session, PACKAGES, *TEST_DEPS, PLOTS)
    found = (ROOT / "bench").glob("*.py")
    scripts = session.posargs or sorted(str(p) for p in found if not p.name.startswith("_"))
    for script in scripts:
        session.run("python", script)


@nox.session(name="conformance-eventstore")
def conformance_eventstore(session: nox.Session) -> None:
    """The published photon-pump 0.9.5.2 against the simulator (its own virtual environment)."""
    _install(session, [CORE, BY_NAME["clustersim"]], "photon-pump==0.9.5.2", *TEST_DEPS)
    # photon-pump's generated code needs the pure-Python protobuf backend (process-wide); the
    # simulator child process goes back to the fast one.
    session.env["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = "python"
    _pytest(session, ROOT / "conformance" / "eventstore", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The narrated demo on embedded simulators; posargs go to it (real servers:
    ``nox -s demo -- --mongo-uri mongodb://... --eventstore host:2113``)."""
    _install(session, PACKAGES, RICH)
    session.run("python", "-m", "demo", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site: mkdocs build --strict (any warning fails)."""
    session.install(*DOCS_DEPS)
    session.env["NO_MKDOCS_2_WARNING"] = "1"  # silences material's end-of-life banner on stderr
    session.run("mkdocs", "build", "--strict", "--site-dir", str(ROOT / "site"), *session.posargs)


@nox.session(name="typecheck-demo")
def typecheck_demo(session: nox.Session) -> None:
    """mypy --strict over the demo, the docs tests and the bench scripts, all packages installed."""
    _install(session, PACKAGES, MYPY, TYPES, RICH, PLOTS, *DOCS_DEPS, *TEST_DEPS)
    targets = ["demo", "tests/demo", "tests/docs", "bench"]
    session.env["MYPYPATH"] = str(ROOT / "bench")  # the scripts import their shared helpers
    session.run("mypy", "--config-file", str(CONFIG), "--explicit-package-bases", *targets)


# The lowest versions our ranges admit, for `tests-lowest`.
LOWEST = ["pymongo==4.12", "protobuf==5.27.2", "aiohttp==3.9.5"]


@nox.session(name="tests-lowest")
def tests_lowest(session: nox.Session) -> None:
    """The whole suite with the lowest declared pymongo, protobuf and aiohttp."""
    _install(session, PACKAGES, *TEST_DEPS, RICH, *DOCS_DEPS, *LOWEST)
    session.run("python", "-c", LOWEST_CHECK)  # the pins really are what got installed
    _pytest(session, *(session.posargs or [str(TESTS)]))


LOWEST_CHECK = f"""
import importlib.metadata as metadata
def parts(version): return (tuple(int(p) for p in version.split(".")[:3]) + (0, 0, 0))[:3]
for pin in {LOWEST!r}:
    name, wanted = pin.split("==")
    found = metadata.version(name)
    assert parts(found) == parts(wanted), f"{{name}} {{found}} installed, {{wanted}} pinned"
    print(name, found)
"""


@nox.session
def build(session: nox.Session) -> None:
    """sdist and wheel per package; each wheel installs alone in a fresh venv and imports."""
    session.install("build>=1.2", "packaging>=24")
    dist = Path(session.create_tmp()) / "dist"
    if dist.exists():
        shutil.rmtree(dist)
    for package in PACKAGES:
        session.run("python", "-m", "build", "--outdir", str(dist), str(package.folder))
    session.run("python", str(ROOT / "scripts" / "check_release.py"), str(dist))


@nox.session
def proto(session: nox.Session) -> None:
    """Check the generated EventStore message code against messages.proto (pinned protoc)."""
    session.install("grpcio-tools==1.66.2")  # protoc 27: gencode that loads on protobuf >= 5.27.2
    session.run("python", str(ROOT / "scripts" / "gen_proto.py"), "--check", *session.posargs)


@nox.session
def unasync(session: nox.Session) -> None:
    """Check that every generated _sync/ module matches its _async/ source."""
    session.run("python", str(ROOT / "scripts" / "unasync.py"), "--check", *session.posargs)

"""Release checks over built distributions: ``python scripts/check_release.py DIST``.

For every package of the repository (``shared/`` and ``packages/*``):

* an sdist and a wheel exist in DIST, both with the version its own ``pyproject.toml`` declares;
* its requirement on the core (``resilient-topology``) is a range, not a pin, and the core's
  version satisfies it;
* its wheel installs alone into a fresh virtual environment (other packages of the repository
  only as declared dependencies, taken from DIST, never from an index) and imports.

Exits 1 with one line per problem. ``nox -s build`` builds DIST and runs this.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
CORE = "resilient-topology"


@dataclass(frozen=True)
class Package:
    folder: Path
    name: str
    version: Version
    import_name: str


def packages() -> list[Package]:
    found = []
    for pyproject in [
        ROOT / "shared" / "pyproject.toml",
        *sorted(ROOT.glob("packages/*/pyproject.toml")),
    ]:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        wheel_packages = data["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
        found.append(
            Package(
                pyproject.parent,
                data["project"]["name"],
                Version(data["project"]["version"]),
                Path(wheel_packages[0]).name,
            )
        )
    return found


def artefacts(dist: Path, package: Package) -> tuple[Path | None, Path | None]:
    stem = canonicalize_name(package.name).replace("-", "_")
    wheels = [
        w for w in dist.glob(f"{stem}-*.whl") if Version(w.name.split("-")[1]) == package.version
    ]
    sdists = [
        s
        for s in dist.glob(f"{stem}-*.tar.gz")
        if Version(s.name[len(stem) + 1 : -7]) == package.version
    ]
    return (wheels[0] if wheels else None), (sdists[0] if sdists else None)


def requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(name).decode("utf-8"))
    return [Requirement(value) for value in metadata.get_all("Requires-Dist") or []]


def installs_alone(wheel: Path, package: Package, core_wheel: Path) -> str | None:
    """None when the wheel installs into a fresh venv and imports; else what went wrong.

    The core's wheel is named on the command line too, so the core comes from this build (pip
    prefers a named file), never from an index; third-party requirements come from the index.
    """
    with tempfile.TemporaryDirectory() as folder:
        venv = Path(folder) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = venv / "bin" / "python"
        install = subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                *dict.fromkeys([str(core_wheel), str(wheel)]),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if install.returncode != 0:
            return f"pip install failed: {install.stderr.strip()[-500:]}"
        probe = (
            f"import {package.import_name} as m, importlib.metadata as md; "
            f"print(md.version({package.name!r}))"
        )
        done = subprocess.run(
            [str(python), "-c", probe], capture_output=True, text=True, check=False, cwd=folder
        )
        if done.returncode != 0:
            return f"import failed: {done.stderr.strip()[-500:]}"
        if Version(done.stdout.strip()) != package.version:
            return f"installed version {done.stdout.strip()} is not {package.version}"
    return None


def main() -> int:
    dist = Path(sys.argv[1])
    everything = packages()
    core = next(p for p in everything if p.name == CORE)
    core_wheel, _ = artefacts(dist, core)
    if core_wheel is None:
        print(f"PROBLEM: no wheel of {CORE} {core.version} in {dist}")
        return 1
    problems: list[str] = []
    for package in everything:
        wheel, sdist = artefacts(dist, package)
        if wheel is None or sdist is None:
            problems.append(f"{package.name} {package.version}: missing wheel or sdist in {dist}")
            continue
        for requirement in requirements(wheel):
            if canonicalize_name(requirement.name) != CORE:
                continue
            if any(spec.operator in ("==", "===") for spec in requirement.specifier):
                problems.append(f"{package.name}: pins the core ({requirement}), wants a range")
            if core.version not in requirement.specifier:
                problems.append(f"{package.name}: needs {requirement}, the core is {core.version}")
        failure = installs_alone(wheel, package, core_wheel)
        status = "ok" if failure is None else failure
        print(f"{package.name} {package.version}: {wheel.name}, {sdist.name}: {status}")
        if failure is not None:
            problems.append(f"{package.name}: {failure}")
    for problem in problems:
        print("PROBLEM:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

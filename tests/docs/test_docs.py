"""The documentation site (``mkdocs.yml``, ``docs/``): what ``nox -s docs`` builds.

Every page in the navigation exists and every page is in it; every relative link and image
resolves inside ``docs/``; every Python example compiles, imports only names the toolkit has, and
calls the toolkit's functions and classes with arguments their signatures accept; each
distribution has a guide; and ``mkdocs build --strict`` passes. mkdocs and mkdocs-material are
test dependencies: without them this module fails to import, on purpose.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mkdocs.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "mkdocs.yml"
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))

FENCE = re.compile(r"^( *)```([^\n`]*)\n(.*?)^\1```[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
MD_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
HTML_LINK = re.compile(r"\b(?:src|href)\s*=\s*[\"']([^\"']+)[\"']")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _distributions() -> dict[str, str]:
    """Distribution name -> import name, for the core and every package of the repository."""
    found = {}
    for pyproject in [ROOT / "shared" / "pyproject.toml", *ROOT.glob("packages/*/pyproject.toml")]:
        name = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["name"]
        found[name] = name.replace("-", "_")
    return found


OURS = frozenset(_distributions().values())


def _nav_pages(nav: Any) -> Iterator[str]:
    """Every page file named in a mkdocs ``nav`` value (lists, titled dicts, plain strings)."""
    if isinstance(nav, str):
        if not SCHEME.match(nav):
            yield nav
    elif isinstance(nav, list):
        for item in nav:
            yield from _nav_pages(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from _nav_pages(value)


def _nav() -> list[str]:
    config = load_config(str(CONFIG))
    return list(_nav_pages(config["nav"]))


def _prose(text: str) -> str:
    """The page without fenced code blocks and inline code, where links are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _links(page: Path) -> list[str]:
    prose = _prose(page.read_text(encoding="utf-8"))
    return [
        m.group(1) for pattern in (MD_LINK, REF_LINK, HTML_LINK) for m in pattern.finditer(prose)
    ]


def _python_blocks(page: Path) -> list[tuple[int, str]]:
    """(line number, source) of each ```python / ```py block of a page."""
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        info = match.group(2).strip().split()
        if info and info[0] in ("python", "py", "python3"):
            line = text.count("\n", 0, match.start()) + 2
            blocks.append((line, textwrap.dedent(match.group(3))))
    return blocks


def _examples() -> list[Any]:
    return [
        pytest.param(page, line, source, id=f"{page.relative_to(DOCS)}:{line}")
        for page in PAGES
        for line, source in _python_blocks(page)
    ]


# --- the navigation ---------------------------------------------------------------------------


def test_every_page_in_the_navigation_exists() -> None:
    nav = _nav()
    assert nav, "mkdocs.yml has no nav"
    missing = [page for page in nav if not (DOCS / page).is_file()]
    assert not missing, f"pages named in mkdocs.yml but absent from docs/: {missing}"


def test_every_page_is_in_the_navigation() -> None:
    listed = {(DOCS / page).resolve() for page in _nav()}
    orphans = [str(page.relative_to(DOCS)) for page in PAGES if page.resolve() not in listed]
    assert not orphans, f"pages in docs/ that mkdocs.yml's nav does not list: {orphans}"


def test_the_architecture_page_keeps_its_path() -> None:
    # READMEs and package metadata point at docs/architecture.md.
    assert "architecture.md" in _nav()


def test_every_distribution_has_a_guide() -> None:
    nav = set(_nav())
    missing = [name for name in _distributions() if f"guides/{name}.md" not in nav]
    assert not missing, f"no guides/<distribution>.md in the nav for: {missing}"


# --- links and images -------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_relative_links_and_images_resolve(page: Path) -> None:
    broken = []
    for target in _links(page):
        if SCHEME.match(target) or target.startswith("#"):
            continue  # another site, or an anchor of this page (checked by the strict build)
        path = target.split("#", 1)[0].split("?", 1)[0]
        resolved = (page.parent / path).resolve()
        if not resolved.is_relative_to(DOCS.resolve()) or not resolved.exists():
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: links that resolve to nothing: {broken}"


def test_the_link_finder_sees_links_but_not_code() -> None:
    text = "[a](one.md) ![b\nc](img/two.png) `[x](code.md)`\n\n```\n[y](fenced.md)\n```\n"
    prose = _prose(text)
    assert [m.group(1) for m in MD_LINK.finditer(prose)] == ["one.md", "img/two.png"]


# --- code examples ------------------------------------------------------------------------------


def _imported(tree: ast.Module) -> tuple[dict[str, object], list[str]]:
    """Names the example binds by importing from the toolkit, and imports that do not exist."""
    bound: dict[str, object] = {}
    missing: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] not in OURS:
                continue
            module = importlib.import_module(node.module)
            for alias in node.names:
                if hasattr(module, alias.name):
                    bound[alias.asname or alias.name] = getattr(module, alias.name)
                else:
                    missing.append(f"from {node.module} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in OURS:
                    module = importlib.import_module(alias.name)
                    bound[alias.asname or top] = module if alias.asname else sys.modules[top]
    assigned = {
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)
    }
    return {name: obj for name, obj in bound.items() if name not in assigned}, missing


def _resolve(node: ast.expr, bound: dict[str, object]) -> tuple[str, object] | None:
    """``name`` or ``name.attr.attr`` rooted at a bound toolkit name: (dotted, object or None)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in bound:
        return None
    obj: object = bound[node.id]
    dotted = node.id
    for part in reversed(parts):
        dotted += f".{part}"
        if not hasattr(obj, part):
            return dotted, None
        obj = getattr(obj, part)
    return dotted, obj


def _api_problems(tree: ast.Module) -> list[str]:
    bound, problems = _imported(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            found = _resolve(node, bound)
            if found is not None and found[1] is None:
                problems.append(f"{found[0]} does not exist")
        if not isinstance(node, ast.Call):
            continue
        found = _resolve(node.func, bound)
        if found is None or found[1] is None or not callable(found[1]):
            continue
        if any(isinstance(a, ast.Starred) for a in node.args) or any(
            k.arg is None for k in node.keywords
        ):
            continue  # *args / **kwargs: nothing to compare
        try:
            signature = inspect.signature(found[1])
        except (TypeError, ValueError):
            continue  # a builtin or an object without an introspectable signature
        try:
            signature.bind(*node.args, **{k.arg: k.value for k in node.keywords if k.arg})
        except TypeError as exc:
            problems.append(f"line {node.lineno}: {found[0]}(...) does not fit {signature}: {exc}")
    return problems


@pytest.mark.parametrize(("page", "line", "source"), _examples())
def test_the_example_compiles_and_matches_the_api(page: Path, line: int, source: str) -> None:
    where = f"{page.relative_to(ROOT)}:{line}"
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    tree = compile(source, where, "exec", flags=flags, dont_inherit=True)
    compile(tree, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    problems = _api_problems(tree)
    assert not problems, f"{where}: " + "; ".join(problems)


def test_the_api_check_catches_a_wrong_name_and_a_wrong_argument() -> None:
    tree = ast.parse(
        "import pymo\n"
        "from mongomancy import Index, NoSuchThing\n"
        "pymo.no_such_factory()\n"
        "Index(unique=True)\n"
    )
    problems = " | ".join(_api_problems(tree))
    assert "from mongomancy import NoSuchThing" in problems
    assert "pymo.no_such_factory does not exist" in problems
    assert "Index(...) does not fit" in problems  # fields is required


def test_the_guides_have_examples() -> None:
    guides = [page for page in PAGES if page.parent.name == "guides"]
    assert guides
    assert all(_python_blocks(page) for page in guides), "a guide without a Python example"


# --- the build ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_mkdocs_build_strict_passes(tmp_path: Path) -> None:
    site = tmp_path / "site"
    command = ["mkdocs", "build", "--strict", "--config-file", str(CONFIG), "--site-dir", str(site)]
    done = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # mkdocs-material's banner on stderr
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "WARNING" not in output, output
    assert (site / "index.html").is_file()
    assert (site / "architecture" / "index.html").is_file()
    assert (site / "assets" / "bench" / "mongo_failover.png").is_file()

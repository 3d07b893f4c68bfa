"""Import layering: cli -> library packages -> io -> utils, never upward; and no import cycle.

A small AST check over every module of reidcli/, imports inside functions included (most of
reidcli's imports are lazy), plus ``importlib.import_module("reidcli....")`` with a literal or
f-string prefix. The library packages (data, models, losses, features, train, cluster, eval,
plot, pose, stylize, recipes) may import one another, io and utils; io only io and utils;
utils only utils; nothing but cli imports cli. The root package holds only ``__version__``
and may be imported by anyone.

The same walk gives the module import graph (``from pkg import name`` is an edge to
``pkg.name`` where that is a module, else to ``pkg``; a module's parent packages, which
Python imports first, are not edges), and it must have no cycle: a lazy import that closes
a loop (``a`` imports ``b`` at the top, ``b`` imports ``a`` inside a function) only hides a
piece that both need and that belongs in a third module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "reidcli"
LIBRARY = {"data", "models", "losses", "features", "train", "cluster", "eval", "plot", "pose", "stylize",
           "recipes"}

# Upward imports that are known and being removed by work in flight, as
# (importing module, imported layer). Remove an entry once its fix is merged; a stale entry
# fails `test_allow_list_is_current`.
ALLOWED: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` (relative or not) names."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _subpackages() -> set[str]:
    return {p.name for p in PKG.iterdir() if (p / "__init__.py").is_file()} | {
        p.stem for p in PKG.glob("*.py") if p.stem != "__init__"}


def _is_module(name: str) -> bool:
    """``name`` (``reidcli.x.y``) is a module or a package of reidcli/."""
    path = PKG.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path, source: str | None = None) -> list[tuple[int, str, list[str], bool]]:
    """(line, absolute module, submodules named, whether the module itself is needed) of
    every import in ``path`` (or in ``source``, read as if it were that module): ``from pkg
    import a, b`` names ``pkg`` and those of ``pkg.a``, ``pkg.b`` that are modules, and needs
    ``pkg`` itself only when one of ``a``, ``b`` is not a module."""
    module, is_package = _module_name(path), path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, [], True) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            named = [f"{target}.{a.name}" for a in node.names]
            subs = [m for m in named if _is_module(m)]
            out.append((node.lineno, target, subs, len(subs) < len(named)))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                arg = arg.values[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                out.append((node.lineno, arg.value.rstrip("."), [], True))
    return out


def _ours(module: str) -> bool:
    return module == "reidcli" or module.startswith("reidcli.")


def imported(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """(line, absolute module) of every reidcli import in ``path`` (or in ``source``, read as
    if it were that module); ``from reidcli import cli`` names ``reidcli`` and ``reidcli.cli``."""
    out = [(line, m) for line, target, subs, _ in _imports(path, source) for m in (target, *subs)]
    return [(line, m) for line, m in out if _ours(m)]


def import_graph() -> dict[str, dict[str, int]]:
    """Module -> {module it imports: first line}, over reidcli's modules, lazy imports
    included. ``from pkg import mod`` is an edge to ``pkg.mod`` only (Python does not run
    ``pkg/__init__.py`` again for it); the parent packages Python imports first are no edges."""
    modules = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}
    graph: dict[str, dict[str, int]] = {}
    for src, path in modules.items():
        edges: dict[str, int] = {}
        for line, target, subs, whole in sorted(_imports(path)):
            for dst in ([target] if whole else []) + subs:
                if dst in modules and dst != src:
                    edges.setdefault(dst, line)
        graph[src] = edges
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str]:
    """One cycle of ``graph`` as [a, b, ..., a] (empty if there is none), by depth-first search."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return []


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _may_import(src: str, dst: str) -> bool:
    if dst in ("", src):
        return True
    if src == "utils":
        return False
    if src == "io":
        return dst == "utils"
    if src in LIBRARY:
        return dst != "cli"
    return src == "cli"


def violations() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted(PKG.rglob("*.py")):
        src = _module_name(path)
        for line, target in imported(path):
            if not _may_import(_layer(src), _layer(target)):
                found.append((src, line, target))
    return found


def test_every_package_has_a_layer():
    assert _subpackages() == LIBRARY | {"cli", "io", "utils"}, (
        "a new package under reidcli/: add it to LIBRARY (or a layer) in tests/test_layers.py")


def test_root_package_imports_nothing_from_reidcli():
    assert imported(PKG / "__init__.py") == []


def test_no_upward_imports():
    bad = [f"{src}:{line} imports {target}" for src, line, target in violations()
           if (src, _layer(target)) not in ALLOWED]
    assert not bad, "upward imports (cli -> library -> io -> utils):\n" + "\n".join(bad)


def test_allow_list_is_current():
    seen = {(src, _layer(target)) for src, _, target in violations()}
    stale = sorted(ALLOWED - seen)
    assert not stale, f"fixed, so remove from ALLOWED in tests/test_layers.py: {stale}"


@pytest.mark.parametrize("source,src_module,expect", [
    ("import reidcli.cli.common", "reidcli.eval.api", "reidcli.cli.common"),
    ("def f():\n    from reidcli.models import build_model", "reidcli.io.x", "reidcli.models"),
    ("from ..cli import common", "reidcli.pose.x", "reidcli.cli"),
    ("from reidcli import cli", "reidcli.utils.x", "reidcli.cli"),
    ("importlib.import_module(f'reidcli.train.{name}')", "reidcli.io.x", "reidcli.train"),
])
def test_checker_sees_every_import_form(source, src_module, expect):
    """The checker itself: each import form is found and resolved (so the test can fail)."""
    path = PKG.parent.joinpath(*src_module.split(".")).with_suffix(".py")
    found = [m for _, m in imported(path, source)]
    assert expect in found
    assert not _may_import(_layer(src_module), _layer(expect))


def test_no_import_cycle():
    """No module reaches itself through imports, lazy ones included: the piece two modules
    share goes to a third that both import (``eval.result``, ``stylize.cameras``)."""
    graph = import_graph()
    cycle = find_cycle(graph)
    steps = [f"{a}:{graph[a][b]} imports {b}" for a, b in zip(cycle, cycle[1:])]
    assert not cycle, "import cycle " + " -> ".join(cycle) + ":\n" + "\n".join(steps)


@pytest.mark.parametrize("graph,cycle", [
    ({"a": {"b": 1}, "b": {"c": 1}, "c": {}}, []),
    ({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}, ["a", "b", "c", "a"]),
    ({"a": {"b": 1}, "b": {"b": 1}}, ["b", "b"]),
    ({"x": {"a": 1}, "a": {"b": 1}, "b": {"a": 1}}, ["a", "b", "a"]),
])
def test_find_cycle(graph, cycle):
    assert find_cycle(graph) == cycle


@pytest.mark.parametrize("source,src_module,edges", [
    ("def f():\n    from reidcli.eval.report import Outputs", "reidcli.eval.api", {"reidcli.eval.report"}),
    ("from reidcli.eval import protocols as P", "reidcli.eval.api", {"reidcli.eval.protocols"}),
    ("from reidcli.eval import protocols, evaluate", "reidcli.eval.api", {"reidcli.eval", "reidcli.eval.protocols"}),
    ("from . import cameras", "reidcli.stylize.fit", {"reidcli.stylize.cameras"}),
    ("importlib.import_module('reidcli.stylize.trainer')", "reidcli.train.x", {"reidcli.stylize.trainer"}),
])
def test_graph_edges_of_each_import_form(source, src_module, edges):
    """``from pkg import module`` is an edge to the module; a name that is no module, to ``pkg``."""
    path = PKG.parent.joinpath(*src_module.split(".")).with_suffix(".py")
    found = set()
    for _, target, subs, whole in _imports(path, source):
        found |= set(subs) | ({target} if whole else set())
    assert found == edges

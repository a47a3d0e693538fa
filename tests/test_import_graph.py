"""The package's import graph has no cycles, and the entry points stay light to import.

The graph is built from the source (AST), not by importing: one node per module of
``layerscope``; an edge for every ``import``/``from ... import`` of another module of the
package, at module level or inside a function (a function-level import is still a dependency;
deferring it only hides the cycle). Relative imports are resolved; ``from pkg import name`` is an
edge to ``pkg.name`` when that is a module, else to ``pkg``. Imports under
``if TYPE_CHECKING:`` are not edges (they never run). A package's ``__init__`` importing its own
submodules is an ordinary edge; a submodule is not taken to import its parent package (Python runs
the parent's ``__init__`` first, but that is an ordering, not a dependency of the submodule).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "layerscope"

#: Edges known to close a cycle on this branch, each owned by another change: the lead empties
#: this list at merge as those changes land. Every entry must still exist (the test says when
#: one can go), and no other edge may close a cycle.
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import node, at any depth, except those under ``if TYPE_CHECKING:``."""
    out: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for sub in child.orelse:
                    visit_stmt(sub)
                continue
            visit_stmt(child)

    def visit_stmt(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        visit(node)

    visit(tree)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = all_modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        package = mod if is_pkg else mod.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base_parts = package.split(".")
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for t in targets:
                while t and t not in mods and "." in t:  # import a.b.c where c is a name: a.b
                    t = t.rpartition(".")[0]
                if t in mods and t != mod:
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (each holds a cycle)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    names = sorted(graph)
    index = {n: i for i, n in enumerate(names)}
    rows = [index[a] for a in names for b in graph[a]]
    cols = [index[b] for a in names for b in graph[a]]
    adj = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(names), len(names)))
    _, labels = connected_components(adj, directed=True, connection="strong")
    comps: dict[int, list[str]] = {}
    for n, lab in zip(names, labels):
        comps.setdefault(int(lab), []).append(n)
    return sorted(c for c in comps.values() if len(c) > 1)


def test_graph_builder_sees_relative_and_function_level_imports() -> None:
    g = import_graph()
    # module level, relative: report.builder -> report._html
    assert "layerscope.report._html" in g["layerscope.report.builder"]
    # function level (inside load_data_cli): cli._app -> data
    assert "layerscope.data" in g["layerscope.cli._app"]
    # "from . import name" where name is a module: an edge to that module, not to the package
    assert "layerscope.report" not in g["layerscope.report.builder"]
    # TYPE_CHECKING imports are not edges
    assert "layerscope.transfer.analysis" not in g["layerscope.transfer.plots"]


def test_cycle_finder_finds_a_planted_cycle() -> None:
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(g) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    g = import_graph()
    for a, b in KNOWN_CYCLE_EDGES:
        assert b in g.get(a, set()), f"{a} -> {b} is gone: remove it from KNOWN_CYCLE_EDGES"
        g[a].discard(b)
    found = cycles(g)
    assert found == [], f"import cycles: {found}"
    for a, b in KNOWN_CYCLE_EDGES:  # each known edge still closes a cycle (else it may go too)
        g2 = {k: set(v) for k, v in g.items()}
        g2[a].add(b)
        assert cycles(g2), f"{a} -> {b} no longer closes a cycle: remove it from KNOWN_CYCLE_EDGES"


#: modules that may not import heavy libraries at module level (``layerscope --help`` and
#: ``import layerscope`` must stay fast): the CLI modules and the package's ``__init__``.
HEAVY = ("torch", "numpy", "matplotlib", "sklearn", "scipy", "openTSNE", "umap", "librosa", "PIL")
#: CLI modules of other changes that still import a heavy library at module level; the lead
#: moves these imports into the command bodies at merge and empties the set.
KNOWN_HEAVY_CLI: set[str] = set()


def _top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_cli_modules_import_no_heavy_library_at_module_level() -> None:
    offenders = {}
    for mod, path in all_modules().items():
        if mod.startswith("layerscope.cli") or mod == "layerscope":
            heavy = _top_level_imports(path) & set(HEAVY)
            if heavy and mod not in KNOWN_HEAVY_CLI:
                offenders[mod] = sorted(heavy)
    assert offenders == {}, offenders
    for mod in KNOWN_HEAVY_CLI:
        assert _top_level_imports(all_modules()[mod]) & set(HEAVY), f"{mod} is light now: remove it from KNOWN_HEAVY_CLI"


def test_import_layerscope_is_light_and_exports_resolve() -> None:
    code = (
        "import sys, layerscope\n"
        "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules, sorted(sys.modules)\n"
        "print(len(layerscope.__all__))\n"
        "missing = [n for n in layerscope.__all__ if getattr(layerscope, n, None) is None]\n"
        "assert not missing, missing\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.strip()) >= 60


def test_unknown_top_level_name_is_an_attribute_error() -> None:
    import layerscope

    with pytest.raises(AttributeError, match="no attribute 'not_an_analysis'"):
        getattr(layerscope, "not_an_analysis")


def test_an_export_named_like_its_module_stays_the_export() -> None:
    """``layerscope.capture`` is the context manager even after the submodule of that name is
    imported (the import system sets the package attribute to the module)."""
    code = (
        "import layerscope as ls, inspect\n"
        "import layerscope.capture\n"
        "from layerscope.capture import Activations\n"
        "assert not inspect.ismodule(ls.capture), ls.capture\n"
        "from layerscope import capture\n"
        "assert capture is ls.capture and capture.__module__ == 'layerscope.capture'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]

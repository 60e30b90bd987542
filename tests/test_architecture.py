"""The package's shape: no import loop among cnnfast's modules, no module over 700 lines,
and one door to the compiled kernels.

The import graph is read from the source with ``ast``, not by importing: every
``import`` and ``from ... import`` counts, relative ones and the ones inside functions
included (a loop hidden in a function is still a loop: each module then needs the other
to be importable first). ``from pkg import name`` is an edge to ``pkg.name`` when that
is a module, else to ``pkg``. The implicit import of a parent package when a submodule
is imported is not an edge (every submodule would otherwise loop with its package).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cnnfast"
MAX_LINES = 700


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package __init__), for every module of cnnfast."""
    mods: dict[str, tuple[Path, bool]] = {}
    for path in sorted(PACKAGE.rglob("*.py")) + sorted(PACKAGE.rglob("*.pyx")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        mods.setdefault(".".join(parts), (path, is_pkg))
    return mods


def import_graph() -> dict[str, set[str]]:
    """Module -> the cnnfast modules it imports anywhere in its source (.py files)."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, (path, is_pkg) in mods.items():
        if path.suffix != ".py":
            continue
        package = name if is_pkg else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    deps.add(sub if sub in mods else module)
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import loop as [a, b, ..., a], or None when the graph is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_sees_imports_inside_functions_and_relative_ones():
    graph = import_graph()
    # cli imports the bench package lazily, inside main()
    assert "cnnfast.bench" in graph["cnnfast.cli"]
    # relative imports between the bench modules
    assert "cnnfast.bench.workloads" in graph["cnnfast.bench.cases"]
    assert "cnnfast.tutorial" in graph["cnnfast.bench.cases"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_loop():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import loop: " + " -> ".join(cycle)


def test_nothing_under_bench_imports_cli():
    graph = import_graph()
    for name, deps in graph.items():
        if name == "cnnfast.bench" or name.startswith("cnnfast.bench."):
            assert "cnnfast.cli" not in deps, name


def _line_counts() -> dict[str, int]:
    root = PACKAGE.parent
    return {path.relative_to(root).as_posix(): len(path.read_text(encoding="utf-8")
                                                   .splitlines())
            for path in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_over_the_line_limit():
    long = {path: n for path, n in _line_counts().items() if n > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


# The compiled kernels have one door: the functional API (and the run-time
# configuration, which reads and sets threads and SIMD levels).
KERNEL_IMPORTERS = ("cnnfast.ops", "cnnfast._config")


def test_only_the_functional_api_imports_the_kernels():
    graph = import_graph()
    importers = sorted(name for name, deps in graph.items() if "cnnfast._kernels" in deps)
    assert importers, "the graph should see the functional API import _kernels"
    for name in importers:
        assert name.startswith(KERNEL_IMPORTERS), f"{name} imports cnnfast._kernels"

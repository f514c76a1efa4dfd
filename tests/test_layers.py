"""The import graph of parsl_quantum/ and miniapps/ reads top to bottom: no module imports from
a higher layer, and no import cycle.

The layer order is the one of the architecture page (``ARCHITECTURE.md``, section "Layer
order", beside the repository): from the bottom, ``cutting``, ``circuits`` < ``backends`` <
``executors``, ``providers`` < ``planner``, ``reliability`` < ``configs``, ``remote`` <
``workflow``, ``primitives`` < ``miniapps``. It is written here as data so the test does not
depend on that page's wording. Every import counts, also one inside a function (a lazy import
still makes the importer depend on the imported layer).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("parsl_quantum", "miniapps")

#: Layers from the bottom; a module may import from its own layer and those below.
LAYERS: tuple[frozenset[str], ...] = (
    # pure math and pure Qiskit circuit builders, no Parsl; parent_watch and lean_start are
    # stdlib-only process wrappers (parent_watch imports lean_start, and nothing else of ours)
    frozenset({"cutting", "circuits", "parent_watch", "lean_start"}),
    frozenset({"backends"}),
    frozenset({"executors", "providers"}),
    frozenset({"planner", "reliability"}),
    frozenset({"configs", "remote"}),
    # the package root only re-exports the primitives (lazily)
    frozenset({"workflow", "primitives", ""}),
    frozenset({"miniapps"}),
)


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of a module of ours (``parsl_quantum.x...`` or ``miniapps``)."""
    parts = module.split(".")
    name = "miniapps" if parts[0] == "miniapps" else (parts[1] if len(parts) > 1 else "")
    for index, members in enumerate(LAYERS):
        if name in members:
            return index
    raise AssertionError(f"{module}: part {name!r} has no layer; add it to LAYERS")


def modules() -> dict[str, Path]:
    """Every module of our packages, by dotted name (a package by its ``__init__``)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(module: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """The modules of ours that ``module`` imports, with the line of each import."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pkg import name``: the submodule when ``name`` is one, else ``pkg``
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            # the innermost module of ours that the dotted name lies in
            parts = target.split(".")
            while parts and ".".join(parts) not in known:
                parts.pop()
            if parts:
                yield ".".join(parts), node.lineno


def import_graph() -> nx.DiGraph:
    """Modules as nodes; an edge for every import, carrying the line of its first import."""
    found = modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(found)
    for module, path in found.items():
        for target, line in imports(module, path, set(found)):
            if target != module and not graph.has_edge(module, target):
                graph.add_edge(module, target, line=line)
    return graph


def test_the_graph_sees_our_modules_and_imports() -> None:
    graph = import_graph()
    assert "parsl_quantum.cutting.reconstruct" in graph and "miniapps._common" in graph
    assert graph.has_edge("parsl_quantum.workflow.cut_and_run", "parsl_quantum.cutting.reconstruct")
    assert graph.has_edge("miniapps.distributed_sim.runner", "miniapps._common")
    assert layer_of("parsl_quantum.cutting.problem") < layer_of("parsl_quantum.backends")
    assert layer_of("miniapps.qml") == len(LAYERS) - 1
    with pytest.raises(AssertionError, match="has no layer"):
        layer_of("parsl_quantum.somewhere_new")


def test_no_module_imports_from_a_higher_layer() -> None:
    graph = import_graph()
    upward = [
        f"{source} (line {data['line']}) imports {target}"
        for source, target, data in graph.edges(data=True)
        if layer_of(target) > layer_of(source)
    ]
    assert upward == [], "\n".join(upward)


def test_no_import_cycle() -> None:
    graph = import_graph()
    cycles = list(nx.simple_cycles(graph))
    assert cycles == [], "\n".join(" -> ".join([*c, c[0]]) for c in cycles[:10])

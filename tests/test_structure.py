"""The package's import graph: no cycle, and every import goes down (or across) the layers below."""

from __future__ import annotations

import ast

from conftest import REPO

LAYERS = [
    ("storage", "models", "graphs"),
    ("train", "archives", "splits", "cache"),
    ("data", "profiles"),
    ("experiment", "unlearn", "metrics"),
    ("natmu", "baselines", "stats", "artefacts"),
    ("jobs", "plots", "cost"),
    ("runs", "report", "claims"),
    ("search", "plan", "scrub", "__init__"),
]
"""``nmu/``'s modules, bottom to top: one cached artefact and its key (``artefacts``) sits under the
jobs that compute artefacts, which sit under the tables of runs (``runs``)."""


def imports() -> dict[str, set[str]]:
    """``{module: nmu modules it imports}``, lazy imports inside functions included."""
    graph = {}
    for path in sorted((REPO / "nmu").glob("*.py")):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "nmu":
                parts = node.module.split(".")
                found |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name.split(".")[1] if "." in a.name else "__init__" for a in node.names
                          if a.name.split(".")[0] == "nmu"}
        graph[path.stem] = found - {path.stem}
    return graph


def test_every_module_has_a_layer():
    placed = [m for layer in LAYERS for m in layer]
    assert sorted(placed) == sorted(imports()) and len(placed) == len(set(placed))


def test_imports_go_down_the_layers_and_never_in_a_circle():
    layer = {m: i for i, modules in enumerate(LAYERS) for m in modules}
    graph = imports()
    upward = [f"{a} -> {b}" for a, targets in graph.items() for b in targets if layer[b] > layer[a]]
    assert upward == []

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, "import cycle: " + " -> ".join((*path, module))
        for target in graph[module]:
            visit(target, (*path, module))

    for module in graph:
        visit(module, ())

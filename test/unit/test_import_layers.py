"""The package's import graph (static, every ``import`` statement, also those inside functions): no import
cycles between modules, no module imports a layer above its own (docs/architecture.md's layer table), and no
two sub-packages of one layer import each other (a two-way dependency the layer rule alone cannot see)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

import pytest

from speechser.models.registry import MODELS

PKG = Path(__file__).resolve().parents[2] / "speechser"

#: Layer rank of each top-level sub-package or module of speechser (higher imports lower, never the reverse).
LAYERS: Dict[str, int] = {
    "bin": 7,
    # The package root holds __version__ and re-exports the public Python API (Speech2TextEmotion) lazily
    # (a module __getattr__, PEP 562): importing speechser loads nothing of the layers above it.
    "__init__": 7,
    "filter": 6, "knn": 6, "pack": 6, "combine": 6,
    "tasks": 5,
    "train": 4,
    "models": 3,
    "nets": 2, "losses": 2, "decode": 2, "metrics": 2,
    "data": 1, "features": 1, "text": 1,
    "io": 0, "config": 0, "log": 0, "job_runner": 0,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph() -> Dict[str, Set[str]]:
    """Module -> the speechser modules it imports (``from speechser.x import y`` counts ``speechser.x.y`` when
    that is a module, else ``speechser.x``)."""
    files = {module_name(p): p for p in PKG.rglob("*.py")}
    graph: Dict[str, Set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: List[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                           for a in node.names]
            for t in targets:
                if t in files and t != mod and t != "speechser":
                    graph[mod].add(t)
    return graph


def top_of(mod: str) -> str:
    """The sub-package (or top-level module) ``mod`` belongs to: ``speechser.metrics.report`` -> ``metrics``."""
    return mod.split(".")[1] if "." in mod else "__init__"


def layer_of(mod: str) -> int:
    top = top_of(mod)
    if top not in LAYERS:
        raise AssertionError(f"{mod}: sub-package '{top}' has no layer in this test's table (add it, as in "
                             "ARCHITECTURE.md)")
    return LAYERS[top]


def find_cycle(graph: Dict[str, Set[str]]) -> List[str]:
    state: Dict[str, int] = {}
    stack: List[str] = []

    def visit(m: str) -> List[str]:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return []

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return []


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = sorted(f"{m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)})"
                    for m, targets in import_graph().items() for t in targets if layer_of(t) > layer_of(m))
    assert not upward, "\n".join(upward)


def package_graph(graph: Dict[str, Set[str]]) -> Dict[str, Set[str]]:
    """The module graph collapsed to sub-packages: ``a -> b`` when a module of ``a`` imports one of ``b``."""
    out: Dict[str, Set[str]] = {}
    for mod, targets in graph.items():
        out.setdefault(top_of(mod), set()).update(top_of(t) for t in targets if top_of(t) != top_of(mod))
    return out


def two_way_pairs(graph: Dict[str, Set[str]]) -> List[str]:
    """Sub-packages of one layer that import each other, each pair once (``a <-> b``)."""
    packages = package_graph(graph)
    return sorted(f"{a} <-> {b}" for a, targets in packages.items() for b in targets
                  if a < b and a in packages.get(b, set()))


def test_no_two_packages_of_a_layer_import_each_other() -> None:
    pairs = two_way_pairs(import_graph())
    assert not pairs, "sub-packages that import each other (move the shared part down a layer): " + ", ".join(pairs)


def test_the_checks_see_a_cycle_and_an_upward_import() -> None:
    """The walkers themselves: a planted cycle is found, and a data module importing train is upward."""
    graph = {"speechser.a.x": {"speechser.a.y"}, "speechser.a.y": {"speechser.a.x"}}
    assert find_cycle(graph) == ["speechser.a.x", "speechser.a.y", "speechser.a.x"]
    # no module cycle, but metrics and decode (one layer) depending on each other through different modules
    planted = {"speechser.metrics.html_report": {"speechser.decode.ensemble"},
               "speechser.decode.ensemble": {"speechser.metrics.classification"},
               "speechser.metrics.classification": set()}
    assert not find_cycle(planted) and two_way_pairs(planted) == ["decode <-> metrics"]
    assert layer_of("speechser.data.loader") < layer_of("speechser.train.distributed")
    assert "speechser.models.registry" in import_graph()["speechser.tasks.ser"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_registered_model_lives_in_the_file_named_after_it(name: str) -> None:
    cls, conf_cls = MODELS[name]
    assert cls.__module__ == f"speechser.models.{name}"
    assert conf_cls.__module__ == f"speechser.models.{name}"


def test_every_model_file_is_registered() -> None:
    """``models/`` holds the registered models plus the shared contracts (abs_model), the table
    (registry), the ASR-encoder branch that fusion models share (asr_branch) and the metadata models' shared
    tasks and schedule (metadata_ser_mixin)."""
    helpers = {"__init__", "abs_model", "registry", "asr_branch", "metadata_ser_mixin"}
    files = {p.stem for p in (PKG / "models").glob("*.py")} - helpers
    assert files == set(MODELS)


def test_the_documented_layer_table_is_the_one_checked_here() -> None:
    """docs/architecture.md's table names every sub-package at the layer this test enforces."""
    import re

    doc = (PKG.parent / "docs/architecture.md").read_text(encoding="utf-8")
    documented: Dict[str, int] = {}
    for rank, modules in re.findall(r"^\| (\d) [a-z]+ \| ([^|]+) \|", doc, re.M):
        for name in re.findall(r"`([a-z_]+)`", modules):
            documented[name] = int(rank)
    assert documented == LAYERS

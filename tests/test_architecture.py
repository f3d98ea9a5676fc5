"""The package's layers: every engine subpackage imports only from its own layer or below, the package
graph has no cycles, the engine never touches the CLI (Typer, rich, print), and each subpackage
imports cleanly on its own."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

ENGINE = REPO / "obte_cli" / "engine"
# bottom up; packages on one line are one layer (they may import each other, but not in a circle)
LAYERS = [
    ["core"],
    ["bio"],
    ["tokenizers"],
    ["model"],
    ["pretraining", "finetuning", "embedding"],
    ["affinity", "contacts", "bench"],
]
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at any depth (function-level imports count too)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _engine_package(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if parts[:2] == ["obte_cli", "engine"] and len(parts) > 2 else None


def _package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {package: set() for package in RANK}
    for path in ENGINE.rglob("*.py"):
        own = path.relative_to(ENGINE).parts[0]
        if own not in RANK:
            continue
        for module in _imports(path):
            other = _engine_package(module)
            if other and other != own:
                graph[own].add(other)
    return graph


def test_every_engine_subpackage_has_a_layer():
    packages = {p.name for p in ENGINE.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(RANK)


def test_no_engine_module_imports_from_a_higher_layer():
    upward = []
    for path in sorted(ENGINE.rglob("*.py")):
        own = path.relative_to(ENGINE).parts[0]
        for module in _imports(path):
            if module.startswith("obte_cli.commands") or module == "obte_cli.app":
                upward.append(f"{path.relative_to(REPO)} imports {module}")
            other = _engine_package(module)
            if other in RANK and own in RANK and RANK[other] > RANK[own]:
                upward.append(f"{path.relative_to(REPO)} ({own}) imports {module} ({other})")
    assert not upward, "\n".join(upward)


def test_package_graph_has_no_cycles():
    graph = _package_graph()
    visiting, done = set(), set()

    def visit(node: str, trail: list[str]) -> None:
        if node in done:
            return
        assert node not in visiting, "import cycle: " + " → ".join([*trail, node])
        visiting.add(node)
        for nxt in sorted(graph[node]):
            visit(nxt, [*trail, node])
        visiting.discard(node)
        done.add(node)

    for package in graph:
        visit(package, [])


def test_the_engine_never_talks_to_the_user():
    offenders = []
    for path in sorted(ENGINE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for module in _imports(path):
            if module.split(".")[0] in ("typer", "rich", "click"):
                offenders.append(f"{path.relative_to(REPO)} imports {module}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} calls print()")
    assert not offenders, "\n".join(offenders)


def test_the_layer_checks_can_fail(tmp_path):
    """The import scanner sees function-level imports (the way an upward import usually sneaks in)."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from obte_cli.engine.affinity.cv import x\n")
    assert _engine_package(_imports(module)[0]) == "affinity"


@pytest.mark.slow
def test_each_subpackage_imports_on_its_own():
    for package in RANK:
        result = subprocess.run(
            [sys.executable, "-c", f"import obte_cli.engine.{package}"], capture_output=True, text=True, cwd=REPO
        )
        assert result.returncode == 0, f"obte_cli.engine.{package}: {result.stderr[-2000:]}"
    # and every module in isolation, in one process per layer to keep this quick
    for layer in LAYERS:
        modules = sorted(
            ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            for package in layer
            for p in (ENGINE / package).rglob("*.py")
        )
        code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
        result = subprocess.run([sys.executable, "-c", code, *modules], capture_output=True, text=True, cwd=REPO)
        assert result.returncode == 0, result.stderr[-2000:]

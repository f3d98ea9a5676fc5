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


def _modules(root: Path) -> dict[str, Path]:
    """Every module under ``root`` (a package directory), by dotted name (a package by its own name)."""
    return {
        ".".join(p.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in sorted(root.rglob("*.py"))
    }


def _module_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Which of ``modules`` each one imports, at any depth: ``from a.b import c`` is a.b.c where that is a
    module, else a.b; imports of anything else are left out."""
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    if submodule in modules:
                        found.add(submodule)
                    elif node.module in modules:
                        found.add(node.module)
        graph[name] = found - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (first node repeated at the end) per group of nodes that reach each other (Tarjan's
    strongly connected components of more than one node)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    cycles = []
    for group in groups:  # the shortest way from the group's first node back to itself, inside the group
        start = min(group)
        trails = [[start, nxt] for nxt in sorted(graph[start] & group)]
        while not any(trail[-1] == start for trail in trails):
            trails = [[*t, nxt] for t in trails for nxt in sorted(graph[t[-1]] & group) if nxt not in t[1:]]
        cycles.append(next(trail for trail in trails if trail[-1] == start))
    return cycles


def test_no_two_modules_import_each_other():
    """Not even through other modules, and not inside one package: a cycle makes the import order matter
    (whichever module is imported first sees the other half-initialised), and says the two do one job."""
    cycles = _cycles(_module_graph(_modules(REPO / "obte_cli")))
    assert not cycles, "\n".join("import cycle: " + " → ".join(cycle) for cycle in cycles)


def test_the_module_cycle_check_can_fail(tmp_path):
    """Function-level imports and ``from package import module`` count, through a third module too."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("import os\nfrom pkg.b import x\n")
    (package / "b.py").write_text("def f():\n    from pkg import c\n")
    (package / "c.py").write_text("from pkg.a import y\n")
    (package / "d.py").write_text("from pkg.a import z\n")
    graph = _module_graph(_modules(package))
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.c"}, "pkg.c": {"pkg.a"}, "pkg.d": {"pkg.a"}}
    assert _cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]
    assert _cycles({**graph, "pkg.c": set()}) == []


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


PREDICTION_MODULES = [  # what runs a model to predict: none of it may need the training package
    "obte_cli.engine.model.inference",
    "obte_cli.engine.embedding.embed",
    "obte_cli.engine.embedding.scoring",
    "obte_cli.engine.embedding.predict",
    "obte_cli.engine.affinity.ensemble",
    "obte_cli.engine.contacts.predictor",
    "obte_cli.engine.contacts.prediction",
    "obte_cli.engine.bio.complex_inputs",
]


def _reachable(graph: dict[str, set[str]], start: str) -> dict[str, str]:
    """Every module ``start`` imports, directly or through others: module → the module that imports it."""
    seen, todo = {start: ""}, [start]
    while todo:
        node = todo.pop()
        for nxt in sorted(graph[node]):
            if nxt not in seen:
                seen[nxt] = node
                todo.append(nxt)
    return seen


def test_prediction_never_imports_the_training_package():
    graph = _module_graph(_modules(REPO / "obte_cli"))
    for start in PREDICTION_MODULES:
        reached = _reachable(graph, start)
        training = sorted(m for m in reached if m.startswith("obte_cli.engine.finetuning"))
        if training:
            chain, node = [training[0]], training[0]
            while reached[node]:
                node = reached[node]
                chain.append(node)
            raise AssertionError(f"{start} imports the training package: {' → '.join(reversed(chain))}")


COMMAND_BODY_LIMIT = 62  # lines: a command parses, validates, calls one engine function and writes


def _function_bodies(path: Path) -> list[tuple[str, int]]:
    """(name, lines of the body after its docstring) of every function in ``path``."""
    lengths = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            docstring = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)
            first = body[1] if docstring and len(body) > 1 else body[0]
            lengths.append((node.name, node.end_lineno - first.lineno + 1))
    return lengths


def test_commands_are_thin():
    """The protocols live in the engine, where tests and scripts call them without the CLI."""
    long = [
        f"{path.relative_to(REPO)}:{name} has {lines} lines"
        for path in sorted((REPO / "obte_cli" / "commands").glob("*.py"))
        for name, lines in _function_bodies(path)
        if lines > COMMAND_BODY_LIMIT
    ]
    assert not long, "\n".join(long)


def test_the_thin_command_check_can_fail(tmp_path):
    path = tmp_path / "cmd.py"
    path.write_text('def f():\n    """Doc."""\n' + "    x = 1\n" * 70 + "\n\ndef g():\n    return 1\n")
    assert _function_bodies(path) == [("f", 70), ("g", 1)]

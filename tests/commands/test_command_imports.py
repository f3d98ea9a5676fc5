"""Commands are thin and side by side: a command imports the engine and the shared CLI helpers
(``commands/common.py``, ``commands/options.py``, ``commands/progress.py``, ``commands/help_layout.py``), never
another command; a script imports the engine only."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

# the CLI helpers every command may use (none of them is a command: none is registered in obte_cli/app.py)
SHARED = {
    "obte_cli.commands.common",
    "obte_cli.commands.options",
    "obte_cli.commands.progress",
    "obte_cli.commands.help_layout",
}


def _cli_imports(path: Path) -> list[str]:
    """The ``obte_cli.commands`` / ``obte_cli.app`` modules ``path`` imports, at any depth (relative imports
    inside ``obte_cli/commands`` resolved; ``from obte_cli.commands import x`` counts as ``...commands.x``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(["obte_cli", "commands"][: 3 - node.level] + ([base] if base else []))
            modules = [f"{base}.{alias.name}" if base == "obte_cli.commands" else base for alias in node.names]
        else:
            continue
        found += [m for m in modules if m == "obte_cli.app" or m.startswith("obte_cli.commands")]
    return sorted(set(found))


def test_no_command_imports_another_command():
    offenders = [
        f"{path.relative_to(REPO)} imports {module}"
        for path in sorted((REPO / "obte_cli" / "commands").glob("*.py"))
        for module in _cli_imports(path)
        if module not in SHARED
    ]
    assert not offenders, "\n".join(offenders)


def test_no_script_imports_the_cli():
    offenders = [
        f"{path.relative_to(REPO)} imports {module}"
        for path in sorted((REPO / "scripts").glob("*.py"))
        for module in _cli_imports(path)
    ]
    assert not offenders, "\n".join(offenders)


def test_the_import_scanner_sees_every_spelling(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "import obte_cli.commands.bench\n"
        "from obte_cli.commands import finetune, options\n"
        "def f():\n    from obte_cli.commands.scan_jaspar import RATE\n"
        "from .affinity import COLUMNS\n"
        "from ..app import app\n"
    )
    assert sorted(_cli_imports(module)) == [
        "obte_cli.app",
        "obte_cli.commands.affinity",
        "obte_cli.commands.bench",
        "obte_cli.commands.finetune",
        "obte_cli.commands.options",
        "obte_cli.commands.scan_jaspar",
    ]

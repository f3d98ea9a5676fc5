"""`--help` of every command (#33 §4): every option has help text; a default of 0 that means "choose for me" is
shown as what it means, not as 0; help reads at 80 columns (click's plain layout: no line wider than the terminal,
no option name or path cut with "…") and at wide terminals (rich's layout, each paragraph reflowed rather than
broken where the source lines break); no help text is swallowed as rich markup."""

from __future__ import annotations

import inspect
import re

import pytest
import typer
from typer.testing import CliRunner

from obte_cli.app import app
from obte_cli.commands.help_layout import reflowed


def _commands(command=None, path=()):
    command = command or typer.main.get_command(app)
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = [path for path, _ in _commands()]
OPTIONS = [
    (path, param)
    for path, command in _commands()
    for param in command.params
    if param.param_type_name == "option" and not param.hidden
]


def _help(path, columns: int) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(columns), "TERMINAL_WIDTH": None})
    assert result.exit_code == 0, (path, result.output)
    assert "Traceback" not in result.output
    return result.stdout


def test_the_walk_finds_every_command():
    assert len(COMMANDS) > 30 and ("finetune", "classify") in COMMANDS and ("bench", "embed") in COMMANDS


def test_every_option_has_help_text():
    """Six options of `finetune classify` and `finetune residue` had none."""
    missing = [f"{' '.join(path)} {param.opts[0]}" for path, param in OPTIONS if not (param.help or "").strip()]
    assert not missing, missing


def test_a_zero_that_means_auto_is_shown_as_what_it_means():
    """`--window 0` is "the context less 2", `--workers 0` all cores: help said [default: 0]."""
    shown_as_zero = [
        f"{' '.join(path)} {param.opts[0]}"
        for path, param in OPTIONS
        if param.default == 0
        and not param.is_flag
        and re.search(r"\((0|default): ", param.help or "")
        and not isinstance(param.show_default, str)
    ]
    assert not shown_as_zero, shown_as_zero
    text = " ".join(_help(("predict",), 80).split())
    assert "[default: (auto)" in text and "[default: (half a window)" in text and "[default: 0]" not in text


def test_no_help_text_is_taken_for_rich_markup():
    """`bench throughput --lengths` said "[default: a seeded sample ...]", which rich's layout swallowed whole."""
    markup = [
        f"{' '.join(path)} {param.opts[0]}: {found}"
        for path, param in OPTIONS
        for found in re.findall(r"\[[A-Za-z/#@][^\]]*\]", param.help or "")
    ]
    markup += [
        f"{' '.join(path)}: {found}"
        for path, command in _commands()
        for found in re.findall(r"\[[A-Za-z/#@][^\]]*\]", command.help or "")
        if found not in ("[bold]", "[/bold]")
    ]
    assert not markup, markup
    assert "share/bench/pretraining-lengths.tsv" in " ".join(_help(("bench", "throughput"), 160).split())


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "obte")
def test_help_reads_at_80_columns(path):
    text = _help(path, 80)
    wide = [line for line in text.splitlines() if len(line) > 80]
    assert not wide, wide
    assert "…" not in text, [line for line in text.splitlines() if "…" in line]
    assert "[bold]" not in text and "╭" not in text  # the plain layout, its markup taken out
    command = dict(_commands())[path]
    for param in command.params:
        if param.param_type_name == "option" and not param.hidden:
            assert param.opts[-1] in text, param.opts  # every option name whole


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "obte")
def test_help_reads_on_a_wide_terminal(path):
    """Rich's layout at 250 columns: no cut names, and a paragraph that fits a line is on one line, not broken
    where the docstring's source lines break."""
    text = _help(path, 250)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 250
    lines = [" ".join(line.strip(" │").split()) for line in text.splitlines()]
    command = dict(_commands())[path]
    help_text = (command.help or "").replace("[bold]", "").replace("[/bold]", "")
    for paragraph in reflowed(inspect.cleandoc(help_text)).split("\n\n"):
        if len(paragraph) < 230 and not paragraph.startswith("\b"):
            assert any(" ".join(paragraph.split()) in line for line in lines), paragraph


def test_reflowed_joins_the_lines_of_a_paragraph_only():
    text = "One line\nand the next.\n\nExample: obte x\n  -o y"
    assert reflowed(text) == "One line and the next.\n\nExample: obte x -o y"
    assert reflowed("\b\nkept\nas is") == "\b\nkept\nas is"

"""#33 §2: one meaning per option letter in every command (commands/options.SHORT_OPTIONS, the README's table),
and the letters retired from a command read as their long options for one release, with a warning."""

from __future__ import annotations

import re

import pytest
import typer
from conftest import REPO, obte

from obte_cli.app import app
from obte_cli.commands.common import _read_old_short_options
from obte_cli.commands.options import SHORT_OPTIONS


def _commands(group=None, path=()):
    """(path, command) of the app itself and of every group and command in it."""
    group = group or typer.main.get_command(app)
    yield path, group
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


COMMANDS = list(_commands())


def _short_options(command) -> dict[str, str]:
    """{letter: its long option} of ``command`` (``-h`` for the help option click adds)."""
    found = {"-h": "--help"}
    for param in command.params:
        if param.param_type_name != "option":
            continue
        longs = [name for name in param.opts if name.startswith("--")]
        for name in param.opts + param.secondary_opts:
            if not name.startswith("--"):
                found[name] = longs[0] if longs else name
    return found


def _long_options(command) -> set[str]:
    return {name for param in command.params for name in param.opts if name.startswith("--")}


def _renamed(command) -> dict[str, str]:
    return getattr(command.callback, "old_short_options", None) or {}


def test_every_short_option_means_what_the_table_says():
    wrong = [
        (" ".join(path) or "obte", letter, long, SHORT_OPTIONS.get(letter))
        for path, command in COMMANDS
        for letter, long in _short_options(command).items()
        if SHORT_OPTIONS.get(letter) != long
    ]
    assert not wrong, wrong


def test_the_commands_use_the_table():
    """The table is not larger than the commands: each letter is used somewhere."""
    used = {letter for _, command in COMMANDS for letter in _short_options(command)}
    assert used == set(SHORT_OPTIONS), set(SHORT_OPTIONS) ^ used


def test_the_readme_has_the_table():
    readme = (REPO / "README.md").read_text()
    rows = dict(re.findall(r"^ *\| `(-[a-z])` \| `(--[a-z-]+)` \|", readme, flags=re.MULTILINE))
    assert rows == SHORT_OPTIONS


RETIRED = [(path, letter, long) for path, command in COMMANDS for letter, long in _renamed(command).items()]


def test_the_retired_letters_are_the_old_vocabulary():
    assert {(" ".join(path), letter) for path, letter, _ in RETIRED} == {
        ("prep", "-m"),
        ("score", "-t"),
        ("score", "-s"),
        ("embed sequences", "-t"),
        ("finetune classify", "-t"),
        ("finetune residue", "-t"),
        ("pretrain", "-p"),
        ("model init", "-p"),
        ("scan-jaspar", "-p"),
        ("contacts predict", "-s"),
        ("contacts predict", "-p"),
        ("contacts predict", "-n"),
        ("bench tasks", "-s"),
        ("bench variants", "-s"),
    }


@pytest.mark.parametrize("path, letter, long", RETIRED, ids=lambda v: " ".join(v) if isinstance(v, tuple) else v)
def test_a_retired_letter_does_not_collide_in_its_command(path, letter, long):
    """It names an option of the command, the command has no such letter any more, and the letter's new meaning
    is not an option of the command (else the old spelling would silently mean something else: `tokenize
    encode -m` is the model now, so its old -m is not kept)."""
    command = dict(COMMANDS)[path]
    assert long in _long_options(command)
    assert letter not in _short_options(command)
    assert SHORT_OPTIONS.get(letter) not in _long_options(command)


def test_a_retired_letter_still_works_with_a_warning(tmp_path):
    fasta = tmp_path / "dna.fa"
    fasta.write_text(">d\nACGTACGTAA\n")
    result = obte("prep", fasta, "-m", "RNA", "-o", tmp_path / "corpus")
    assert result.exit_code == 0, result.output
    warning = result.stderr.splitlines()[0]
    assert warning.startswith("warning: `") and "prep -m` is deprecated: write --molecule-type" in warning, warning
    assert result.stdout.splitlines()[1].split("\t")[:2] == ["RNA", "1"]  # read as RNA, as asked


@pytest.mark.parametrize(
    "args, option",
    [
        (["score", "-", "-t", "plasmid"], "--molecule-type"),
        (["score", "-", "-s", "best"], "--strategy"),
        (["embed", "-", "-o", "x.npy", "-tplasmid"], "--molecule-type"),
        (["pretrain", "--tokens", "t", "-o", "o", "-p", "huge"], "--preset"),
        (["model", "init", "-o", "o", "-p", "huge"], "--preset"),
        (["bench", "tasks", "-d", "d", "-o", "o", "-s", "gue2"], "--suite"),
        (["bench", "variants", "--data", "d.csv", "-o", "o", "-s", "best"], "--strategy"),
        (["finetune", "classify", "-t", "plasmid"], "--molecule-type"),
        (["finetune", "residue", "-t", "plasmid"], "--molecule-type"),
        (["contacts", "predict", "-p", "x.fa"], "'--protein' / '--na'"),
    ],
)
def test_a_retired_letter_reaches_its_long_option(args, option):
    """The value given with the old letter is checked as the long option's (here: refused, so no work runs)."""
    result = obte(*args)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 2, result.output
    assert lines[0].startswith("warning: `") and "is deprecated: write" in lines[0]
    assert lines[1].startswith("error: ") and option in lines[1]


def test_reading_old_letters_leaves_values_and_the_end_of_options_alone():
    command = typer.main.get_command(app).commands["score"]
    renamed = {"-t": "--molecule-type", "-s": "--strategy"}
    args = ["x.fa", "-o", "-t", "-t", "DNA", "-sNONE", "--", "-t"]
    assert _read_old_short_options(command, args, renamed, "obte score") == [
        "x.fa", "-o", "-t", "--molecule-type", "DNA", "--strategy=NONE", "--", "-t",
    ]  # fmt: skip

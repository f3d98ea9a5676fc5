"""#31 §6: an invalid option value is a usage error, exit code 2 and one line that names the option, for every
option of every command (found by walking the app), checked before any work. A malformed model directory stays
bad input (exit 1)."""

from __future__ import annotations

import enum
import types
import typing
from pathlib import Path

import pytest
import typer
from conftest import obte

from obte_cli.app import app

# Text options without a checker of their own: files and directories (a missing or unreadable one is bad
# input, exit 1, like any input file), and names looked up in what they name (a tokenizer name or path, a
# task of the data root, a column of --variants, --complement none|revcomp|FILE).
FILES_AND_NAMES = {
    "--out", "--model", "--tokenizer", "--data", "--regions", "--genome", "--protein", "--na", "--structure",
    "--train", "--dev", "--test", "--accessions", "--variants", "--tokens", "--saturation", "--per-residue",
    "--pairs", "--model-gene", "--model-protein", "--lengths", "--labels", "--jaspar", "--init", "--from-cv",
    "--eval-tokens", "--cif-out", "--complexes", "--complement", "--task", "--mutation-col",
}  # fmt: skip

# Malformed values for the text options with a form (each checked by its function in commands/options.py).
BAD_TEXT = {
    "--molecule-type": ["plasmid", ""],
    "--shard": ["3/2", "1/0", "-1/2", "two/4", "0/4/8"],
    "--layers": ["a", ",", "1.5", "9999"],
    "--shapes": ["nope", "w100", "w0", ","],
    "--mutations": ["hello", ",", "A42", "A42G:"],
    "--batch-tokens": ["0", "lots", "-5", "nan", "1e16"],
    "--total-tokens": ["0", "lots", "inf"],
    "--warmup-tokens": ["lots", "-1"],  # 0: the default warm-up
    "--cutoff": ["1e9", "six", ","],
}


@pytest.fixture(autouse=True, scope="module")
def command_tree_built_once():
    """Build the click command tree once for this module's few hundred calls: building it is most of a call."""
    import typer.testing

    built = typer.main.get_command(app)
    with pytest.MonkeyPatch.context() as patch:
        if hasattr(typer.testing, "_get_command"):
            build = typer.testing._get_command
            patch.setattr(
                typer.testing, "_get_command", lambda typer_app: built if typer_app is app else build(typer_app)
            )
        yield


def _commands(group=None, path=()):
    group = group or typer.main.get_command(app)
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def _value_type(annotation):
    """int, float, str, Path, bool or an Enum: the type of one value of an option (``list[X]``, ``X | None``: X)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (types.UnionType, typing.Union, list):
        return _value_type(args[0])
    return annotation


def _checker(param) -> str | None:
    callback = getattr(param.callback, "__wrapped__", param.callback)
    return callback.__qualname__ if callback is not None else None


def bad_values(param) -> list[str] | None:
    """Values that ``param`` must refuse as a usage error; None for a flag or a file (no value is invalid by
    its form)."""
    kind = _value_type(param.type_descriptor.annotation)
    if kind is bool:
        return None
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return ["no-such-choice"]
    if kind is int:
        low, high = param.__dict__.get("min"), param.__dict__.get("max")
        outside = ([] if low is None else [low - 1]) + ([] if high is None else [high + 1])
        return [str(v) for v in outside] + ["x", "1.5"]
    if kind is float:
        return ["nan", "inf", "x"]
    return BAD_TEXT.get(param.opts[0])


OPTIONS = [
    (path, param.opts[0], values)
    for path, command in _commands()
    for param in command.params
    if param.param_type_name == "option" and (values := bad_values(param)) is not None
]


def one_usage_error_line(result, option: str) -> str:
    """The run ended as a usage error: exit code 2, nothing on stdout, and one line on stderr that names
    ``option``, without a traceback."""
    assert result.exit_code == 2, (option, result.exit_code, result.output)
    assert "Traceback" not in result.output and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert option in lines[0], lines[0]
    return lines[0]


def test_the_walk_finds_every_kind_of_option():
    found = {(" ".join(path), option) for path, option, _ in OPTIONS}
    assert len(OPTIONS) > 150
    for expected in [
        ("prep", "--shard"),
        ("prep", "--molecule-type"),
        ("tokenize encode", "--molecule-type"),
        ("score", "--molecule-type"),
        ("embed sequences", "--layers"),
        ("pretrain", "--batch-tokens"),
        ("pretrain", "--total-tokens"),
        ("bench throughput", "--shapes"),
        ("score", "--mutations"),
        ("affinity", "--device"),
        ("scan-jaspar", "--rate"),
    ]:
        assert expected in found, expected


def test_every_text_option_is_checked_or_names_a_file():
    """A text option either has values it refuses here (BAD_TEXT) and a checker in commands/options.py, or
    names a file, directory or name that is looked up (FILES_AND_NAMES): a new option must choose."""
    text_options = [
        param
        for _, command in _commands()
        for param in command.params
        if param.param_type_name == "option" and _value_type(param.type_descriptor.annotation) in (str, Path)
    ]
    unknown = {param.opts[0] for param in text_options} - FILES_AND_NAMES - set(BAD_TEXT)
    assert not unknown, sorted(unknown)
    unchecked = {param.opts[0] for param in text_options if param.opts[0] in BAD_TEXT and _checker(param) is None}
    assert not unchecked, sorted(unchecked)


@pytest.mark.parametrize("command, option, values", OPTIONS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else v)
def test_an_invalid_value_is_a_one_line_usage_error_naming_the_option(command, option, values):
    for value in values:
        one_usage_error_line(obte(*command, f"{option}={value}"), option)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("values")
    (folder / "p.fa").write_text(">p\nMKVLAGHW\n")
    (folder / "n.fa").write_text(">n\nACGTACGTAC\n")
    (folder / "c.tsv").write_text("protein\tnucleic_acid\nMKV\tACGT\n")
    return folder


# Values that are wrong beside another option, or a required input left out: the list and the others.
COMBINATIONS = [
    (["prep", "{fa}", "-o", "{out}", "--min-length", "10", "--max-length", "5"], "--max-length"),
    (["embed", "{fa}", "-o", "{dir}/x.bin"], "--out"),
    (["embed", "{fa}", "-o", "{dir}/x.tsv", "--pool", "per-token"], "--pool"),
    (["embed", "{fa}", "-o", "-", "--pool", "per-token"], "--pool"),
    (["embed", "{fa}", "-o", "{dir}/x.npy", "--truncate", "--window", "10"], "--truncate"),
    (["embed", "probe-joint", "--pairs", "{fa}", "--model-gene", "{dir}"], "--model-gene"),
    (["contacts", "predict"], "--structure"),
    (["contacts", "predict", "--protein", "{fa}"], "--protein"),
    (["contacts", "predict", "--protein", "{fa}", "--na", "{na}", "--cif-out", "{dir}/x.cif"], "--cif-out"),
    (["contacts", "predict", "--protein", "-", "--na", "-"], "--protein"),
    (["affinity"], "PROTEINS"),
    (["affinity", "{fa}"], "NUCLEIC_ACIDS"),
    (["affinity", "-", "-"], "PROTEINS"),
    (["affinity", "{fa}", "{na}", "--complexes", "{tsv}"], "--complexes"),
    (["affinity", "--complexes", "{tsv}", "--pairs", "zip"], "--pairs"),
    (["affinity", "--complexes", "{tsv}", "--complement", "revcomp"], "--complement"),
    (["score", "{fa}", "--mutations", "M1A", "--variants", "{tsv}"], "--variants"),
    (["score", "{fa}", "--mutations", "M1A", "--per-residue", "{dir}/r.tsv"], "--per-residue"),
    (["score", "{fa}", "--per-residue", "{dir}/r.tsv", "-o", "{dir}/r.tsv"], "--per-residue"),
    (["pretrain", "--tokens", "{dir}", "-o", "{out}", "--eval-tokens", "{dir}", "--holdout", "0.1"], "--holdout"),
    (["bench", "throughput", "--lengths", "{fa}", "--layout", "full"], "--lengths"),
    (["bench", "pronab", "-d", "{tsv}", "-m", "{dir}", "--from-cv", "{dir}", "-o", "{out}"], "--from-cv"),
    (["bench", "tasks", "-d", "{dir}", "--resume", "--force", "-o", "{out}"], "--resume"),
    (["finetune", "affinity", "-d", "{tsv}", "--method", "composition", "-m", "{dir}", "-o", "{out}"], "--model"),
    (["model", "init", "-o", "{out}", "--width", "100", "--heads", "3"], "--heads"),
    (["convert", "{dir}/x.pt", "-o", "{out}", "-t", "a", "-t", "b", "-t", "c"], "--tokenizer"),
    (["tokenize", "encode", "{fa}", "-m", "DNA"], "--molecule-type DNA"),  # -m is the model now
    (["tokenize", "encode", "{fa}", "-m", "{dir}", "-t", "omnibiote-mixed"], "--model"),
]


def _filled(args, folder: Path) -> list[str]:
    names = {"fa": folder / "p.fa", "na": folder / "n.fa", "tsv": folder / "c.tsv", "dir": folder}
    names["out"] = folder / "out"
    return [arg.format(**names) for arg in args]


@pytest.mark.parametrize("args, option", COMBINATIONS, ids=lambda v: " ".join(v[:3]) if isinstance(v, list) else v)
def test_an_invalid_combination_is_a_one_line_usage_error_before_any_work(args, option, files):
    one_usage_error_line(obte(*_filled(args, files)), option)
    assert not (files / "out").exists()


def test_a_value_the_loaded_model_cannot_take_is_a_usage_error(files):
    """--layers beyond the model's, a --window longer than its context, a --bfactor-cutoff it does not predict."""
    from obte_cli.engine.core.resources import default_backbone_dir, default_contacts_model_dir

    if default_backbone_dir() is None or default_contacts_model_dir() is None:
        pytest.skip("this installation has no bundled models")
    fasta = files / "p.fa"
    line = one_usage_error_line(obte("embed", fasta, "-o", files / "x.npy", "--layers", "0,99"), "--layers")
    assert "99 is not a layer of this model" in line
    line = one_usage_error_line(obte("embed", fasta, "-o", files / "x.npy", "--window", "100000"), "--window")
    assert "does not fit the model's context" in line
    args = ["contacts", "predict", "--protein", fasta, "--na", files / "n.fa", "--bfactor-cutoff", "5"]
    assert "the model predicts 4, 6, 8 Å" in one_usage_error_line(obte(*args), "--bfactor-cutoff")
    assert not (files / "x.npy").exists()


def test_a_malformed_model_directory_is_still_bad_input(files, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{not json")
    result = obte("embed", files / "p.fa", "-m", model, "-o", tmp_path / "x.npy")
    assert result.exit_code == 1 and result.stderr.startswith("error: ") and str(model) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_one_line_names_the_help_to_read():
    line = one_usage_error_line(obte("prep", "x.fa", "-o", "out", "--shard", "3/2"), "--shard")
    assert line.startswith("error: Invalid value for '--shard': must be I/N with 0 ≤ I < N") and "prep -h" in line

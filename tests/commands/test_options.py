"""The shared option vocabulary (obte_cli/commands/options.py): a bad choice or an impossible number is a
usage error (exit 2) that names what is allowed; an existing --out needs --force (exit 1)."""

import re

import pytest
import typer
from conftest import DATA, obte

from obte_cli.app import app
from obte_cli.commands import options
from obte_cli.engine.core.errors import InputError


def usage_error(result) -> str:
    """The message of a usage error, without the box drawing and line wrapping around it."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stderr).split())


def _commands_with(option: str, group=None, path=()):
    group = group or typer.main.get_command(app)
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands_with(option, command, (*path, name))
        elif any(option in param.opts for param in command.params):
            yield (*path, name)


DEVICE_COMMANDS = list(_commands_with("--device"))


def test_every_device_option_is_found():
    assert (
        len(DEVICE_COMMANDS) >= 14 and ("affinity",) in DEVICE_COMMANDS and ("bench", "throughput") in DEVICE_COMMANDS
    )


@pytest.mark.parametrize("command", DEVICE_COMMANDS, ids=" ".join)
def test_a_bad_device_is_a_usage_error_naming_the_devices(command):
    message = usage_error(obte(*command, "--device", "tpu"))
    assert "--device" in message and "'tpu'" in message
    assert all(f"'{name}'" in message for name in ("auto", "cpu", "cuda")), message


@pytest.mark.parametrize("command", list(_commands_with("--seed")), ids=" ".join)
def test_a_negative_seed_is_a_usage_error(command):
    assert "--seed" in usage_error(obte(*command, "--seed", "-1"))


def test_device_names_ignore_case_as_before():
    # `--device CPU` gets through parsing (read first); the command line then stops at the bad --shapes
    result = obte("bench", "throughput", "--device", "CPU", "--shapes", "nope")
    assert result.exit_code == 2 and "'--shapes'" in result.stderr and "--device" not in result.stderr


@pytest.mark.parametrize(
    "args, choices",
    [
        (["tokenize", "encode", "-", "--on-unknown", "drop"], ["error", "unk"]),
        (["score", "-", "-m", "m", "--on-unknown", "drop"], ["error", "unk"]),
        (["embed", "sequences", "-", "-m", "m", "-o", "x.npy", "--pool", "sum"], ["mean", "first", "max", "per-token"]),
        (["pretrain", "--tokens", "t", "-o", "o", "--modality", "rna"], ["omni", "protein", "nucleic"]),
        (["model", "init", "-o", "m", "--preset", "huge"], ["micro", "tiny", "small", "medium", "large", "xl"]),
        (["bench", "embed", "x.fa", "--preset", "huge"], ["micro", "tiny", "xl"]),
        (["finetune", "classify", "--task", "ranking"], ["classification", "regression"]),
        (["finetune", "residue", "--task", "ranking"], ["classification", "regression"]),
        (["finetune", "contacts", "--probe", "mlp"], ["head", "attention"]),
        (["bench", "contacts", "s", "--methods", "mlp"], ["head", "attention", "propensity"]),
        (["bench", "contacts", "s", "--methods", "head,attention"], ["head", "attention", "propensity"]),
        (["affinity", "p.fa", "na.fa", "--pairs", "cross"], ["all", "zip"]),
        (["affinity", "p.fa", "na.fa", "--na-type", "dna"], ["auto", "DNA", "RNA"]),
        (["contacts", "predict", "--na-type", "XNA"], ["auto", "DNA", "RNA"]),
        (["affinity", "p.fa", "na.fa", "--on-unknown", "drop"], ["error", "unk"]),
        (["embed", "sequences", "-", "-m", "m", "-o", "x.npy", "--on-unknown", "skip"], ["error", "unk"]),
        (["finetune", "classify", "--on-unknown", "drop"], ["error", "unk"]),
        (["finetune", "contacts", "--on-unknown", "drop"], ["error", "unk"]),
        (["contacts", "predict", "--on-unknown", "drop"], ["error", "unk"]),
        (["scan-jaspar", "m.jaspar", "--protein", "p.fa", "--on-unknown", "drop"], ["error", "unk"]),
    ],
)
def test_a_bad_choice_is_a_usage_error_listing_the_choices(args, choices):
    option, value = args[-2:]
    message = usage_error(obte(*args))
    assert option in message and f"'{value}'" in message
    assert all(f"'{choice}'" in message for choice in choices), message


@pytest.mark.parametrize(
    "args, wanted",
    [
        (["scan-jaspar", "m.jaspar", "--protein", "p.fa", "--rate", "0"], "must be in (0, 1] (got 0)"),
        (["bench", "jaspar", "--rate", "1.5"], "must be in (0, 1] (got 1.5)"),
        (["embed", "probe-joint", "--pairs", "x.tsv", "--train-frac", "nan"], "must be in (0, 1) (got nan)"),
        (["finetune", "affinity", "--warmup", "inf"], "must be in [0, 1) (got inf)"),
        (["finetune", "classify", "--lr-head", "-0.1"], "must be ≥ 0 (got -0.1)"),
        (["finetune", "affinity", "--homology-threshold", "nan"], "must be a finite number (got nan)"),
        (["pretrain", "--holdout", "0.5"], "must be in [0, 0.5) (got 0.5)"),
        (["contacts", "predict", "--bfactor-cutoff", "-4"], "must be ≥ 0 (got -4)"),
        (["finetune", "affinity", "--folds", "1"], "0 (no cross-validation) or at least 2"),
        (["finetune", "contacts", "--folds", "1"], "0 (no cross-validation) or at least 2"),
        # --cutoff 1e9 once searched for neighbours for minutes, and nan was taken
        (["contacts", "labels", "x.pdb", "--cutoff", "1e9"], "each distance must be in (0, 20] Å (got 1e9)"),
        (["contacts", "labels", "x.pdb", "--cutoff", "nan"], "each distance must be in (0, 20] Å (got nan)"),
        (["contacts", "labels", "x.pdb", "--cutoff", "4,inf"], "each distance must be in (0, 20] Å (got inf)"),
        (["contacts", "labels", "x.pdb", "--cutoff", "0,4"], "each distance must be in (0, 20] Å (got 0)"),
        (
            ["contacts", "labels", "x.pdb", "--cutoff", "4,six"],
            "comma-separated distances in Å, e.g. 4,6,8 (got 'six')",
        ),
        (["contacts", "labels", "x.pdb", "--cutoff", ","], "give one or more distances in Å"),
    ],
)
def test_an_impossible_float_is_a_usage_error_naming_the_range(args, wanted):
    message = usage_error(obte(*args))
    assert args[-2] in message and wanted in message, message


@pytest.mark.parametrize(
    "args, bound",
    [
        (["bench", "prep", "x.gb", "--workers", "0"], 1),
        (["prep", "x.gb", "-o", "o", "--min-length", "0"], 1),
        (["tokenize", "train", "s", "-o", "o", "--vocab-size", "10"], 64),
        (["tokenize", "train", "s", "-o", "o", "--chunk-length", "8"], 16),
        (["embed", "sequences", "-", "-m", "m", "-o", "x.npy", "--max-tokens", "0"], 1),
        (["embed", "sequences", "-", "-m", "m", "-o", "x.npy", "--window", "-5"], 0),
        (["finetune", "affinity", "--epochs", "0"], 1),
        (["bench", "contacts", "s", "--folds", "1"], 2),
        (["bench", "throughput", "--context", "0"], 1),
        (["scan-jaspar", "m.jaspar", "--protein", "p.fa", "--mutants", "0"], 1),
        (["score", "-", "-m", "m", "--max-tokens", "8"], 64),
    ],
)
def test_an_out_of_range_count_is_a_usage_error_naming_the_bound(args, bound):
    message = usage_error(obte(*args))
    option = args[-2]
    assert option in message, message
    # the wording is the option parser's: "greater than or equal to N" or "x>=N"
    assert re.search(rf"(greater than or equal to|>=) ?{bound}\b", message), message


@pytest.mark.parametrize(
    "args",
    [
        ["pretrain", "--tokens", "t", "-o", "o", "--context", "100000"],
        ["model", "init", "-o", "o", "--context", "20000"],
        ["bench", "throughput", "--context", "16385"],
    ],
)
def test_a_context_beyond_what_attention_can_hold_is_a_usage_error(args):
    """Attention memory grows with context²: 100,000 tokens once tried to allocate 40 GB."""
    message = usage_error(obte(*args))
    assert "--context" in message and "16384" in message, message


def _count_options(group=None, path=()):
    """(command path, option name, its maximum or None) for every integer option of every command."""
    group = group or typer.main.get_command(app)
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _count_options(command, (*path, name))
            continue
        for param in command.params:
            if param.param_type_name == "option" and param.type_descriptor.annotation in (int, int | None):
                yield (*path, name), param.opts[0], param.__dict__.get("max")


COUNT_OPTIONS = list(_count_options())


def test_every_count_and_size_option_has_a_maximum():
    """#31 §3: a count without an upper bound (`--mutants 100000000`) ran for ever or filled the memory."""
    assert len(COUNT_OPTIONS) > 60 and (("scan-jaspar",), "--mutants", options.MAX_MUTANTS) in COUNT_OPTIONS
    unbounded = [(" ".join(command), option) for command, option, high in COUNT_OPTIONS if high is None]
    assert not unbounded, unbounded


@pytest.mark.parametrize(
    "command, option, high", [c for c in COUNT_OPTIONS if c[2] is not None], ids=lambda c: str(c).replace(" ", "-")
)
def test_a_count_above_its_maximum_is_a_usage_error_naming_it(command, option, high):
    message = usage_error(obte(*command, option, str(high + 1)))
    assert option in message and str(high) in message, message


def test_the_issues_mutants_and_token_counts_are_usage_errors(tmp_path):
    fasta = tmp_path / "p.fa"
    fasta.write_text(">p\nMKV\n")
    motif = DATA / "motifs" / "MA0139.1.jaspar"
    assert "--mutants" in usage_error(obte("scan-jaspar", motif, "--protein", fasta, "--mutants", "100000000"))
    for count in ("1e16", "1e400", "inf"):
        message = usage_error(obte("pretrain", "--tokens", tmp_path, "-o", tmp_path / "r", "--total-tokens", count))
        assert "--total-tokens" in message and "at most 1e+15 tokens" in message, message


def _guarded_commands(tmp_path):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"")
    return [
        ["model", "init"],
        ["convert", checkpoint],
        ["tokenize", "train", tmp_path / "shards"],
        ["tokenize", "corpus", tmp_path / "shards"],
        ["finetune", "affinity", "-d", tmp_path / "data.json", "-m", tmp_path / "backbone"],
        ["finetune", "classify", "--train", "a.csv", "--dev", "b.csv", "--test", "c.csv", "-m", tmp_path / "backbone"],
        ["finetune", "residue", "--train", "a.tsv", "--dev", "b.tsv", "--test", "c.tsv", "-m", tmp_path / "backbone"],
        ["finetune", "contacts", "-l", "labels.tsv", "-m", tmp_path / "backbone"],
        ["bench", "pronab", "-d", tmp_path / "data.json", "--from-cv", tmp_path / "cv"],
    ]


def test_an_existing_out_needs_force_with_one_message_everywhere(tmp_path):
    out = tmp_path / "existing"
    out.mkdir()
    (out / "config.json").write_text('{"format": "obte-model"}')  # an obte output: --force would replace it
    (out / "keep.txt").write_text("untouched")
    for command in _guarded_commands(tmp_path):
        result = obte(*command, "-o", out)
        assert result.exit_code == 1, (command, result.output)
        assert result.stderr.strip().splitlines()[-1] == f"error: {out}: already exists (use --force to replace it)", (
            command
        )
    assert (out / "keep.txt").read_text() == "untouched"


@pytest.mark.parametrize("force", [[], ["--force"]], ids=["", "--force"])
def test_a_directory_obte_did_not_write_is_never_replaced(tmp_path, force):
    """#31 §1: `--force` deleted whatever --out named. A directory that is not an obte output is refused,
    with or without --force, in one line naming a file in it, by every command that replaces its --out."""
    out = tmp_path / "precious"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    for command in _guarded_commands(tmp_path):
        result = obte(*command, "-o", out, *force)
        assert result.exit_code == 1, (command, result.output)
        lines = result.stderr.strip().splitlines()
        assert lines[-1].startswith(f"error: {out}: not an obte output (it holds keep.txt)"), (command, lines)
        assert "--force replaces only a directory obte wrote" in lines[-1]
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"] and (out / "keep.txt").read_text() == "keep"


def test_guard_new_output(tmp_path):
    options.guard_new_output(tmp_path / "new", force=False)
    options.guard_new_output(tmp_path, force=True)
    with pytest.raises(InputError, match=re.escape(f"{tmp_path}: already exists (use --force to replace it)")):
        options.guard_new_output(tmp_path, force=False)


def test_choices_agree_with_the_engine():
    from obte_cli.engine.bio.complex_inputs import NA_TYPE_CHOICES, PAIRING_CHOICES
    from obte_cli.engine.contacts.cv import METHODS as CONTACT_METHODS
    from obte_cli.engine.core.devices import DEVICE_CHOICES
    from obte_cli.engine.embedding.embed import POOLS
    from obte_cli.engine.embedding.variants import STRATEGIES
    from obte_cli.engine.finetuning.tasks import TASKS
    from obte_cli.engine.model.encoder import PRESETS
    from obte_cli.engine.pretraining.batches import MODALITIES
    from obte_cli.engine.tokenizers.base import ON_UNKNOWN_CHOICES

    for choice, engine in [
        (options.Device, DEVICE_CHOICES),
        (options.Pool, POOLS),
        (options.Task, TASKS),
        (options.Preset, PRESETS),
        (options.Modality, MODALITIES),
        (options.OnUnknown, ON_UNKNOWN_CHOICES),
        (options.Pairing, PAIRING_CHOICES),
        (options.NaType, NA_TYPE_CHOICES),
        (options.ContactMethod, CONTACT_METHODS),
        (options.Strategy, STRATEGIES),
    ]:
        assert [c.value for c in choice] == list(engine), choice


def test_a_choice_reads_as_its_value():
    assert str(options.Pool.per_token) == f"{options.Pool.per_token}" == "per-token"
    assert options.Device.cuda == "cuda" and isinstance(options.Device.cuda, str)


def test_the_cutoff_bound_is_explained_and_the_paper_cutoffs_pass():
    assert options.cutoffs_check("4,6,8") == "4,6,8" and options.cutoffs_check("20") == "20"
    help_text = " ".join(obte("contacts", "labels", "--help").stdout.split())
    assert "(0, 20]" in help_text and "4/6/8" in help_text


def test_number_in():
    check = options.number_in(0, 1, low_open=True)
    assert check(1.0) == 1.0 and check(None) is None
    for bad in (0.0, 1.5, float("nan"), float("inf")):
        with pytest.raises(typer.BadParameter, match=re.escape("must be in (0, 1]")):
            check(bad)
    assert options.number_in()(-3.0) == -3.0
    with pytest.raises(typer.BadParameter, match="finite"):
        options.number_in()(float("-inf"))

"""One vocabulary of options: the flags several commands share, declared once.

A shared option is ``Annotated[type, typer.Option(...)]``; the command gives only the default::

    device: DeviceOption = Device.auto

Where the help must say what this command wants (which model, which output), a function takes the help
and returns the ``typer.Option``: ``model: Annotated[Path, model_option("Backbone model directory.")]``.

Fixed choices are ``str`` Enums, so a bad value is a usage error (exit 2) that lists the valid ones.
Integer options carry their range (``min=``/``max=``); float options get :func:`number_in`, which also
refuses nan and inf. Text with a form (a molecule type, ``I/N``, a list of layers, a token count, benchmark
shapes, variants) gets one callback per kind from here. All are usage errors that name the option, checked
when the command line is read; a value wrong only beside another option, or for the model a command loaded,
is raised in the command with :func:`usage_error`. tests/commands/test_option_values.py walks every option.

One letter, one meaning: :data:`SHORT_OPTIONS` lists every short option (README "Options");
:func:`old_short_options` keeps a command's retired letters working for a release, with a warning.

Nothing heavy is imported here (``obte --help`` stays fast), so the choices are spelled out rather than
taken from the engine's constants; tests/commands/test_options.py checks that the two agree.
"""

from __future__ import annotations

import functools
import math
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from obte_cli.engine.core.errors import InputError, UnknownResidueError


class StrChoice(str, Enum):
    """A fixed choice whose ``str()`` and f-string form is its value (not ``Class.member``), so it can go
    wherever the engine expects the plain string."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Device(StrChoice):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Pool(StrChoice):
    mean = "mean"
    first = "first"
    max = "max"
    per_token = "per-token"


class Readout(StrChoice):
    """What a ΔG head reads (obte_cli.engine.model.inference.Readout)."""

    first = "first"
    mean = "mean"
    parts_mean = "parts-mean"


class AffinityMethod(StrChoice):
    """What `obte finetune affinity` trains (obte_cli.engine.affinity.training.AffinityCV.method)."""

    transformer = "transformer"
    composition = "composition"


class SequenceReadout(StrChoice):
    """What a sequence-task head reads (no parts: one sequence)."""

    first = "first"
    mean = "mean"


class Strategy(StrChoice):
    """Variant-effect scores of `obte score --mutations` and `obte bench variants`
    (obte_cli.engine.embedding.variants.STRATEGIES)."""

    wt_marginals = "wt-marginals"
    masked_marginals = "masked-marginals"
    mutant_marginals = "mutant-marginals"
    pseudo_ppl = "pseudo-ppl"


READOUT_HELP = (
    "What the ΔG head reads: 'first', the first token's final state (the reference's choice), 'mean', the mean "
    "state of all tokens, or 'parts-mean', the mean states of the protein and of the nucleic acid side by side."
)


def readout_option() -> Any:
    return typer.Option("--readout", help=READOUT_HELP)


class Layout(StrChoice):
    """`obte bench throughput` token layouts (obte_cli.engine.bench.throughput.LAYOUTS, and both)."""

    both = "both"
    full = "full"
    packed = "packed"


class Suite(StrChoice):
    """`obte bench tasks` suites (obte_cli.engine.bench.suites.SUITES, and all of them)."""

    all = "all"
    gue = "gue"
    ss3 = "ss3"
    gb1 = "gb1"
    homology = "homology"


class Recipe(StrChoice):
    """How `obte bench tasks` trains a model on a task (obte_cli.engine.bench.tasks)."""

    probe = "probe"
    finetune = "finetune"


class Gb1Split(StrChoice):
    one_vs_rest = "one_vs_rest"
    two_vs_rest = "two_vs_rest"
    three_vs_rest = "three_vs_rest"
    low_vs_high = "low_vs_high"
    sampled = "sampled"


class OnUnknown(StrChoice):
    error = "error"
    unk = "unk"


class Modality(StrChoice):
    omni = "omni"
    protein = "protein"
    nucleic = "nucleic"


class Optimizer(StrChoice):
    auto = "auto"  # muon, or adamw under --fsdp (Muon needs whole matrices)
    adamw = "adamw"
    muon = "muon"


class Preset(StrChoice):
    micro = "micro"
    tiny = "tiny"
    small = "small"
    medium = "medium"
    large = "large"
    xl = "xl"


class Task(StrChoice):
    classification = "classification"
    regression = "regression"


class Probe(StrChoice):
    head = "head"
    attention = "attention"


class ContactMethod(StrChoice):
    """`obte bench contacts` predictors (obte_cli.engine.contacts.cv.METHODS)."""

    head = "head"
    attention = "attention"
    propensity = "propensity"


class Pairing(StrChoice):
    all = "all"
    zip = "zip"


class NaType(StrChoice):
    auto = "auto"
    DNA = "DNA"
    RNA = "RNA"


# ---- numbers ---------------------------------------------------------------------------------------


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '≥'} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '≤'} {high:g}"
    return "a finite number"


def number_in(low: float | None = None, high: float | None = None, *, low_open: bool = False, high_open: bool = False):
    """Option callback for a float: finite (no nan, no inf) and within the bounds, else a usage error,
    e.g. ``Invalid value for '--rate': must be in (0, 1] (got 0)``."""
    wanted = _interval(low, high, low_open, high_open)

    def check(value: float | None) -> float | None:
        if value is None:
            return value
        outside = (
            not math.isfinite(value)
            or (low is not None and (value <= low if low_open else value < low))
            or (high is not None and (value >= high if high_open else value > high))
        )
        if outside:
            raise typer.BadParameter(f"must be {wanted} (got {value:g})")
        return value

    return check


# Contacts are defined at a few ångströms (the paper's 4, 6 and 8 Å: side chain to base or backbone); at
# 20 Å a residue merely lies in the same region of the complex, and a far larger cutoff makes every atom a
# neighbour of every other (1e9 Å once ran for minutes), so anything beyond 20 Å is a typo.
MAX_CONTACT_CUTOFF = 20.0


def cutoffs_check(text: str) -> str:
    """``--cutoff``: comma-separated distances in Å, each finite and in (0, 20], else a usage error."""
    wanted = _interval(0, MAX_CONTACT_CUTOFF, True, False)
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise typer.BadParameter(f"give one or more distances in Å, e.g. 4,6,8 (got {text!r})")
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise typer.BadParameter(f"must be comma-separated distances in Å, e.g. 4,6,8 (got {part!r})") from None
        if not (math.isfinite(value) and 0 < value <= MAX_CONTACT_CUTOFF):
            raise typer.BadParameter(f"each distance must be {wanted} Å (got {part})")
    return text


def folds_check(value: int) -> int:
    """``--folds``: 0 (no cross-validation) or at least 2; one fold cannot both train and test."""
    if value == 1:
        raise typer.BadParameter("must be 0 (no cross-validation) or at least 2 (got 1)")
    return value


MUTATION_RATE = number_in(0, 1, low_open=True)  # --rate of scan-jaspar and bench jaspar: a per-base probability


def usage_error(message: str, *options: str) -> typer.BadParameter:
    """A usage error (exit 2) about ``options``, for a value that is wrong only beside another option or for the
    model a command loaded: ``raise usage_error("cannot be combined with --window", "--truncate")`` ends the run
    with ``error: Invalid value for '--truncate': cannot be combined with --window``."""
    return typer.BadParameter(message, param_hint=" / ".join(f"'{option}'" for option in options) or None)


# ---- text with a form ------------------------------------------------------------------------------


MOLECULE_TYPE_HELP = (
    "Molecule type of every record (protein, DNA, RNA, mRNA, tRNA, ...), or 'auto': nucleic if the sequence is "
    "only A/C/G/T/U/N (RNA if it has U and no T), protein otherwise."
)


def molecule_type_check(value: str | None) -> str | None:
    """``--molecule-type``: 'auto' or a molecule type obte knows (obte_cli.engine.bio.molecules, no torch),
    else a usage error listing them."""
    from obte_cli.engine.bio.molecules import molecule_type_option as known

    if value is not None:
        try:
            known(value)
        except InputError as exc:
            raise typer.BadParameter(str(exc).removeprefix("--molecule-type: ")) from None
    return value


def molecule_option(help: str = MOLECULE_TYPE_HELP) -> Any:
    """``--molecule-type`` (long only: ``-m`` is the model, ``-t`` the tokenizer), checked by
    :func:`molecule_type_check`."""
    return typer.Option("--molecule-type", callback=molecule_type_check, help=help)


MAX_SHARDS = 1_000_000  # machines an archive is split over (prep --shard I/N)


def parse_shard(text: str) -> tuple[int, int]:
    """``--shard I/N`` as (I, N), with 0 ≤ I < N ≤ MAX_SHARDS; anything else is a usage error."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise typer.BadParameter(f"must look like I/N, e.g. 0/4 (got {text!r})") from None
    if not 0 <= index < count <= MAX_SHARDS:
        raise typer.BadParameter(f"must be I/N with 0 ≤ I < N ≤ {MAX_SHARDS:,} (got {text!r})")
    return index, count


def shard_check(text: str) -> str:
    parse_shard(text)
    return text


def parse_layers(text: str) -> tuple[int, ...]:
    """``--layers``: comma-separated layer numbers (0 = embeddings, negative from the end), each within
    MAX_LAYERS; the model's own range is checked once it is loaded."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise typer.BadParameter(f"give one or more layers, e.g. -1 or 0,2,-1 (got {text!r})")
    try:
        layers = tuple(int(part) for part in parts)
    except ValueError:
        raise typer.BadParameter(f"must be comma-separated integers, e.g. -1 or 0,2,-1 (got {text!r})") from None
    if any(abs(layer) > MAX_LAYERS + 1 for layer in layers):
        raise typer.BadParameter(f"a model has at most {MAX_LAYERS} layers (got {text!r})")
    return layers


def layers_check(text: str) -> str:
    parse_layers(text)
    return text


def shapes_check(text: str) -> str:
    """``bench throughput --shapes``: comma-separated presets or wWIDTH (a 4-layer model of that width, heads
    of 64, so WIDTH a multiple of 64 up to MAX_WIDTH)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise typer.BadParameter(f"give one or more shapes, e.g. tiny,w512 (got {text!r})")
    presets = [preset.value for preset in Preset]
    for name in names:
        width = int(name[1:]) if name.startswith("w") and name[1:].isdigit() else 0
        if name not in presets and not (width and width % 64 == 0 and width <= MAX_WIDTH):
            raise typer.BadParameter(
                f"{name!r} is neither a preset ({', '.join(presets)}) nor wWIDTH with WIDTH a multiple of 64 "
                f"up to {MAX_WIDTH}"
            )
    return text


_SUBSTITUTION = r"[A-Za-z]\d+[A-Za-z]"  # as obte_cli.engine.embedding.variants reads one


def mutations_check(text: str | None) -> str | None:
    """``score --mutations``: variants like ``A42G`` or ``A42G:K45R`` separated by commas. Only the form is
    checked here; positions and wild-type letters are checked against the reference (bad input, exit 1)."""
    import re

    if text is None:
        return text
    variants = [part for part in text.split(",") if part.strip()]
    if not variants:
        raise typer.BadParameter(f"give one or more variants, e.g. A42G,K45R:L50P (got {text!r})")
    for variant in variants:
        if not all(re.fullmatch(_SUBSTITUTION, part.strip()) for part in variant.strip().split(":")):
            raise typer.BadParameter(f"{variant.strip()!r} is not a variant like A42G or A42G:K45R")
    return text


# ---- counts and sizes --------------------------------------------------------------------------------
# Every count or size a user types has a maximum: far above any real use, below what would run for days,
# fill the memory or overflow. A mistyped `--mutants 100000000` is then a usage error (exit 2) naming the
# option and its range, not a run that never ends; the help shows the range ([1<=x<=10000]).

MAX_SEED = 2**32 - 1  # numpy's and torch's generators take any seed below it
MAX_MUTANTS = 10_000  # mutated sites per matrix (scan-jaspar, bench jaspar): one model call each; default 8
MAX_EPOCHS = 1_000  # passes over the training data (the paper's longest: 64)
MAX_BATCH = 65_536  # examples per optimizer step (the paper's ΔG: 256)
MAX_BATCH_TOKENS = 1 << 20  # tokens per forward pass (--max-tokens: memory, not results; default 16,384)
MAX_FOLDS = 1_000  # cross-validation folds (the data have fewer proteins than that anyway)
MAX_WORKERS = 1_024  # processes or threads
MAX_REPEATS = 1_000  # repeats of a timing
MAX_STEPS = 10_000_000  # optimizer steps (probe-joint, bench throughput), steps between checkpoints
MAX_ROWS = 4_096  # rows of --context tokens per step or per micro-batch (memory: rows × context)
MAX_EVAL_ROWS = 1_000_000  # held-out rows scored at each checkpoint
MAX_VOCAB = 1 << 20  # ids of a tokenizer or an embedding table
MAX_WIDTH = 65_536  # model width
MAX_LAYERS = 1_024  # transformer blocks
MAX_HEADS = 1_024  # attention heads
MAX_RANK = 65_536  # rank of a learned map
MAX_WINDOW = 1 << 20  # residues per window, or between window starts
MAX_LENGTH = 10**12  # a sequence length (a filter: the longest chromosomes have a few 10⁹ bases)
MAX_SAMPLE_RESIDUES = 10**10  # residues held in memory for tokenizer training (two bytes each per modality)
MAX_BUDGET = 10**10  # residues or tokens of a CPU budget (bench contacts --max-residues, tasks --max-train-tokens)
MAX_EXAMPLES = 100_000_000  # examples per task and split
MAX_TOKENS = 10**15  # a pretraining token budget or batch (the paper's largest run: 250B tokens)


_COUNT_SUFFIXES = {"k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9, "t": 1e12}


def token_count(text: str, option: str, zero: bool = False) -> int:
    """A count of tokens as people write it, ``250M``, ``1.5B``, ``1e9`` or ``16384``, as an integer in
    [1, MAX_TOKENS] (``zero``: 0 too, where 0 means "auto"). Anything else (``lots``, ``-5``, ``0``, ``1e16``,
    ``inf``) is a usage error naming the option."""
    cleaned = text.strip().lower().replace("_", "").replace(",", "")
    scale = 1.0
    if cleaned and cleaned[-1] in _COUNT_SUFFIXES:
        scale, cleaned = _COUNT_SUFFIXES[cleaned[-1]], cleaned[:-1]
    hint = f"'{option}'"
    try:
        value = int(float(cleaned) * scale)
    except ValueError:  # also nan
        raise typer.BadParameter(f"{text!r} is not a count (e.g. 16384, 250M, 1.5B)", param_hint=hint) from None
    except OverflowError:  # inf, 1e400
        value = MAX_TOKENS + 1
    if value > MAX_TOKENS:
        raise typer.BadParameter(f"at most {MAX_TOKENS:.0e} tokens (got {text!r})", param_hint=hint)
    if value < (0 if zero else 1):
        wanted = "0 (auto) or a positive count" if zero else "a positive count"
        raise typer.BadParameter(f"must be {wanted} (got {text!r})", param_hint=hint)
    return value


def token_count_check(option: str, zero: bool = False):
    """Option callback for a token count (:func:`token_count`): a value that is not one is a usage error when
    the command line is read, before any work; the command parses the value itself."""

    def check(text: str | None) -> str | None:
        if text is not None:
            token_count(text, option, zero)
        return text

    return check


def count_option(
    default: int | None, *names: str, low: int = 1, high: int, help: str | None = None, **extra: Any
) -> Any:
    """An integer option in [``low``, ``high``] (one of the maxima above): a value outside is a usage error
    (exit 2) that names the option and the range, and ``--help`` shows the range."""
    return typer.Option(default, *names, min=low, max=high, help=help, **extra)


def finetune_settings(epochs, batch_size, max_tokens, lr_head, lr_embedding, lr_body, warmup, seed):
    """The options every finetune command shares, as engine settings (their ranges are checked by the options)."""
    from obte_cli.engine.finetuning.trainer import FinetuneSettings

    return FinetuneSettings(
        epochs=epochs,
        batch_size=batch_size,
        max_tokens=max_tokens,
        lr_head=lr_head,
        lr_embedding=lr_embedding,
        lr_body=lr_body,
        warmup_fraction=warmup,
        seed=seed,
    )


# ---- shared options --------------------------------------------------------------------------------

DEVICE_HELP = "auto, cpu or cuda."

# Longest context a model or a pretraining row may have. Attention over a packed row is computed with its
# block-diagonal mask, so memory grows with context² (16,384 tokens already take 8 GB per row for 8 heads):
# a longer --context is a typo, not a plan.
MAX_CONTEXT = 16384
# Shortest: a row must hold a molecule tag, residues and <EOS> with enough residues left to mask and predict.
MIN_CONTEXT = 16


def context_check(value: int) -> int:
    """``--context`` of `model init` and `pretrain`: 0 (the tokenizer's default) or MIN_CONTEXT..MAX_CONTEXT."""
    if 0 < value < MIN_CONTEXT:
        raise typer.BadParameter(f"must be 0 (the default) or at least {MIN_CONTEXT} tokens (got {value})")
    return value


def device_option(help: str = DEVICE_HELP) -> Any:
    return typer.Option("--device", case_sensitive=False, help=help)


def seed_option(help: str = "Random seed.") -> Any:
    return typer.Option("--seed", min=0, max=MAX_SEED, help=help)


def model_option(help: str) -> Any:
    """``--model/-m``: a model directory (what kind, the help says)."""
    return typer.Option("--model", "-m", help=help)


def backbone_context_option() -> Any:
    """``--context``: raise (or lower) a backbone's input limit for fine-tuning at another length."""
    return typer.Option(
        "--context",
        min=MIN_CONTEXT,
        max=MAX_CONTEXT,
        help=(
            "Longest input in tokens (default: the backbone's). Rotary positions have no weights, so a backbone "
            "pretrained at 512 tokens can be fine-tuned at 1024; positions past its pretraining length start "
            "untrained. Longer inputs are cut at the protein's C-terminus."
        ),
    )


BACKBONE_DEFAULT_HELP = "(default: the bundled pretrained backbone, see `obte model info`)"


def backbone_or_default(model: Path | None) -> Path:
    """``--model`` when given, else the bundled pretrained backbone (share/models/); a clear error where the
    installation has none."""
    from obte_cli.engine.core import resources

    if model is not None:
        return model
    bundled = resources.default_backbone_dir()
    if bundled is None:
        raise InputError(
            f"no --model given and this installation has no bundled backbone "
            f"(share/models/{resources.DEFAULT_BACKBONE}): pass --model DIR"
        )
    return bundled


def out_option(help: str) -> Any:
    """``--out/-o``: an output file or directory (which, the help says)."""
    return typer.Option("--out", "-o", help=help)


# One letter, one meaning in every command (README "Options"; tests/commands/test_short_options.py checks each
# command against it). Every other option is long only.
SHORT_OPTIONS = {
    "-h": "--help",
    "-v": "--verbose",  # obte's own options, before the command
    "-q": "--quiet",
    "-m": "--model",
    "-o": "--out",
    "-t": "--tokenizer",
    "-d": "--data",
    "-f": "--force",
    "-j": "--workers",
    "-k": "--folds",
    "-l": "--labels",
}


def old_short_options(renamed: dict[str, str]):
    """Decorator for a command whose retired short options still work for one release: each letter of
    ``renamed`` (``{"-t": "--molecule-type"}``) is read as its long option, with a warning on stderr
    (:class:`obte_cli.commands.common.ObteGroup` does the reading). A letter that now means something else
    in this command (``-m`` as --model) cannot be kept: the CHANGELOG says so."""

    def mark(command):
        command.old_short_options = dict(renamed)
        return command

    return mark


ON_UNKNOWN_HELP = (
    "Letters outside the standard alphabets (20 amino acids; A, C, G, T/U), such as X or N: 'error' names the "
    "record and position; 'unk' reads each as the <unk> token."
)
ON_UNKNOWN_HINT = "use --on-unknown unk to read such letters as <unk>"


UNK_BY_DEFAULT_HELP = (
    "Letters outside the standard alphabets (20 amino acids; A, C, G, T/U), such as X or N: 'unk' (default) reads "
    "each as the <unk> token and counts them on stderr; 'error' stops at the first, naming record and position."
)


def on_unknown_option(help: str = ON_UNKNOWN_HELP) -> Any:
    """``--on-unknown error|unk``, for every command that encodes the user's sequences; decorate the
    command with :func:`suggests_on_unknown` so that its errors point at the option."""
    return typer.Option("--on-unknown", help=help)


def suggests_on_unknown(command):
    """Decorator for a command with ``--on-unknown``: a non-standard letter's error then ends with the hint
    to use it (the engine's message alone does not, as not every command has the option)."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UnknownResidueError as exc:
            exc.hint = ON_UNKNOWN_HINT
            raise

    run.suggests_on_unknown = True  # tests/commands/test_input_errors.py checks every such command has it
    return run


DeviceOption = Annotated[Device, device_option()]
OnUnknownOption = Annotated[OnUnknown, on_unknown_option()]
SeedOption = Annotated[int, seed_option()]
ForceOption = Annotated[bool, typer.Option("--force", "-f", help="Replace --out if it exists.")]
TsvOutOption = Annotated[str, out_option("Output TSV (default: stdout).")]
# Genomic regions instead of FASTA arguments (commands/common.fasta_or_regions, engine/bio/regions).
RegionsOption = Annotated[
    str | None,
    typer.Option(
        "--regions",
        metavar="BED",
        help="Read the intervals of this BED file from --genome instead of FASTA arguments (0-based, half-open; "
        "column 4 names the record, else chrom:start-end; '-' in column 6 reads the reverse complement; '-' reads "
        "stdin). E.g. --regions promoters.bed --genome hg38.fa",
    ),
]
GenomeOption = Annotated[
    str | None,
    typer.Option(
        "--genome",
        metavar="FASTA",
        help="Genome FASTA (plain or bgzip) that --regions are read from, through its .fai index, never loaded "
        "whole; a missing index is built beside it, or in ~/.cache/obte/faidx where its directory is not writable. "
        "E.g. --genome GRCh38.fa.gz --regions peaks.bed",
    ),
]


def guard_new_output(path: Path, force: bool, inputs: tuple = ()) -> None:
    """The rule for ``--out`` directories: an existing one is replaced only with ``--force`` and only if obte
    wrote it, never one that is (or contains) an input of the run or the current directory; and the output
    is locked until the command ends, so a second run into it is refused. Checked before any work, so a long
    run cannot fail at the end (:func:`obte_cli.engine.core.directories.claim_output`)."""
    from obte_cli.commands.common import hold_until_the_command_ends
    from obte_cli.engine.core.directories import claim_output

    hold_until_the_command_ends(claim_output(path, force, inputs))


def lock_run_directory(path: Path) -> None:
    """Lock the directory a command fills in place (``pretrain -o``) until the command ends; a second run
    into it is refused in one line. Under torchrun only the first process takes it (the others share it)."""
    import os

    from obte_cli.commands.common import hold_until_the_command_ends
    from obte_cli.engine.core.directories import locked_output_directory

    if os.environ.get("RANK", "0") in ("0", ""):
        hold_until_the_command_ends(locked_output_directory(path))

"""Pieces every command shares: the stderr console, logging, error handling, output files.

Conventions (see README): results go to stdout or ``-o FILE`` (written atomically: a hidden partial
file, fsynced, then renamed), everything else — logs, progress — to stderr; a user mistake ends in one line
``error: <file>: <what>`` and exit code 1, never a traceback; usage errors exit 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn, TextIO

import typer
from rich.console import Console
from typer.core import TyperGroup

from obte_cli.engine.core.errors import ObteError
from obte_cli.engine.core.outputs import WRITE_ERRNOS, atomic_file, cannot_write

stderr_console = Console(stderr=True)
log = logging.getLogger("obte")


def setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    if stderr_console.is_terminal:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=stderr_console, show_path=False, show_time=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("obte: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


_held_until_the_end: list = []  # locks on the running command's outputs (see hold_until_the_command_ends)


def hold_until_the_command_ends(lock) -> None:
    """Release ``lock`` (an output lock, obte_cli.engine.core.locks) when the running command ends, however
    it ends; a process that dies releases it too."""
    _held_until_the_end.append(lock)


def _click_errors() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(usage errors, other click errors, aborts) of the click that Typer runs on (vendored as ``typer._click``
    in recent Typers) and of the click package, whichever a command raises."""
    import importlib

    modules = []
    for name in ("typer._click.exceptions", "typer.exceptions", "click.exceptions"):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            pass
    return tuple(
        tuple({getattr(m, kind) for m in modules if isinstance(getattr(m, kind, None), type)})
        for kind in ("UsageError", "ClickException", "Abort")
    )


class ObteGroup(TyperGroup):
    """Click group that turns user-facing errors into one line on stderr and exit code 1, and releases the
    command's output locks when it ends. A usage error is one line too, ``error: Invalid value for '--shard':
    ...`` and exit code 2, and a command's retired short options (:func:`options.old_short_options`) are read
    as their long names with a warning."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        usage_errors, click_errors, aborts = _click_errors()
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except usage_errors as exc:
            if type(exc).__name__ != "NoArgsIsHelpError":  # that one is the help, printed already
                typer.echo(f"error: {_one_line(exc.format_message())}{_help_hint(exc.ctx)}", err=True)
            sys.exit(exc.exit_code)
        except click_errors as exc:
            typer.echo(f"error: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except aborts:
            typer.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)  # Exit(n) comes back as n; a finished command as None

    def resolve_command(self, ctx, args):
        name, command, args = super().resolve_command(ctx, args)
        renamed = getattr(getattr(command, "callback", None), "old_short_options", None)
        if renamed:
            args = _read_old_short_options(command, args, renamed, f"{ctx.command_path} {name}")
        return name, command, args

    def get_command(self, ctx, cmd_name):
        from obte_cli.commands.help_layout import readable_help

        command = super().get_command(ctx, cmd_name)
        if command is not None:
            readable_help(command)  # reflowed, and plain below 110 columns
        return command

    def format_help(self, ctx, formatter):
        from obte_cli.commands.help_layout import readable_help

        readable_help(self)
        return super().format_help(ctx, formatter)

    def invoke(self, ctx):
        try:
            return self._invoke(ctx)
        finally:
            while _held_until_the_end:
                _held_until_the_end.pop().release()

    def _invoke(self, ctx):
        try:
            result = super().invoke(ctx)
        except ObteError as exc:
            flush_stdout()  # what was printed before the error; if that fails too, one error line is enough
            _fail(exc)
        except BrokenPipeError:  # `obte ... | head`: the reader left, nothing is wrong
            _discard_stdout()
            raise typer.Exit(0) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except OSError as exc:
            if exc.errno not in WRITE_ERRNOS:
                raise
            flush_stdout()
            _fail(cannot_write(exc.filename, exc) if exc.filename else ObteError(f"cannot write: {exc.strerror}"))
        error = flush_stdout()
        if isinstance(error, BrokenPipeError):
            raise typer.Exit(0)
        if error is not None:
            _fail(cannot_write(None, error))
        return result


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _help_hint(ctx) -> str:
    return f" (see '{ctx.command_path} -h')" if ctx is not None else ""


def _read_old_short_options(command, args: list[str], renamed: dict[str, str], where: str) -> list[str]:
    """``args`` with each retired short option of ``command`` (``-t DNA``, ``-tDNA``) spelled as its long
    name, and one warning per letter used. Option values and everything after ``--`` are left alone."""
    takes_value = {
        name
        for param in command.params
        if param.param_type_name == "option" and not param.is_flag and not param.count
        for name in param.opts
    }
    read, used, value_next = [], {}, False
    for position, arg in enumerate(args):
        if value_next:
            read.append(arg)
            value_next = False
            continue
        if arg == "--":
            read += args[position:]
            break
        letter = arg[:2]
        if letter in renamed and not arg.startswith("--"):
            long = renamed[letter]
            used[letter] = long
            read.append(long if arg == letter else f"{long}={arg[2:]}")
            value_next = arg == letter and long in takes_value
            continue
        read.append(arg)
        value_next = arg in takes_value
    for letter, long in used.items():
        typer.echo(f"warning: `{where} {letter}` is deprecated: write {long} (the letter goes next release)", err=True)
    return read


def _fail(exc: ObteError) -> NoReturn:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1) from None


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that what is still buffered cannot fail again at exit (Python would
    print 'Exception ignored ...' and exit 120)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError):  # no file descriptor (tests capture stdout in memory)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process


def flush_stdout() -> OSError | None:
    """Flush stdout now, while an error can still be one line; on failure stdout is discarded and the
    error returned."""
    try:
        sys.stdout.flush()
    except OSError as exc:
        _discard_stdout()
        return exc
    return None


def run_app(app: typer.Typer, prog_name: str) -> None:
    """Run the CLI. A write to stdout that fails outside any command (``obte --version > /dev/full``) or
    in the interpreter's final flush is one ``error:`` line and exit code 1 too."""
    try:
        app(prog_name=prog_name)
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS or isinstance(exc, BrokenPipeError):
            raise
        _discard_stdout()
        typer.echo(f"error: {cannot_write(None, exc)}", err=True)
        raise SystemExit(1) from None
    finally:
        error = flush_stdout()
        if error is not None and not isinstance(error, BrokenPipeError):
            typer.echo(f"error: {cannot_write(None, error)}", err=True)
            raise SystemExit(1)


class DefaultCommandGroup(ObteGroup):
    """A group whose first argument may be a subcommand or, if it is not one, the input of the default
    subcommand: ``obte embed seqs.fa ...`` runs ``obte embed sequences seqs.fa ...``, while
    ``obte embed probe-joint ...`` runs the probe. The subcommand goes in before the group reads its own
    options, so that ``obte embed --regions r.bed --genome g.fa ...`` or ``obte embed -m MODEL seqs.fa``
    reach the default subcommand's options."""

    default_command = "sequences"

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def new_app(help_text: str, cls: type = ObteGroup) -> typer.Typer:
    return typer.Typer(
        cls=cls,
        help=help_text,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
        rich_markup_mode="rich",
    )


@contextlib.contextmanager
def open_output(path: str | Path | None) -> Iterator[TextIO]:
    """Text output to stdout (None or ``-``) or to a file written atomically (see
    :mod:`obte_cli.engine.core.outputs`); a failed write is one ``error:`` line."""
    if path is None or str(path) == "-":
        try:
            yield sys.stdout
            sys.stdout.flush()
        except OSError as exc:
            if exc.errno not in WRITE_ERRNOS or isinstance(exc, BrokenPipeError):
                raise
            _discard_stdout()
            raise cannot_write(None, exc) from None
        return
    with atomic_file(path) as handle:
        yield handle


@contextlib.contextmanager
def training_progress(total_steps: int, label: str) -> Iterator:
    """Yield an ``on_step(record)`` callback that shows training progress on stderr.

    A rich progress bar (with the running loss) on a terminal; otherwise an INFO log line every 10% of
    the steps, so batch-job logs show progress without carriage-return noise. Silent with ``--quiet``.
    """
    if not log.isEnabledFor(logging.INFO):
        yield lambda record: None
        return
    if stderr_console.is_terminal:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=stderr_console, transient=True) as progress:
            task = progress.add_task(label, total=total_steps, loss="-")
            # ``completed`` from the record's own step: a resumed run starts part-way (step 8 of 9 is 8/9)
            yield lambda record: progress.update(task, completed=record["step"], loss=f"{record['loss']:.3f}")
        return
    every = max(1, total_steps // 10)

    def on_step(record: dict) -> None:
        step = record["step"]  # the run's own step, so a resumed run counts on from where it was
        if step % every == 0 or step == total_steps:
            log.info("%s: step %d/%d, loss %.3f", label, step, total_steps, record["loss"])

    yield on_step


def affinity_cv_report(data: Path, folds: int, homology_threshold: float | None):
    """Log lines and progress bars of a ΔG cross-validation run (`finetune affinity`, `bench pronab`)."""
    from obte_cli.engine.affinity.training import CVReport

    def encoded(encoded_table, context: int) -> None:
        cut = encoded_table.residues_cut
        if cut.any():
            log.info("cut the protein of %d complexes to fit the context of %d", int((cut > 0).sum()), context)

    def assigned(assignment, table) -> None:
        if homology_threshold is not None:
            log.info(
                "homology guard (BLOSUM62 score / smaller self-score ≥ %.2f): %d of %d proteins, %d of %d rows "
                "kept out of test folds",
                homology_threshold,
                assignment.guarded_proteins,
                len(assignment.plan.proteins),
                assignment.guarded_rows,
                len(table),
            )

    return CVReport(
        loaded=lambda table, dropped: log.info(
            "%s: %d complexes of %d proteins (dropped: %s)",
            data,
            len(table),
            table["protein"].nunique(),
            ", ".join(f"{k} {v}" for k, v in dropped.items() if v) or "none",
        ),
        encoded=encoded,
        assigned=assigned,
        progress=training_progress,
        fold_started=lambda f, n_train, n_test: log.info(
            "fold %d/%d: training on %d rows, testing %d", f + 1, folds, n_train, n_test
        ),
        fold_done=lambda f, m: log.info(
            "fold %d/%d: PCC %.3f, MAE %.3f kcal/mol on %d rows", f + 1, folds, m["pcc"], m["mae"], m["n"]
        ),
    )


class UnknownLetters:
    """Counts the letters outside the standard alphabets of the records a prediction command reads, and
    reports them on stderr at the end (``--on-unknown unk`` reads each as ``<unk>``)."""

    def __init__(self, on_unknown: str):
        from collections import Counter

        self.on_unknown = on_unknown
        self.letters: Counter = Counter()

    def count(self, segment) -> None:
        from obte_cli.engine.tokenizers.base import unknown_letters

        if self.on_unknown == "unk":
            self.letters.update(unknown_letters(segment))

    def report(self) -> None:
        if self.letters:
            shown = ", ".join(f"{letter} ×{n}" for letter, n in self.letters.most_common())
            log.warning("%d non-standard letters read as <unk>: %s", sum(self.letters.values()), shown)


class RegionInputs(list):
    """``--regions BED --genome FASTA`` in place of FASTA arguments (:func:`fasta_or_regions`): a list of the
    two paths, so that the checks that an output is not an input, or that stdin is read once, see them, and
    the regions (:class:`~obte_cli.engine.bio.regions.GenomeRegions`), which :func:`read_segments` reads."""

    def __init__(self, bed: str, genome: str, regions):
        super().__init__([bed, genome])
        self.bed, self.genome, self.regions = bed, genome, regions


def fasta_or_regions(inputs: list[str] | None, regions: str | None, genome: str | None) -> list[str]:
    """The FASTA arguments, or ``--regions/--genome`` as :class:`RegionInputs`: one or the other (usage
    errors otherwise, exit 2). The genome is indexed and the whole BED checked against it here, before any
    model is loaded, so that a mistake in either is found at once."""
    from obte_cli.engine.bio.regions import GenomeRegions

    if regions is None:
        if genome is not None:
            raise typer.BadParameter("needs --regions BED (the intervals to read from it)", param_hint="'--genome'")
        if not inputs:
            raise typer.BadParameter(
                "none given: give FASTA files, or --regions BED --genome FASTA", param_hint="'FASTA'"
            )
        return inputs
    if inputs:
        raise typer.BadParameter(
            f"reads the sequences from --genome: it cannot be combined with FASTA arguments ({inputs[0]})",
            param_hint="'--regions'",
        )
    if genome is None:
        raise typer.BadParameter("needs --genome FASTA (the genome to read them from)", param_hint="'--regions'")
    if genome == "-":
        raise typer.BadParameter("must be a file (it is read through its index), not stdin", param_hint="'--genome'")
    return RegionInputs(regions, genome, GenomeRegions(regions, genome, on_index=_log_index))


def count_records(inputs: list[str]) -> int | None:
    """How many records :func:`read_segments` will read from ``inputs``, for a progress bar: the regions of
    :class:`RegionInputs` (never the genome's records), else the FASTA records (None for stdin)."""
    from obte_cli.engine.bio.seqio import count_fasta_records

    return len(inputs.regions) if isinstance(inputs, RegionInputs) else count_fasta_records(inputs)


def _log_index(genome: Path, index) -> None:
    if index.built and not index.elsewhere:
        log.info("%s: building its index (once) → %s", genome, index.fai)
    elif index.built:
        log.info("%s: its directory is not writable: building its index in %s", genome, index.fai.parent)
    else:
        log.info("%s: its directory is not writable: using its index in %s", genome, index.fai.parent)


def read_segments(inputs: list[str], fixed, unknown: UnknownLetters, rank: int = 0, world_size: int = 1):
    """The records of the FASTA ``inputs`` as segments, of molecule type ``fixed`` or detected per record,
    counting the letters read as <unk>; under torchrun only this ``rank``'s share (every ``world_size``-th).

    ``inputs`` may be the :class:`RegionInputs` of ``--regions/--genome``: the BED's intervals, nucleic acids
    (DNA unless ``fixed`` names another nucleic type)."""
    from obte_cli.engine.bio.molecules import MOLECULE_TYPES, NUCLEIC
    from obte_cli.engine.bio.seqio import display_name, read_fasta

    if not isinstance(inputs, RegionInputs):
        return _segments(((display_name(p), read_fasta(p)) for p in inputs), fixed, unknown, rank, world_size)
    if fixed is not None and fixed.modality != NUCLEIC:
        raise typer.BadParameter(
            f"--regions reads nucleic acids from the genome, not {fixed.name}", param_hint="'--molecule-type'"
        )
    source = [(display_name(inputs.bed), inputs.regions)]
    return _segments(source, fixed or MOLECULE_TYPES["DNA"], unknown, rank, world_size)


def _segments(sources, fixed, unknown: UnknownLetters, rank: int, world_size: int):
    from obte_cli.engine.bio.molecules import detect_molecule_type
    from obte_cli.engine.tokenizers.base import Segment

    index = 0
    for name, records in sources:
        for record in records:
            if index % world_size == rank:
                mol = fixed or detect_molecule_type(record.sequence)
                segment = Segment(record.sequence, mol.name, record.id, name)
                unknown.count(segment)
                yield segment
            index += 1

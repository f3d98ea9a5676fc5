"""Pieces every command shares: the stderr console, logging, error handling, output files.

Conventions (see README): results go to stdout or ``-o FILE`` (written atomically: temp file, then
rename), everything else — logs, progress — to stderr; a user mistake ends in one line
``error: <file>: <what>`` and exit code 1, never a traceback; usage errors exit 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import typer
from rich.console import Console
from typer.core import TyperGroup

from obte_cli.engine.core.errors import ObteError

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


class ObteGroup(TyperGroup):
    """Click group that turns user-facing errors into one line on stderr and exit code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ObteError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except BrokenPipeError:  # `obte ... | head`: the reader left, nothing is wrong
            with contextlib.suppress(Exception):
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the final flush
            raise typer.Exit(0) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None


class DefaultCommandGroup(ObteGroup):
    """A group whose first argument may be a subcommand or, if it is not one, the input of the default
    subcommand: ``obte embed seqs.fa ...`` runs ``obte embed sequences seqs.fa ...``, while
    ``obte embed probe-joint ...`` runs the probe."""

    default_command = "sequences"

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default_command, *args]
        return super().resolve_command(ctx, args)


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
    """Text output to stdout (None or ``-``) or to a file written atomically."""
    if path is None or str(path) == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise ObteError(f"{path}: directory {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", newline="\n") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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
            yield lambda record: progress.update(task, advance=1, loss=f"{record['loss']:.3f}")
        return
    done = 0
    every = max(1, total_steps // 10)

    def on_step(record: dict) -> None:
        nonlocal done
        done += 1
        if done % every == 0 or done == total_steps:
            log.info("%s: step %d/%d, loss %.3f", label, done, total_steps, record["loss"])

    yield on_step

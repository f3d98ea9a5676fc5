"""The ``obte`` command: a Typer app whose subcommands live in :mod:`obte_cli.commands`.

Only commands that work are registered here. Heavy imports (torch, sentencepiece) happen inside the
commands, so ``obte --help`` stays fast.
"""

from __future__ import annotations

import os

import typer

from obte_cli import __version__
from obte_cli.commands import affinity as affinity_cmd
from obte_cli.commands import bench as bench_cmd
from obte_cli.commands import contacts as contacts_cmd
from obte_cli.commands import convert as convert_cmd
from obte_cli.commands import embed as embed_cmd
from obte_cli.commands import export as export_cmd
from obte_cli.commands import finetune as finetune_cmd
from obte_cli.commands import model as model_cmd
from obte_cli.commands import predict as predict_cmd
from obte_cli.commands import prep as prep_cmd
from obte_cli.commands import pretrain as pretrain_cmd
from obte_cli.commands import scan_jaspar as scan_jaspar_cmd
from obte_cli.commands import score as score_cmd
from obte_cli.commands import tokenize as tokenize_cmd
from obte_cli.commands.common import new_app, run_app, setup_logging

app = new_app(
    "obte: multi-omic biosequence transformers — one encoder for protein and nucleic-acid sequences.\n\n"
    "Results are written as TSV/FASTA to stdout or -o FILE; logs go to stderr."
)
app.add_typer(model_cmd.app, name="model")
app.add_typer(tokenize_cmd.app, name="tokenize")
app.add_typer(finetune_cmd.app, name="finetune")
app.command("affinity")(affinity_cmd.affinity)
app.add_typer(bench_cmd.app, name="bench")
app.command("prep")(prep_cmd.prep)
app.command("pretrain")(pretrain_cmd.pretrain)
app.command("scan-jaspar")(scan_jaspar_cmd.scan_jaspar)
app.command("score")(score_cmd.score)
app.command("predict")(predict_cmd.predict)
app.add_typer(embed_cmd.app, name="embed")
app.command("convert")(convert_cmd.convert)
app.command("export")(export_cmd.export)
app.add_typer(contacts_cmd.app, name="contacts")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"obte {__version__}")
        raise typer.Exit()


# oneDNN (torch's CPU kernels) compiles and caches a kernel for every new input shape (up to 1,024 of them),
# and the memory they hold is not given back: over a file of variable-length records, `obte embed` grew by
# ~14 KiB per record (335 → 665 MiB over 24,000 records with the micro model; #31 §3). Prediction commands
# meet a new shape at nearly every batch, so the cache buys them nothing: it is off for them (measured: the
# same speed, 1,500 records with the default backbone in 84 s against 86 s, and memory flat). Training
# repeats its shapes and keeps it. A value the user sets in the environment wins.
KERNEL_CACHE_VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
PREDICTION_COMMANDS = frozenset({"embed", "score", "predict", "affinity", "contacts", "scan-jaspar"})


@app.callback()
def _global_options(
    context: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debugging detail to stderr."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Log only warnings and errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    setup_logging(verbose, quiet)
    if context.invoked_subcommand in PREDICTION_COMMANDS:
        os.environ.setdefault(KERNEL_CACHE_VARIABLE, "0")  # before torch runs its first kernel


def main() -> None:
    run_app(app, prog_name="obte")


if __name__ == "__main__":
    main()

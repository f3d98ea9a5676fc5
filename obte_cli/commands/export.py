"""``obte export``: a model directory in another library's format (``--format hf``: Hugging Face ESM)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from obte_cli.commands.common import log
from obte_cli.commands.options import (
    BACKBONE_DEFAULT_HELP,
    ForceOption,
    StrChoice,
    backbone_or_default,
    guard_new_output,
    out_option,
)


class ExportFormat(StrChoice):
    """obte_cli.engine.model.hf_export.FORMATS"""

    hf = "hf"


def export(
    model_dir: Path = typer.Argument(None, help=f"obte model directory to export {BACKBONE_DEFAULT_HELP}."),
    out: Annotated[Path, out_option("Directory to write (config.json, model.safetensors, vocab.txt, ...).")] = ...,
    export_format: ExportFormat = typer.Option(
        ExportFormat.hf,
        "--format",
        help="hf: a Hugging Face transformers ESM model (EsmForMaskedLM, AutoModel, AutoTokenizer; no remote code).",
    ),
    force: ForceOption = False,
) -> None:
    """Export a model for another library: with --format hf, a directory that Hugging Face transformers loads
    as an ESM model (EsmForMaskedLM, AutoModel, AutoConfig, AutoTokenizer) with no remote code.

    Hidden states are obte's; logits are obte's to a relative ~1e-7 (see the README.md it writes).

    Amino acids are upper-case tokens, nucleotides lower-case: tokenizer("MKV") for a protein,
    tokenizer("<DNA>acgt<eos>", add_special_tokens=False) for DNA.

    Example: [bold]obte export --format hf -o esm-obte[/bold] (the bundled backbone)
    """
    from obte_cli.engine.model.hf_export import export_hf

    model_dir = backbone_or_default(model_dir)
    guard_new_output(out, force, inputs=(model_dir,))
    result = export_hf(model_dir, out)
    log.info(
        "%s → %s: Hugging Face ESM model (%d tokens; nucleotides lower-case, amino acids upper-case; see %s/README.md)",
        model_dir,
        result.path,
        len(result.vocabulary),
        result.path,
    )
    for note in result.notes:
        log.info("%s: %s", model_dir, note)

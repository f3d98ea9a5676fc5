"""``obte convert``: a released OmniBioTE checkpoint → an obte model directory, without running its pickle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from obte_cli.commands.common import log
from obte_cli.commands.options import (
    MAX_HEADS,
    ForceOption,
    count_option,
    guard_new_output,
    out_option,
    usage_error,
)


def convert(
    checkpoint: Path = typer.Argument(
        ..., help="OmniBioTE .pt file (a pickled OmniBioTA / OmniBindER module, or a state dict)."
    ),
    out: Annotated[Path, out_option("Model directory to write.")] = ...,
    tokenizer: list[Path] = typer.Option(
        None,
        "--tokenizer",
        "-t",
        help="Tokenizer: for 4,096-id (v2 BPE) models the nucleic then the protein sentencepiece model "
        "(genbank-2k, uniref-2k); default: the bundled mixed BPE for 65,536 ids, the reference characters for 49.",
    ),
    n_heads: int = count_option(
        0,
        "--n-heads",
        low=0,
        high=MAX_HEADS,
        help="Attention heads. Needed only for a state dict saved without its freqs_cis buffers (the head count "
        "is read from the weights: freqs_cis holds head_size/2 columns, and whole modules record n_head per "
        "attention layer; v1 files' config always says 12 and is not trusted). A value the weights contradict "
        "is refused.",
        show_default=False,
    ),
    force: ForceOption = False,
) -> None:
    """Convert a released OmniBioTE checkpoint, reading it with a restricted unpickler (nothing in it runs).

    The result works with every command's --model (embed, pretrain --init, finetune; ΔG models with
    affinity and scan-jaspar).

    Example: [bold]obte convert omnibinder-XL.pt -o models/omnibinder-xl -t genbank-2k.model -t uniref-2k.model[/bold]
    """
    from obte_cli.engine.core.errors import InputError
    from obte_cli.engine.model.directory import save_model
    from obte_cli.engine.model.omnibiote_convert import convert as convert_checkpoint
    from obte_cli.engine.model.omnibiote_convert import extract, read_checkpoint

    if tokenizer and len(tokenizer) > 2:
        raise usage_error(f"takes one file, or two (nucleic then protein); got {len(tokenizer)}", "--tokenizer")
    if checkpoint.is_dir():
        raise InputError(f"{checkpoint}: is a directory, not a checkpoint file")
    if not checkpoint.is_file():
        raise InputError(f"{checkpoint}: " + ("not a regular file" if checkpoint.exists() else "no such file"))
    guard_new_output(out, force, inputs=(checkpoint,))
    converted = convert_checkpoint(
        extract(read_checkpoint(checkpoint), str(checkpoint)), list(tokenizer or []), str(checkpoint), n_heads or None
    )
    save_model(
        out,
        converted.model,
        converted.tokenizer,
        head=converted.head,
        head_state=converted.head_state,
        metadata=converted.metadata,
        overwrite=force,
    )
    for note in converted.notes:
        log.info("%s: %s", checkpoint, note)
    c = converted.model.config
    log.info(
        "%s: %s, width %d, %d layers, %d heads, vocabulary %d, RoPE %s%s → %s",
        checkpoint,
        converted.metadata["layout"],
        c.width,
        c.n_layers,
        c.n_heads,
        c.vocab_size,
        c.rope,
        ", ΔG head" if converted.head else "",
        out,
    )

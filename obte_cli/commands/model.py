"""``obte model``: create and inspect model directories."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from obte_cli.commands.common import log, new_app, open_output
from obte_cli.commands.options import (
    MAX_CONTEXT,
    MAX_HEADS,
    MAX_LAYERS,
    MAX_WIDTH,
    MIN_CONTEXT,
    ForceOption,
    Preset,
    TsvOutOption,
    context_check,
    count_option,
    guard_new_output,
    old_short_options,
    out_option,
    seed_option,
    usage_error,
)

app = new_app("Create and inspect obte model directories (config.json + model.safetensors + tokenizer).")

PRESET_HELP = (
    "Architecture preset: micro (tests; CPU fine-tuning from scratch), tiny (CPU), small, medium, large, xl "
    "(see `obte model presets`)."
)


@app.command("init")
@old_short_options({"-p": "--preset"})
def init(
    out: Annotated[Path, out_option("Model directory to create.")] = ...,
    preset: Preset = typer.Option(Preset.tiny, "--preset", help=PRESET_HELP),
    tokenizer: str = typer.Option(
        "residue",
        "--tokenizer",
        "-t",
        help=(
            "Bundled tokenizer name (residue, omnibiote-mixed), a tokenizer/model directory, or a sentencepiece "
            ".model file."
        ),
    ),
    context: int = typer.Option(
        0,
        "--context",
        min=0,
        max=MAX_CONTEXT,
        callback=context_check,
        show_default="auto",
        help=f"Longest context in tokens, at least {MIN_CONTEXT} (0: 2048 for residue, 1024 for BPE tokenizers).",
    ),
    width: int = count_option(
        0,
        "--width",
        low=0,
        high=MAX_WIDTH,
        show_default="the preset's",
        help="Model width instead of the preset's (0: the preset's).",
    ),
    layers: int = count_option(
        0,
        "--layers",
        low=0,
        high=MAX_LAYERS,
        show_default="the preset's",
        help="Number of blocks instead of the preset's (0: the preset's).",
    ),
    heads: int = count_option(
        0,
        "--heads",
        low=0,
        high=MAX_HEADS,
        show_default="the preset's",
        help="Attention heads instead of the preset's (0: the preset's); must divide the width.",
    ),
    seed: Annotated[int, seed_option("Random seed of the μP initialisation.")] = 0,
    force: ForceOption = False,
) -> None:
    """Create a freshly initialised (untrained) model directory from a preset, optionally reshaped.

    Example: [bold]obte model init --preset tiny -o models/tiny[/bold]
    (a deeper tiny: [bold]obte model init --preset tiny --layers 8 -o models/tiny-8[/bold])
    """
    import torch

    from obte_cli.engine.core.errors import InputError
    from obte_cli.engine.core.schema import SchemaError
    from obte_cli.engine.model.directory import save_model
    from obte_cli.engine.model.encoder import (
        ObteModel,
        padded_vocab_size,
        preset_config,
    )
    from obte_cli.engine.tokenizers.loading import load_tokenizer

    preset = preset.value
    guard_new_output(out, force)
    tok = load_tokenizer(tokenizer)
    context = context or (2048 if tok.kind == "residue" else 1024)
    if context < 8:
        raise InputError("--context must be at least 8 tokens")
    shape = {k: v for k, v in (("width", width), ("n_layers", layers), ("n_heads", heads)) if v}
    try:
        config = preset_config(preset, padded_vocab_size(tok.vocab_size), max_positions=context, **shape)
    except SchemaError as exc:
        raise usage_error(str(exc), "--width", "--heads") from None
    torch.manual_seed(seed)
    model = ObteModel(config)
    metadata = {"preset": preset, "seed": seed, "created_by": "obte model init", "trained": False}
    if shape:
        metadata["shape"] = {"width": config.width, "n_layers": config.n_layers, "n_heads": config.n_heads}
    save_model(out, model, tok, metadata=metadata, overwrite=force)
    log.info(
        "wrote %s: preset %s (width %d, %d layers, %d heads), %s non-embedding parameters, %s tokenizer (%d ids)",
        out,
        preset,
        config.width,
        config.n_layers,
        config.n_heads,
        f"{model.num_parameters():,}",
        tok.kind,
        tok.vocab_size,
    )


@app.command("info")
def info(
    model_dir: Path | None = typer.Argument(
        None,
        help="Model directory, or a ΔG ensemble or composition model (`obte affinity --model`). Default: the "
        "bundled pretrained backbone, the model every command uses without --model.",
        show_default=False,
    ),
    out: TsvOutOption = "-",
) -> None:
    """Validate a model directory and print its description as a two-column TSV (key, value).

    What it is (name, the first line of its model card), how it was made (trained: true, false or unknown;
    training: pretrained, fine-tuned, converted or initialised, from its config), its architecture and
    tokenizer; for a ΔG ensemble, its members and cross-validated PCC and MAE.

    Example: [bold]obte model info[/bold] (the default backbone) or [bold]obte model info models/tiny[/bold]
    """
    from obte_cli.engine.affinity.description import describe_affinity_model, is_affinity_model_directory
    from obte_cli.engine.core.errors import InputError
    from obte_cli.engine.core.outputs import refuse_same_file
    from obte_cli.engine.core.resources import default_backbone_dir
    from obte_cli.engine.model.description import describe_model

    if model_dir is None:
        model_dir = default_backbone_dir()
        if model_dir is None:
            raise InputError("this installation has no bundled backbone: give a model directory")
    refuse_same_file([("--out", out)], [model_dir])
    rows = describe_affinity_model(model_dir) if is_affinity_model_directory(model_dir) else describe_model(model_dir)
    with open_output(out) as handle:
        handle.write("key\tvalue\n")
        for key, value in rows:
            handle.write(f"{key}\t{value}\n")


@app.command("presets")
def presets(out: TsvOutOption = "-") -> None:
    """List the architecture presets with their shapes and parameter counts.

    Example: [bold]obte model presets[/bold]
    """
    from obte_cli.engine.model.encoder import (
        PRESETS,
        non_embedding_parameters,
        preset_config,
    )

    with open_output(out) as handle:
        handle.write("preset\twidth\tn_layers\tn_heads\thead_dim\tnon_embedding_parameters\n")
        for name in PRESETS:
            c = preset_config(name, vocab_size=64)
            handle.write(f"{name}\t{c.width}\t{c.n_layers}\t{c.n_heads}\t{c.head_dim}\t{non_embedding_parameters(c)}\n")

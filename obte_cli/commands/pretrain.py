"""``obte pretrain``: masked-LM pretraining, on one process or under torchrun (DDP / FSDP2)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from obte_cli.commands.common import log, training_progress
from obte_cli.commands.options import (
    MAX_CONTEXT,
    MAX_EVAL_ROWS,
    MAX_ROWS,
    MAX_STEPS,
    MIN_CONTEXT,
    Device,
    DeviceOption,
    Modality,
    Optimizer,
    Preset,
    context_check,
    count_option,
    lock_run_directory,
    number_in,
    old_short_options,
    out_option,
    seed_option,
    token_count,
    token_count_check,
    usage_error,
)


def parse_count(text: str, option: str) -> int:
    """``250M``, ``1.5B``, ``1e9`` or ``16384`` → an integer (see options.token_count)."""
    return token_count(text, option)


def _one_held_out_set(eval_tokens: Path | None, holdout: float) -> None:
    if eval_tokens is not None and holdout:
        raise usage_error("two ways to score held-out data: give --eval-tokens or --holdout", "--holdout")


@old_short_options({"-p": "--preset"})
def pretrain(
    tokens: Path = typer.Option(..., "--tokens", help="Token directory from `obte tokenize corpus`."),
    out: Annotated[Path, out_option("Run directory: checkpoints/, metrics.jsonl, loss.png, model/.")] = ...,
    preset: Preset = typer.Option(
        Preset.tiny, "--preset", help="Architecture preset for a fresh model (see `obte model presets`)."
    ),
    init: Path = typer.Option(None, "--init", help="Start from this model directory instead of a fresh preset."),
    context: int = typer.Option(
        0,
        "--context",
        min=0,
        max=MAX_CONTEXT,
        callback=context_check,
        show_default="auto",
        help=f"Tokens per row, at least {MIN_CONTEXT} (0: 2048 for the residue tokenizer, 1024 for BPE).",
    ),
    batch_tokens: str = typer.Option(
        "16384",
        "--batch-tokens",
        callback=token_count_check("--batch-tokens"),
        help="Tokens per optimizer step over all processes (paper: ~1M).",
    ),
    micro_batch_rows: int = count_option(
        4, "--micro-batch-rows", low=1, high=MAX_ROWS, help="Rows per forward/backward per process (memory)."
    ),
    total_tokens: str = typer.Option(
        "2M", "--total-tokens", callback=token_count_check("--total-tokens"), help="Token budget, e.g. 2M, 250B."
    ),
    warmup_tokens: str = typer.Option(
        "0",
        "--warmup-tokens",
        callback=token_count_check("--warmup-tokens", zero=True),
        help="Warm-up in tokens (0: auto, 5% of the budget; a resumed run keeps its own; paper: 1B).",
    ),
    lr: float = typer.Option(
        0.01,
        "--lr",
        callback=number_in(0),
        help="Base LR: embeddings, norms, readout; hidden matrices get LR·32/width.",
    ),
    optimizer: Optimizer = typer.Option(
        Optimizer.auto,
        "--optimizer",
        help=(
            "muon (Muon for hidden matrices, AdamW for the rest; not with --fsdp), adamw (μP AdamW everywhere), "
            "or auto: muon, adamw under --fsdp."
        ),
    ),
    muon_lr: float = typer.Option(
        0.02, "--muon-lr", callback=number_in(0), help="LR of the Muon hidden matrices (no width factor)."
    ),
    mask_rate: float = typer.Option(
        0.15,
        "--mask-rate",
        callback=number_in(0, 1, low_open=True, high_open=True),
        help="Fraction of residue tokens masked in training (held-out scoring always masks 15%).",
    ),
    modality: Modality = typer.Option(
        Modality.omni, "--modality", help="omni (OmniBioTE), protein (ProtBioTE) or nucleic (NucBioTE) data."
    ),
    fsdp: bool = typer.Option(False, "--fsdp", help="Shard parameters and optimizer state over processes (FSDP2)."),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue from the latest checkpoint in --out, exactly; a new --total-tokens re-targets the LR decay.",
    ),
    checkpoint_every: int = count_option(
        100, "--checkpoint-every", low=1, high=MAX_STEPS, help="Steps between checkpoints (and held-out scoring)."
    ),
    holdout: float = typer.Option(
        0.0,
        "--holdout",
        callback=number_in(0, 0.5, high_open=True),
        help="Fraction of the corpus (chunks of --context tokens) never trained on; scored at every checkpoint.",
    ),
    eval_rows: int = count_option(
        64, "--eval-rows", low=0, high=MAX_EVAL_ROWS, help="Held-out rows scored at each checkpoint (at most)."
    ),
    eval_tokens: Path = typer.Option(
        None,
        "--eval-tokens",
        help=(
            "Held-out token directory (same tokenizer, never trained on), scored at each checkpoint instead of "
            "--holdout."
        ),
    ),
    peak_tflops: float = typer.Option(
        0.0,
        "--peak-tflops",
        callback=number_in(0),
        show_default="none: no MFU",
        help="Peak TFLOP/s per process, to report MFU (0: do not report).",
    ),
    seed: Annotated[int, seed_option("Seed of initialisation, data order and masking.")] = 0,
    device: DeviceOption = Device.auto,
) -> None:
    """Pretrain an encoder with the masked-LM objective (μP, AdamW, OneCycleLR with token warm-up).

    Launch on several processes with [bold]torchrun --no-python --nproc-per-node N obte pretrain ...[/bold]
    (gloo on CPU, nccl on GPU). Writes metrics.jsonl (step, tokens, loss, masked_accuracy and per
    modality protein_accuracy / nucleic_accuracy, lr, tokens_per_s[, mfu]; with --holdout also
    heldout_loss / heldout_accuracy ... at checkpoints), checkpoints/ every --checkpoint-every steps,
    and at the end model/ (a model directory) and loss.png.

    Example: [bold]obte pretrain --tokens tokens/ --preset tiny --total-tokens 5M -o runs/tiny[/bold]
    """
    from obte_cli.engine.core.devices import resolve_device
    from obte_cli.engine.core.errors import InputError
    from obte_cli.engine.pretraining.distributed import barrier, init_distributed, shutdown
    from obte_cli.engine.pretraining.loop import PretrainSettings, resume_warmup_tokens
    from obte_cli.engine.pretraining.loop import pretrain as run_pretraining
    from obte_cli.engine.pretraining.run import export_model, open_corpora, starting_model

    _one_held_out_set(eval_tokens, holdout)
    lock_run_directory(out)  # a second run into it is refused while this one runs
    if out.exists() and not resume and (out / "checkpoints").exists():
        raise InputError(f"{out}: holds a run already (use --resume to continue it, or another --out)")
    corpus, eval_corpus = open_corpora(tokens, eval_tokens, holdout)
    model, context = starting_model(corpus, preset.value, init, context, seed)
    total = parse_count(total_tokens, "--total-tokens")
    # auto (0): 5% of the budget, or the resumed run's own warm-up (a new budget must not move a past warm-up)
    warmup = token_count(warmup_tokens, "--warmup-tokens", zero=True) or (resume and resume_warmup_tokens(out))
    warmup = warmup or total // 20
    settings = PretrainSettings(
        context=context,
        batch_tokens=parse_count(batch_tokens, "--batch-tokens"),
        micro_batch_rows=micro_batch_rows,
        total_tokens=total,
        warmup_tokens=warmup,
        lr=lr,
        mask_rate=mask_rate,
        optimizer=("adamw" if fsdp else "muon") if optimizer is Optimizer.auto else optimizer.value,
        muon_lr=muon_lr,
        modality=modality.value,
        seed=seed,
        checkpoint_every=checkpoint_every,
        fsdp=fsdp,
        holdout=holdout,
        eval_rows=eval_rows,
        eval_tokens=str(eval_tokens) if eval_tokens is not None else "",
    )
    processes = init_distributed(resolve_device(device))
    if not processes.is_main:
        log.setLevel("WARNING")
    try:
        _log_start(processes, settings, corpus, out, resume)
        peak_flops = peak_tflops * 1e12 if peak_tflops else None
        with training_progress(settings.total_steps, "pretrain") as on_step:
            result = run_pretraining(model, corpus, settings, out, processes, resume, peak_flops, on_step, eval_corpus)
        summary = export_model(result, corpus, settings, out, processes, preset.value if init is None else None)
        if summary is not None:
            _report(summary)
        # The other ranks wait here while rank 0 writes the model: a gloo rank that tears its process
        # group down while a peer still holds connections to it can abort ("terminate called without
        # an active exception"), failing a run whose work is done.
        barrier(processes)
    finally:
        shutdown(processes)


def _log_start(processes, settings, corpus, out: Path, resume: bool) -> None:
    """The run's shape on stderr, and a changed budget on resume."""
    from obte_cli.engine.pretraining.loop import resume_budget_change

    log.info(
        "%d processes, %s; %d steps of %d rows × %d tokens; %s tokens per epoch",
        processes.world_size,
        processes.device,
        settings.total_steps,
        settings.rows_per_step,
        settings.context,
        f"{corpus.manifest['tokens']:,}",
    )
    change = resume_budget_change(out, settings) if resume else None
    if change is not None:
        at_step, before, after = change
        message = "--total-tokens changed from %s to %s: the LR decay is re-targeted from step %d on"
        log.info(message, f"{before:,}", f"{after:,}", at_step)


def _report(summary) -> None:
    """The run's last loss, its final masked accuracies beside the unigram baselines, and the held-out scores."""
    last, baselines = summary.last, summary.baselines
    log.info(
        "step %d: loss %.3f; masked accuracy over the last %d steps: %s; wrote %s",
        last["step"],
        last["loss"],
        summary.accuracies["steps"],
        ", ".join(
            f"{name} {value:.3f} (unigram {baselines[name]:.3f})"
            for name, value in summary.accuracies.items()
            if name != "steps" and value is not None and baselines.get(name) is not None
        ),
        summary.model_dir,
    )
    if "heldout_masked_accuracy" not in last:
        return
    log.info(
        "held-out rows: loss %.3f, masked accuracy %s",
        last["heldout_loss"],
        ", ".join(
            f"{name} {last[key]:.3f}"
            for name, key in (
                ("all", "heldout_masked_accuracy"),
                ("protein", "heldout_protein_accuracy"),
                ("nucleic", "heldout_nucleic_accuracy"),
            )
            if last.get(key) is not None
        ),
    )
    log.info(
        "held-out bits per residue: %s",
        ", ".join(
            f"{name} {last[f'heldout_{name}_bits_per_residue']:.3f} (perplexity "
            f"{2 ** last[f'heldout_{name}_bits_per_residue']:.2f})"
            for name in ("protein", "nucleic")
            if last.get(f"heldout_{name}_bits_per_residue") is not None
        ),
    )

"""``obte pretrain``: masked-LM pretraining, on one process or under torchrun (DDP / FSDP2)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from obte_cli.commands.common import log, training_progress
from obte_cli.commands.options import (
    MAX_CONTEXT,
    Device,
    DeviceOption,
    Modality,
    Preset,
    number_in,
    out_option,
    seed_option,
)

_SUFFIXES = {"k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9, "t": 1e12}


def parse_count(text: str, option: str) -> int:
    """``250M``, ``1.5B``, ``1e9`` or ``16384`` → an integer."""
    from obte_cli.engine.core.errors import InputError

    cleaned = text.strip().lower().replace("_", "").replace(",", "")
    scale = 1.0
    if cleaned and cleaned[-1] in _SUFFIXES:
        scale, cleaned = _SUFFIXES[cleaned[-1]], cleaned[:-1]
    try:
        value = int(float(cleaned) * scale)
    except ValueError:
        raise InputError(f"{option}: {text!r} is not a count (e.g. 16384, 250M, 1.5B)") from None
    if value < 1:
        raise InputError(f"{option} must be positive (got {text!r})")
    return value


def pretrain(
    tokens: Path = typer.Option(..., "--tokens", help="Token directory from `obte tokenize corpus`."),
    out: Annotated[Path, out_option("Run directory: checkpoints/, metrics.jsonl, loss.png, model/.")] = ...,
    preset: Preset = typer.Option(
        Preset.tiny, "--preset", "-p", help="Architecture preset for a fresh model (see `obte model presets`)."
    ),
    init: Path = typer.Option(None, "--init", help="Start from this model directory instead of a fresh preset."),
    context: int = typer.Option(
        0, "--context", min=0, max=MAX_CONTEXT, help="Tokens per row (0: 2048 for the residue tokenizer, 1024 for BPE)."
    ),
    batch_tokens: str = typer.Option(
        "16384", "--batch-tokens", help="Tokens per optimizer step over all processes (paper: ~1M)."
    ),
    micro_batch_rows: int = typer.Option(
        4, "--micro-batch-rows", min=1, help="Rows per forward/backward per process (memory)."
    ),
    total_tokens: str = typer.Option("2M", "--total-tokens", help="Token budget, e.g. 2M, 250B."),
    warmup_tokens: str = typer.Option(
        "0", "--warmup-tokens", help="Warm-up in tokens (0: 5% of the budget; paper: 1B)."
    ),
    lr: float = typer.Option(
        0.01,
        "--lr",
        callback=number_in(0),
        help="Base LR: embeddings, norms, readout; hidden matrices get LR·32/width.",
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
    checkpoint_every: int = typer.Option(
        100, "--checkpoint-every", min=1, help="Steps between checkpoints (and held-out scoring)."
    ),
    holdout: float = typer.Option(
        0.0,
        "--holdout",
        callback=number_in(0, 0.5, high_open=True),
        help="Fraction of the corpus (chunks of --context tokens) never trained on; scored at every checkpoint.",
    ),
    eval_rows: int = typer.Option(64, "--eval-rows", min=0, help="Held-out rows scored at each checkpoint (at most)."),
    eval_tokens: Path = typer.Option(
        None,
        "--eval-tokens",
        help=(
            "Held-out token directory (same tokenizer, never trained on), scored at each checkpoint instead of "
            "--holdout."
        ),
    ),
    peak_tflops: float = typer.Option(
        0.0, "--peak-tflops", callback=number_in(0), help="Peak TFLOP/s per process, to report MFU (0: do not report)."
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
    import torch

    from obte_cli.engine.core.devices import resolve_device
    from obte_cli.engine.core.errors import InputError
    from obte_cli.engine.model.directory import load_model, save_model
    from obte_cli.engine.model.encoder import (
        ObteModel,
        padded_vocab_size,
        preset_config,
    )
    from obte_cli.engine.pretraining.distributed import barrier, init_distributed, shutdown
    from obte_cli.engine.pretraining.loop import PretrainSettings, resume_budget_change, unigram_baselines
    from obte_cli.engine.pretraining.loop import pretrain as run_pretraining
    from obte_cli.engine.pretraining.token_files import open_corpus

    preset, modality = preset.value, modality.value
    if out.exists() and not resume and (out / "checkpoints").exists():
        raise InputError(f"{out}: holds a run already (use --resume to continue it, or another --out)")
    corpus = open_corpus(tokens)
    tokenizer = corpus.tokenizer
    eval_corpus = None
    if eval_tokens is not None:
        if holdout:
            raise InputError("--eval-tokens and --holdout are two ways to score held-out data: give one")
        eval_corpus = open_corpus(eval_tokens)
        if eval_corpus.tokenizer.to_config() != tokenizer.to_config():
            raise InputError(f"{eval_tokens}: was tokenized with another tokenizer than {tokens}")
    if init is not None:
        loaded = load_model(init)
        if loaded.tokenizer.to_config() != tokenizer.to_config():
            raise InputError(f"{init}: its tokenizer differs from the one {tokens} was tokenized with")
        model = loaded.model
        context = context or model.config.max_positions
    else:
        context = context or (2048 if tokenizer.kind == "residue" else 1024)
        torch.manual_seed(seed)
        model = ObteModel(preset_config(preset, padded_vocab_size(tokenizer.vocab_size), max_positions=context))
    if context > model.config.max_positions:
        raise InputError(f"--context {context} exceeds the model's {model.config.max_positions} positions")
    total = parse_count(total_tokens, "--total-tokens")
    warmup = (
        parse_count(warmup_tokens, "--warmup-tokens") if warmup_tokens.strip() not in ("0", "") else max(1, total // 20)
    )
    settings = PretrainSettings(
        context=context,
        batch_tokens=parse_count(batch_tokens, "--batch-tokens"),
        micro_batch_rows=micro_batch_rows,
        total_tokens=total,
        warmup_tokens=warmup,
        lr=lr,
        modality=modality,
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
        log.info(
            "%d processes, %s; %d steps of %d rows × %d tokens; %s tokens per epoch",
            processes.world_size,
            processes.device,
            settings.total_steps,
            settings.rows_per_step,
            context,
            f"{corpus.manifest['tokens']:,}",
        )
        change = resume_budget_change(out, settings) if resume else None
        if change is not None:
            at_step, before, after = change
            log.info(
                "--total-tokens changed from %s to %s: the LR decay is re-targeted from step %d on",
                f"{before:,}",
                f"{after:,}",
                at_step,
            )
        with training_progress(settings.total_steps, "pretrain") as on_step:
            result = run_pretraining(
                model,
                corpus,
                settings,
                out,
                processes,
                resume,
                peak_tflops * 1e12 if peak_tflops else None,
                on_step,
                eval_corpus,
            )
        final_state = _full_state_dict(result.model, settings.fsdp)
        if processes.is_main and result.history:
            last = result.history[-1]
            baselines = unigram_baselines(corpus)
            if modality != "omni":  # the control trains on one modality: its baseline is that modality's
                baselines = {modality: baselines[modality], "all": baselines[modality]}
            summary = _final_accuracies(result.history)
            export = ObteModel(model.config) if settings.fsdp else result.model.to("cpu")
            export.load_state_dict(final_state)
            save_model(
                out / "model",
                export,
                tokenizer,
                overwrite=True,
                metadata={
                    "pretraining": {
                        **settings.to_dict(),
                        "tokens_seen": last["tokens"],
                        "final_loss": last["loss"],
                        "final_masked_accuracy": summary,
                        "unigram_baselines": baselines,
                        "heldout": {k: v for k, v in last.items() if k.startswith("heldout_")},
                        "processes": processes.world_size,
                        "corpus": str(tokens),
                    },
                    "preset": preset if init is None else None,
                },
            )
            _plot(out, baselines)
            log.info(
                "step %d: loss %.3f; masked accuracy over the last %d steps: %s; wrote %s",
                last["step"],
                last["loss"],
                summary["steps"],
                ", ".join(
                    f"{name} {value:.3f} (unigram {baselines[name]:.3f})"
                    for name, value in summary.items()
                    if name != "steps" and value is not None and baselines.get(name) is not None
                ),
                out / "model",
            )
            if "heldout_masked_accuracy" in last:
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
        # The other ranks wait here while rank 0 writes the model: a gloo rank that tears its process
        # group down while a peer still holds connections to it can abort ("terminate called without
        # an active exception"), failing a run whose work is done.
        barrier(processes)
    finally:
        shutdown(processes)


def _full_state_dict(model, fsdp: bool) -> dict:
    """The unsharded model weights (every rank must call this under FSDP: it gathers)."""
    if not fsdp:
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
    )

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def _final_accuracies(history: list[dict]) -> dict:
    """Masked accuracy over the last 5% of steps (at least 1): one step's masked tokens are too few to quote."""
    tail = history[-max(1, len(history) // 20) :]

    def mean(key: str) -> float | None:
        values = [r[key] for r in tail if r.get(key) is not None]
        return sum(values) / len(values) if values else None

    return {
        "steps": len(tail),
        "all": mean("masked_accuracy"),
        "protein": mean("protein_accuracy"),
        "nucleic": mean("nucleic_accuracy"),
    }


def _plot(out: Path, baselines: dict) -> None:
    import json

    from obte_cli.engine.core.plots import training_curves

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    training_curves(records, out / "loss.png", title=f"obte pretrain: {out.name}", baselines=baselines)

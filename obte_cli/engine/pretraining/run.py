"""A pretraining run around its loop (:func:`obte_cli.engine.pretraining.loop.pretrain`): what it starts from
(the token corpora, a fresh or given model) and what it leaves (the weights gathered from every process, the
final model directory ``model/`` and the loss curve ``loss.png``), as torchtitan's trainer does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from obte_cli.engine.core.errors import InputError
from obte_cli.engine.model.directory import load_model, save_model
from obte_cli.engine.model.encoder import ObteModel, padded_vocab_size, preset_config
from obte_cli.engine.pretraining.distributed import DistributedContext
from obte_cli.engine.pretraining.loop import PretrainResult, PretrainSettings, unigram_baselines
from obte_cli.engine.pretraining.token_files import TokenCorpus, open_corpus


def open_corpora(tokens: Path, eval_tokens: Path | None = None, holdout: float = 0.0):
    """The training corpus and the held-out one (``eval_tokens``, tokenized like ``tokens``), or None."""
    corpus = open_corpus(tokens)
    if eval_tokens is None:
        return corpus, None
    if holdout:
        raise InputError("--eval-tokens and --holdout are two ways to score held-out data: give one")
    eval_corpus = open_corpus(eval_tokens)
    if eval_corpus.tokenizer.to_config() != corpus.tokenizer.to_config():
        raise InputError(f"{eval_tokens}: was tokenized with another tokenizer than {tokens}")
    return corpus, eval_corpus


def starting_model(
    corpus: TokenCorpus, preset: str, init: Path | None = None, context: int = 0, seed: int = 0
) -> tuple[ObteModel, int]:
    """The model a run starts from and its row length in tokens: the model directory ``init`` (same tokenizer
    as the corpus; ``context`` 0: its own), else a fresh ``preset`` initialised with ``seed`` (``context`` 0:
    2048 tokens for the residue tokenizer, 1024 for BPE)."""
    tokenizer = corpus.tokenizer
    if init is not None:
        loaded = load_model(init)
        if loaded.tokenizer.to_config() != tokenizer.to_config():
            raise InputError(f"{init}: its tokenizer differs from the one {corpus.path} was tokenized with")
        model = loaded.model
        context = context or model.config.max_positions
    else:
        context = context or (2048 if tokenizer.kind == "residue" else 1024)
        torch.manual_seed(seed)
        model = ObteModel(preset_config(preset, padded_vocab_size(tokenizer.vocab_size), max_positions=context))
    if context > model.config.max_positions:
        raise InputError(f"--context {context} exceeds the model's {model.config.max_positions} positions")
    return model, context


def full_state_dict(model: torch.nn.Module, fsdp: bool) -> dict:
    """The unsharded model weights on the CPU (every process must call this under FSDP: it gathers)."""
    if not fsdp:
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
    )

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def final_accuracies(history: list[dict]) -> dict:
    """Masked accuracy over the last 5% of steps (at least 1): one step's masked tokens are too few to quote.
    ``steps``: how many; ``all``, ``protein``, ``nucleic``: the means (None where no step had that kind)."""
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


@dataclass
class PretrainSummary:
    """What :func:`export_model` wrote, for the report."""

    last: dict  # the last step's metrics record (with heldout_* at a scored checkpoint)
    accuracies: dict  # final_accuracies of the run's history
    baselines: dict  # unigram baselines of the trained modality ("all", "protein", "nucleic")
    model_dir: Path


def export_model(
    result: PretrainResult,
    corpus: TokenCorpus,
    settings: PretrainSettings,
    out_dir: Path,
    processes: DistributedContext,
    preset: str | None = None,
) -> PretrainSummary | None:
    """Write the trained model to ``out_dir/model`` (a model directory whose metadata records the run) and
    its loss curve to ``out_dir/loss.png``.

    Every process calls this (under FSDP the weights are gathered from all of them); the main process
    writes and returns the summary, the others return None, as does a run that trained no step.
    ``preset`` names a fresh run's architecture (None for a run started from a model directory).
    """
    out_dir = Path(out_dir)
    state = full_state_dict(result.model, settings.fsdp)
    if not processes.is_main or not result.history:
        return None
    last = result.history[-1]
    baselines = unigram_baselines(corpus)
    if settings.modality != "omni":  # the control trains on one modality: its baseline is that modality's
        baselines = {settings.modality: baselines[settings.modality], "all": baselines[settings.modality]}
    accuracies = final_accuracies(result.history)
    export = ObteModel(result.model.config) if settings.fsdp else result.model.to("cpu")
    export.load_state_dict(state)
    save_model(
        out_dir / "model",
        export,
        corpus.tokenizer,
        overwrite=True,
        metadata={
            "pretraining": {
                **settings.to_dict(),
                "tokens_seen": last["tokens"],
                "final_loss": last["loss"],
                "final_masked_accuracy": accuracies,
                "unigram_baselines": baselines,
                "heldout": {k: v for k, v in last.items() if k.startswith("heldout_")},
                "processes": processes.world_size,
                "corpus": str(corpus.path),
            },
            "preset": preset,
        },
    )
    _plot(out_dir, baselines)
    return PretrainSummary(last, accuracies, baselines, out_dir / "model")


def _plot(out_dir: Path, baselines: dict) -> None:
    from obte_cli.engine.core.plots import training_curves

    records = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    training_curves(records, out_dir / "loss.png", title=f"obte pretrain: {out_dir.name}", baselines=baselines)

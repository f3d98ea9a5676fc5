"""Masked-LM pretraining: the paper's recipe, on one CPU or many GPUs (see `obte pretrain`).

Recipe (OmniBioTE §3, with the reference's bugs fixed):

* objective: 15% (``mask_rate``) of residue tokens replaced by ``<mask>``, cross-entropy on those positions only,
  averaged over every masked token of the *global* batch (so the loss and gradients do not depend on
  how rows are split over processes and micro-batches);
* AdamW β = (0.9, 0.95), ε = 1e-8, weight decay 0.01, μP groups (:mod:`obte_cli.engine.model.mup`):
  embeddings, norms and readout at the base LR, hidden matrices at LR · 32/width (or, with
  ``optimizer="muon"``, hidden matrices on Muon: :mod:`obte_cli.engine.pretraining.muon`);
* one-cycle schedule (:func:`one_cycle_factor`, torch's OneCycleLR shape), warm-up for ``warmup_tokens``
  tokens, starting and ending at LR · 1e-5, β1 fixed (the reference's OneCycleLR silently cycled it);
  gradient clipping at 1.0;
* batch measured in tokens and reached by gradient accumulation over micro-batches of rows;
* bf16 autocast on CUDA, fp32 on CPU.

Batches come from :class:`obte_cli.engine.pretraining.batches.BatchSource`: a function of the step, so a
resumed run trains on exactly the batches the uninterrupted run would have.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from obte_cli.engine.core.devices import autocast
from obte_cli.engine.core.errors import ObteError
from obte_cli.engine.model.encoder import ObteModel, flops_per_token
from obte_cli.engine.model.mup import muon_param_groups, mup_param_groups
from obte_cli.engine.pretraining.batches import BatchSource, RowPlan
from obte_cli.engine.pretraining.distributed import (
    DistributedContext,
    all_reduce_sum,
    gradient_sync,
    wrap,
)
from obte_cli.engine.pretraining.muon import MuonAdamW
from obte_cli.engine.pretraining.token_files import TokenCorpus
from obte_cli.engine.pretraining.train_state import (
    latest_checkpoint,
    load_checkpoint,
    read_trainer_state,
    save_checkpoint,
)

# Held-out rows are always scored with the paper's 15% masking, whatever the training mask rate, so
# runs trained at different rates are compared on the same task.
EVAL_MASK_RATE = 0.15


class TrainingDiverged(ObteError):
    """The loss became NaN or infinite."""


@dataclass
class PretrainSettings:
    context: int = 1024
    batch_tokens: int = 16384  # per optimizer step, all processes together
    micro_batch_rows: int = 4  # rows per forward/backward on each process
    total_tokens: int = 1_000_000  # token budget (rows × context, padding included)
    warmup_tokens: int = 100_000
    lr: float = 0.05
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    start_end_scale: float = 1e-5
    grad_clip: float = 1.0
    mask_rate: float = 0.15
    optimizer: str = "adamw"  # or "muon": Muon for the hidden matrices (obte_cli.engine.pretraining.muon)
    muon_lr: float = 0.02  # the Muon group's LR (no μP width factor)
    modality: str = "omni"
    seed: int = 0
    checkpoint_every: int = 100  # steps
    fsdp: bool = False
    holdout: float = 0.0  # fraction of the corpus' chunks never trained on, scored at each checkpoint
    eval_rows: int = 64  # held-out rows scored (at most)
    eval_tokens: str = ""  # a separate held-out token directory, scored at each checkpoint instead

    @property
    def rows_per_step(self) -> int:
        return max(1, self.batch_tokens // self.context)

    @property
    def total_steps(self) -> int:
        return max(1, math.ceil(self.total_tokens / (self.rows_per_step * self.context)))

    def to_dict(self) -> dict:
        return asdict(self)


class MaskedLMObjective(nn.Module):
    """The model plus its loss, as one module so DDP/FSDP see the whole forward pass.

    Returns the *sum* of masked-token losses, how many masked protein and nucleic-acid tokens were
    predicted correctly, and the loss sums of the protein and nucleic-acid tokens, so the caller can
    normalise by the global counts.
    ``protein_token`` flags the protein residue ids (the two modalities are scored apart: a protein
    residue and a nucleotide have different unigram baselines).
    """

    def __init__(self, model: ObteModel, protein_token: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("protein_token", protein_token, persistent=False)

    def forward(
        self, inputs: torch.Tensor, targets: torch.Tensor, doc_ids: torch.Tensor, with_modality_losses: bool = False
    ):
        hidden = self.model(inputs, doc_ids).hidden
        logits, labels = self.model.masked_logits(hidden, targets)
        loss_sum = F.cross_entropy(logits, labels, reduction="sum")
        right = logits.argmax(-1) == labels
        protein = self.protein_token[labels]
        correct = torch.stack([(right & protein).sum(), (right & ~protein).sum()])
        if not with_modality_losses:
            return loss_sum, correct
        losses = F.cross_entropy(logits.detach(), labels, reduction="none")
        return loss_sum, correct, torch.stack([losses[protein].sum(), losses[~protein].sum()])


def one_cycle_factor(step: int, total_steps: int, warmup_steps: int, scale: float) -> float:
    """LR multiplier of the one-cycle schedule at ``step``: cosine from ``scale`` up to 1 over the
    warm-up, then cosine from 1 down to ``scale`` by the last step (torch's ``OneCycleLR`` with
    ``anneal_strategy='cos'``, written out so that any warm-up length — 0, 1 step, all steps — works)."""
    if step < warmup_steps:
        return scale + (1 - scale) * (1 - math.cos(math.pi * step / warmup_steps)) / 2
    remaining = max(total_steps - 1 - warmup_steps, 1)
    progress = min((step - warmup_steps) / remaining, 1.0)
    return scale + (1 - scale) * (1 + math.cos(math.pi * progress)) / 2


def make_optimizer(model: nn.Module, settings: PretrainSettings) -> torch.optim.Optimizer:
    """AdamW over the μP parameter groups (embeddings, norms and readout at ``lr``; hidden matrices at
    ``lr``·base_width/width), as pretraining and ``obte bench throughput`` both use it; with
    ``settings.optimizer == "muon"``, Muon for the hidden matrices at ``muon_lr`` instead."""
    fused = fused_adamw_supported(model)
    if settings.optimizer == "muon":
        muon, adamw = muon_param_groups(model, settings.lr, settings.muon_lr, settings.weight_decay)
        return MuonAdamW(muon, adamw, betas=settings.betas, eps=settings.eps, fused=fused)
    groups = mup_param_groups(model, settings.lr, settings.weight_decay)
    return torch.optim.AdamW(groups, betas=settings.betas, eps=settings.eps, fused=fused)


def fused_adamw_supported(model: nn.Module) -> bool:
    """Whether AdamW's fused kernel (one pass over all parameters instead of ~8 elementwise ops per tensor)
    can run: plain (not FSDP-sharded) float tensors on CPU or CUDA, with a torch that has the kernel."""
    from torch.distributed.tensor import DTensor

    parameters = list(model.parameters())
    plain = all(not isinstance(p, DTensor) and p.dtype.is_floating_point for p in parameters)
    devices = {p.device.type for p in parameters}
    if not parameters or not plain or not devices <= {"cpu", "cuda"}:
        return False
    try:
        torch.optim.AdamW([torch.zeros(1, device=parameters[0].device, requires_grad=True)], fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device in this torch
        return False
    return True


def make_scheduler(optimizer: torch.optim.Optimizer, settings: PretrainSettings) -> torch.optim.lr_scheduler.LambdaLR:
    """The one-cycle schedule with its warm-up measured in tokens (rounded to whole steps)."""
    tokens_per_step = settings.rows_per_step * settings.context
    warmup_steps = min(round(settings.warmup_tokens / tokens_per_step), settings.total_steps - 1)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: one_cycle_factor(step, settings.total_steps, warmup_steps, settings.start_end_scale)
    )


@dataclass
class PretrainResult:
    model: ObteModel
    steps_run: int
    final_step: int
    history: list[dict]


def pretrain(
    model: ObteModel,
    corpus: TokenCorpus,
    settings: PretrainSettings,
    out_dir: Path,
    processes: DistributedContext,
    resume: bool = False,
    peak_flops: float | None = None,
    on_step: Callable[[dict], None] | None = None,
    eval_corpus: TokenCorpus | None = None,
) -> PretrainResult:
    """Train ``model`` (in place) on ``corpus``; checkpoints and ``metrics.jsonl`` go to ``out_dir``.

    ``peak_flops`` (per process) turns throughput into model FLOPs utilisation (``mfu``).
    ``eval_corpus`` (same tokenizer, never trained on) is scored at every checkpoint, like ``holdout``.
    """
    out_dir = Path(out_dir)
    if settings.optimizer == "muon" and settings.fsdp:
        raise ObteError("--optimizer muon needs whole matrices: it runs with DDP, not with --fsdp")
    tokenizer = corpus.tokenizer
    plan = RowPlan(corpus, settings.context, settings.modality, settings.seed, settings.holdout, "train")
    maskable = np.zeros(max(model.config.vocab_size, tokenizer.vocab_size), dtype=bool)
    for modality in ("protein", "nucleic"):
        maskable[tokenizer.residue_ids(modality)] = True
    protein_token = np.zeros_like(maskable)
    protein_token[tokenizer.residue_ids("protein")] = True
    rows = settings.rows_per_step
    if rows % processes.world_size:
        raise ObteError(
            f"a step of {rows} rows ({settings.batch_tokens} tokens / context {settings.context}) "
            f"cannot be split over {processes.world_size} processes: use a multiple of {processes.world_size} rows"
        )
    source = BatchSource(
        plan,
        rows,
        settings.micro_batch_rows,
        maskable,
        tokenizer.mask_id,
        tokenizer.pad_id,
        settings.mask_rate,
        settings.seed,
        processes.rank,
        processes.world_size,
    )
    heldout = None
    held_plan = None
    if eval_corpus is not None:
        held_plan = RowPlan(eval_corpus, settings.context, settings.modality, settings.seed, 0.0, "train")
    elif settings.holdout > 0:
        held_plan = RowPlan(corpus, settings.context, settings.modality, settings.seed, settings.holdout, "holdout")
    if held_plan is not None:
        # every rank scores the same number of rows (FSDP gathers parameters at each forward, in step)
        eval_rows = min(held_plan.rows_per_epoch(), settings.eval_rows) // processes.world_size * processes.world_size
        if eval_rows:
            heldout = BatchSource(
                held_plan,
                eval_rows,
                settings.micro_batch_rows,
                maskable,
                tokenizer.mask_id,
                tokenizer.pad_id,
                EVAL_MASK_RATE,
                settings.seed,
                processes.rank,
                processes.world_size,
            )

    torch.manual_seed(settings.seed + processes.rank)
    model.to(processes.device).train()
    objective = wrap(
        MaskedLMObjective(model, torch.from_numpy(protein_token).to(processes.device)),
        model.blocks,
        processes,
        settings.fsdp,
    )
    optimizer = make_optimizer(model, settings)
    scheduler = make_scheduler(optimizer, settings)
    checkpoints = out_dir / "checkpoints"
    metrics_path = out_dir / "metrics.jsonl"
    start_step = 0
    tokens_seen = 0
    if resume:
        latest = latest_checkpoint(checkpoints)
        if latest is None:
            raise ObteError(f"{checkpoints}: no checkpoint to resume from")
        state = load_checkpoint(latest, objective, optimizer, processes)
        # settings a checkpoint of an older obte lacks were then at today's defaults
        saved = {**_comparable(PretrainSettings()), **(state.get("settings") or {})}
        wanted = _comparable(settings)
        saved_total = saved.pop("total_tokens", None)
        differing = [key for key, value in wanted.items() if key != "total_tokens" and saved.get(key) != value]
        if differing:
            changes = "; ".join(f"{key} was {saved.get(key)!r}, now {wanted[key]!r}" for key in differing)
            raise ObteError(f"{latest}: was written with other settings ({changes}); resume with the same options")
        if state["step"] >= settings.total_steps:
            raise ObteError(
                f"{latest}: the run is at step {state['step']}, already past the {settings.total_steps} steps "
                f"of --total-tokens {settings.total_tokens:,}"
            )
        scheduler.load_state_dict(state["scheduler"])
        if saved_total != settings.total_tokens:
            # A new budget re-targets the one-cycle decay from this step on (the batches do not depend
            # on the budget, so the data order is unchanged); the scheduler's stored LR is recomputed.
            for group, base_lr, factor in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
                group["lr"] = base_lr * factor(state["step"])
        start_step, tokens_seen = state["step"], state["tokens"]
        if processes.is_main:
            _truncate_metrics(metrics_path, start_step)
    elif processes.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        metrics_path.unlink(missing_ok=True)

    flops_token = flops_per_token(model.config, settings.context)
    history: list[dict] = []
    last_good = start_step
    for step in range(start_step, settings.total_steps):
        started = time.perf_counter()
        micro = list(source.step(step))
        masked = sum((_masked_counts(mb.targets, protein_token) for mb in micro), np.zeros(2))
        real = float(sum(mb.tokens for mb in micro))
        totals = all_reduce_sum(torch.tensor([*masked, real], dtype=torch.float64), processes)
        masked_global = max(totals[0].item() + totals[1].item(), 1.0)
        optimizer.zero_grad(set_to_none=True)
        loss_sum = torch.zeros((), device=processes.device)
        correct = torch.zeros(2, device=processes.device)
        for i, mb in enumerate(micro):
            with gradient_sync(objective, enabled=i == len(micro) - 1), autocast(processes.device):
                part_loss, part_correct = objective(
                    mb.inputs.to(processes.device), mb.targets.to(processes.device), mb.doc_ids.to(processes.device)
                )
                # DDP and FSDP average gradients over processes; × world_size makes it a global-token mean.
                (part_loss * (processes.world_size / masked_global)).backward()
            loss_sum += part_loss.detach().float()
            correct += part_correct.detach().float()
        grad_norm = torch.nn.utils.clip_grad_norm_(objective.parameters(), settings.grad_clip)
        reduced = all_reduce_sum(torch.cat([loss_sum[None], correct]).cpu(), processes)
        loss = reduced[0].item() / masked_global
        if not math.isfinite(loss) or not math.isfinite(float(grad_norm)):
            where = f"; the last good checkpoint is in {checkpoints} (step {last_good})" if last_good else ""
            raise TrainingDiverged(f"loss became {loss} at step {step + 1}{where}: lower --lr or raise --warmup-tokens")
        lr_hidden = next(
            (g["lr"] for g in optimizer.param_groups if g["role"] == "hidden"), optimizer.param_groups[0]["lr"]
        )
        optimizer.step()
        scheduler.step()
        tokens_seen += rows * settings.context
        elapsed = time.perf_counter() - started
        record = {
            "step": step + 1,
            "tokens": tokens_seen,
            "loss": loss,
            "masked_accuracy": (reduced[1].item() + reduced[2].item()) / masked_global,
            # per modality; None when the step had no masked token of that kind
            "protein_accuracy": reduced[1].item() / totals[0].item() if totals[0].item() else None,
            "nucleic_accuracy": reduced[2].item() / totals[1].item() if totals[1].item() else None,
            "lr": lr_hidden,
            "grad_norm": float(grad_norm),
            "tokens_per_s": totals[2].item() / elapsed,
            "seconds": elapsed,
        }
        if peak_flops:
            record["mfu"] = record["tokens_per_s"] / processes.world_size * flops_token / peak_flops
        checkpoint_now = (step + 1) % settings.checkpoint_every == 0 or step + 1 == settings.total_steps
        if heldout is not None and checkpoint_now:
            record.update(_evaluate(objective, heldout, protein_token, residue_counts(tokenizer), processes))
        history.append(record)
        if processes.is_main:
            with metrics_path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
        if on_step is not None:
            on_step(record)
        if checkpoint_now:
            save_checkpoint(
                checkpoints,
                step + 1,
                objective,
                optimizer,
                {"tokens": tokens_seen, "scheduler": scheduler.state_dict(), "settings": _comparable(settings)},
                processes,
            )
            last_good = step + 1
    return PretrainResult(model, settings.total_steps - start_step, settings.total_steps, history)


def residue_counts(tokenizer) -> np.ndarray:
    """Residues each token id stands for (0 for tags, ``<EOS>`` and other specials): the denominator that
    turns a loss per token into bits per residue, which is comparable across tokenizers."""
    counts = np.zeros(tokenizer.vocab_size, dtype=np.int64)
    for modality in ("protein", "nucleic"):
        for token_id in tokenizer.residue_ids(modality):
            counts[token_id] = tokenizer.residue_length(int(token_id))
    return counts


@torch.no_grad()
def _evaluate(
    objective: nn.Module,
    source: BatchSource,
    protein_token: np.ndarray,
    residues: np.ndarray,
    processes: DistributedContext,
) -> dict:
    """Masked-LM loss, accuracy and bits per residue (overall and per modality) on the held-out rows."""
    objective.eval()
    # loss, correct protein, correct nucleic, masked protein, masked nucleic, loss protein, loss nucleic,
    # residues under the masked protein tokens, under the masked nucleic tokens
    sums = torch.zeros(9, dtype=torch.float64)
    for mb in source.step(0):
        with autocast(processes.device):
            loss_sum, correct, losses = objective(
                mb.inputs.to(processes.device),
                mb.targets.to(processes.device),
                mb.doc_ids.to(processes.device),
                with_modality_losses=True,
            )
        sums[0] += float(loss_sum)
        sums[1:3] += correct.double().cpu()
        sums[3:5] += torch.from_numpy(_masked_counts(mb.targets, protein_token))
        sums[5:7] += losses.double().cpu()
        labels = mb.targets[mb.targets != -100].numpy()
        protein = protein_token[labels]
        sums[7:9] += torch.tensor(
            [residues[labels[protein]].sum(), residues[labels[~protein]].sum()], dtype=torch.float64
        )
    objective.train()
    loss, right_p, right_n, masked_p, masked_n, loss_p, loss_n, res_p, res_n = all_reduce_sum(sums, processes).tolist()
    masked = max(masked_p + masked_n, 1.0)
    return {
        "heldout_loss": loss / masked,
        "heldout_masked_accuracy": (right_p + right_n) / masked,
        "heldout_protein_accuracy": right_p / masked_p if masked_p else None,
        "heldout_nucleic_accuracy": right_n / masked_n if masked_n else None,
        "heldout_protein_bits_per_residue": loss_p / math.log(2) / res_p if res_p else None,
        "heldout_nucleic_bits_per_residue": loss_n / math.log(2) / res_n if res_n else None,
    }


def _masked_counts(targets: torch.Tensor, protein_token: np.ndarray) -> np.ndarray:
    """(masked protein tokens, masked nucleic-acid tokens) of one micro-batch."""
    labels = targets[targets != -100].numpy()
    protein = int(protein_token[labels].sum())
    return np.array([protein, len(labels) - protein], dtype=np.float64)


def resume_budget_change(out_dir: Path, settings: PretrainSettings) -> tuple[int, int, int] | None:
    """``(step, old_total_tokens, new_total_tokens)`` if resuming ``out_dir`` with ``settings`` changes
    the run's token budget (which re-targets the LR decay from that step on), else ``None``."""
    state = _latest_trainer_state(out_dir)
    if state is None:
        return None
    old = state["settings"].get("total_tokens")
    if old is None or old == settings.total_tokens:
        return None
    return state["step"], old, settings.total_tokens


def resume_warmup_tokens(out_dir: Path) -> int | None:
    """The warm-up of the run being resumed in ``out_dir`` (``None`` without a checkpoint). A resumed
    run keeps it when ``--warmup-tokens`` is left at auto: auto is 5% of the budget, and a new budget
    must not change a warm-up that has already happened."""
    state = _latest_trainer_state(out_dir)
    return None if state is None else state["settings"].get("warmup_tokens")


def _latest_trainer_state(out_dir: Path) -> dict | None:
    """``trainer.json`` of the latest complete checkpoint in ``out_dir`` (``None`` without one)."""
    latest = latest_checkpoint(Path(out_dir) / "checkpoints")
    if latest is None or not (latest / "trainer.json").is_file():
        return None
    return read_trainer_state(latest)


def _comparable(settings: PretrainSettings) -> dict:
    """Settings that must not change across a resume, except the budget (``total_tokens``), which
    :func:`pretrain` handles, and the checkpoint interval, which may change freely."""
    data = settings.to_dict()
    data.pop("checkpoint_every")
    data["betas"] = list(data["betas"])
    return data


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines written after the checkpoint being resumed (they will be recomputed)."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in keep))


def unigram_baselines(corpus: TokenCorpus) -> dict[str, float | None]:
    """The unigram baselines: accuracy of predicting, at every masked residue, the most frequent residue
    token of its modality (a model knows the modality from the sequence's tag) — overall (``"all"``)
    and per modality (``"protein"``, ``"nucleic"``; None when the corpus has none of it)."""
    tokenizer = corpus.tokenizer
    counts = np.zeros(tokenizer.vocab_size, dtype=np.int64)
    for shard in corpus.shards:
        counts += np.bincount(np.asarray(shard.ids), minlength=tokenizer.vocab_size)[: tokenizer.vocab_size]
    baselines: dict[str, float | None] = {}
    best = total = 0
    for modality in ("protein", "nucleic"):
        ids = tokenizer.residue_ids(modality)
        modality_total = int(counts[ids].sum()) if len(ids) else 0
        modality_best = int(counts[ids].max()) if modality_total else 0
        baselines[modality] = modality_best / modality_total if modality_total else None
        best += modality_best
        total += modality_total
    baselines["all"] = best / max(total, 1)
    return baselines


def masked_accuracy_baseline(corpus: TokenCorpus) -> float:
    """The overall unigram baseline (see :func:`unigram_baselines`)."""
    return unigram_baselines(corpus)["all"]

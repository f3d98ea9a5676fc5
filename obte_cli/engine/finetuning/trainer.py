"""One fine-tuning loop for every sequence-level task (ΔG regression now; classification next).

Recipe (paper §4.3): AdamW with three learning rates — the task head ``lr_head`` (1e-2), the token
embeddings ``lr_embedding`` (1e-3), every other backbone weight ``lr_body · 1024 / width`` (1e-4 at
width 1024, the paper's μP transfer) — OneCycleLR over all optimizer steps (cosine, warm-up
``warmup_fraction`` of the steps; β1 is *not* cycled, unlike the reference's silent default), gradient
clipping at 1.0. The MLM readout is frozen (it plays no part in the loss).

Batches: ``batch_size`` examples per optimizer step. Each batch is sorted by length and cut into
micro-batches of at most ``max_tokens`` tokens, each packed into context rows
(:mod:`obte_cli.engine.model.packing`), so memory is bounded by tokens rather than by the longest example,
and gradients are accumulated with weights proportional to each micro-batch's share of examples (the
step is exactly the mean over the batch). Reproducible: the shuffling and dropout use ``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from obte_cli.engine.core.devices import autocast
from obte_cli.engine.model.encoder import ObteModel
from obte_cli.engine.model.mup import parameter_role
from obte_cli.engine.model.packing import microbatches, pack

REFERENCE_WIDTH = 1024  # the paper's body LR 1e-4 is for width 1024; μP scales it by 1024/width


@dataclass
class FinetuneSettings:
    epochs: int = 4
    batch_size: int = 32
    max_tokens: int = 16384
    lr_head: float = 1e-2
    lr_embedding: float = 1e-3
    lr_body: float = 1e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    grad_clip: float = 1.0
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def finetune_param_groups(model: ObteModel, head: nn.Module, settings: FinetuneSettings) -> list[dict]:
    """Parameter groups of the paper's fine-tuning recipe (see module docstring)."""
    body_lr = settings.lr_body * REFERENCE_WIDTH / model.config.width
    groups = {
        "head": {"lr": settings.lr_head, "weight_decay": settings.weight_decay, "params": []},
        "embedding": {"lr": settings.lr_embedding, "weight_decay": 0.0, "params": []},
        "body": {"lr": body_lr, "weight_decay": settings.weight_decay, "params": []},
        "body_vectors": {"lr": body_lr, "weight_decay": 0.0, "params": []},
    }
    for name, param in model.named_parameters():
        role = parameter_role(name, param.ndim)
        if role == "readout":
            param.requires_grad_(False)
            continue
        target = {"embedding": "embedding", "vector": "body_vectors"}.get(role, "body")
        groups[target]["params"].append(param)
    groups["head"]["params"] = list(head.parameters())
    return [{"role": role, **group} for role, group in groups.items() if group["params"]]


def first_token_outputs(
    model: ObteModel, head: nn.Module, sequences: Sequence[np.ndarray], pad_id: int, device: torch.device
) -> torch.Tensor:
    """Pack ``sequences``, run the encoder, and apply ``head`` to each sequence's first-token state."""
    batch = pack(sequences, context=max(len(s) for s in sequences), pad_id=pad_id)
    ids, doc_ids = batch.ids.to(device), batch.doc_ids.to(device)
    with autocast(device):
        hidden = model(ids, doc_ids).hidden
    rows = torch.tensor([r for r, _, _ in batch.placements], device=device)
    offsets = torch.tensor([o for _, o, _ in batch.placements], device=device)
    return head(hidden[rows, offsets].float())


def token_outputs(
    model: ObteModel, head: nn.Module, sequences: Sequence[np.ndarray], pad_id: int, device: torch.device
) -> list[torch.Tensor]:
    """Pack ``sequences``, run the encoder, and apply ``head`` to every token: one (n_tokens, n_outputs)
    tensor per sequence (the per-residue tasks' forward)."""
    batch = pack(sequences, context=max(len(s) for s in sequences), pad_id=pad_id)
    ids, doc_ids = batch.ids.to(device), batch.doc_ids.to(device)
    with autocast(device):
        hidden = model(ids, doc_ids).hidden
    return [head(hidden[row, offset : offset + n].float()) for row, offset, n in batch.placements]


def _sequence_loss(loss_name: str, targets) -> Callable:
    target_tensor = torch.as_tensor(np.asarray(targets))

    def loss(outputs: torch.Tensor, members: list[int]) -> torch.Tensor:
        y = target_tensor[members].to(outputs.device)
        if loss_name == "mse":
            return F.mse_loss(outputs.squeeze(-1), y.float())
        return F.cross_entropy(outputs, y.long())

    return loss


def train_sequence_task(
    model: ObteModel,
    head: nn.Module,
    sequences: Sequence[np.ndarray],
    targets,
    settings: FinetuneSettings,
    pad_id: int,
    device: torch.device | str = "cpu",
    loss_name: str = "mse",
    on_step: Callable[[dict], None] | None = None,
    outputs_fn: Callable | None = None,
    loss_fn: Callable | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> list[dict]:
    """Fine-tune ``model`` and ``head`` on (sequence, target) pairs; returns the per-step history.

    The one training loop of every task. By default the task is sequence-level: ``head`` reads the
    first token (:func:`first_token_outputs`) and ``targets`` are (N,) floats for ``mse`` (standardise
    them first) or (N,) class ids for ``cross_entropy``. Other tasks pass ``outputs_fn(model, head,
    sequences, pad_id, device)`` and ``loss_fn(outputs, example_indices)`` (per-residue tasks:
    :func:`token_outputs` and a loss over each example's tokens). ``on_epoch(epoch)`` runs after each
    epoch (the model in train mode again afterwards), e.g. to evaluate on a dev set.
    """
    device = torch.device(device)
    if len(sequences) != len(targets):
        raise ValueError("sequences and targets differ in length")
    if len(sequences) == 0:
        raise ValueError("no training examples")
    generator = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    model.to(device).train()
    head.to(device).train()
    groups = finetune_param_groups(model, head, settings)
    optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8)
    steps_per_epoch = math.ceil(len(sequences) / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=[g["lr"] for g in groups],
        total_steps=total_steps,
        pct_start=settings.warmup_fraction,
        anneal_strategy="cos",
        cycle_momentum=False,
    )
    trainable = [p for g in groups for p in g["params"]]
    outputs_fn = outputs_fn or first_token_outputs
    loss_fn = loss_fn or _sequence_loss(loss_name, targets)
    lengths = [len(s) for s in sequences]
    history = []
    step = 0
    for epoch in range(settings.epochs):
        order = torch.randperm(len(sequences), generator=generator).tolist()
        for start in range(0, len(order), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            optimizer.zero_grad(set_to_none=True)
            batch_loss = 0.0
            for group in microbatches([lengths[i] for i in batch], settings.max_tokens):
                members = [batch[i] for i in group]
                outputs = outputs_fn(model, head, [sequences[i] for i in members], pad_id, device)
                loss = loss_fn(outputs, members)
                weight = len(members) / len(batch)
                (loss * weight).backward()
                batch_loss += loss.item() * weight
            if not math.isfinite(batch_loss):
                raise FloatingPointError(f"loss became {batch_loss} at step {step}")
            torch.nn.utils.clip_grad_norm_(trainable, settings.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            record = {"step": step, "epoch": epoch + 1, "loss": batch_loss, "lr_head": optimizer.param_groups[0]["lr"]}
            history.append(record)
            if on_step is not None:
                on_step(record)
        if on_epoch is not None:
            on_epoch(epoch + 1)
            model.train()
            head.train()
    model.eval()
    head.eval()
    return history


@torch.inference_mode()
def predict_sequence_task(
    model: ObteModel,
    head: nn.Module,
    sequences: Sequence[np.ndarray],
    pad_id: int,
    device: torch.device | str = "cpu",
    max_tokens: int = 16384,
) -> np.ndarray:
    """Head outputs (N, n_outputs) for ``sequences``, in input order, packed by token budget."""
    device = torch.device(device)
    model.to(device).eval()
    head.to(device).eval()
    out = np.zeros((len(sequences), head.proj.out_features), dtype=np.float32)
    for group in microbatches([len(s) for s in sequences], max_tokens):
        values = first_token_outputs(model, head, [sequences[i] for i in group], pad_id, device)
        out[group] = values.float().cpu().numpy()
    return out

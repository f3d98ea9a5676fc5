"""One fine-tuning loop for every task: ΔG, sequence classification / regression, per-residue tasks, contacts.

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

Tasks: the loop knows nothing of what a task predicts. A :class:`Task` says how to run the model on a
micro-batch (``outputs``), the loss of those outputs against the examples' targets (``loss``) and how
to turn outputs into predictions (``predict``). Two cover every caller:

* :class:`SequenceTask` — one target per sequence, read from the first token (the molecule tag) or,
  with the ``parts-mean`` readout, from the mean states of the two partners of a complex;
* :class:`TokenTask` — one target per token (per-residue tasks, contacts), with the one per-token
  loss (:func:`per_token_loss`) and the one per-token predict.

Mapping residue labels onto tokens and token predictions back onto residues (a BPE token covers
several residues) is the task owner's business: :mod:`obte_cli.engine.tokenizers.residues`.

The forward pass itself (packing, readouts, prediction in micro-batches) is the one every prediction
uses, :mod:`obte_cli.engine.model.inference`; training runs it with gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from obte_cli.engine.model.encoder import ObteModel
from obte_cli.engine.model.inference import (
    FIRST_TOKEN,
    Readout,
    predict_sequence_task,
    predict_token_outputs,
    sequence_outputs,
    token_outputs,
)
from obte_cli.engine.model.mup import parameter_role
from obte_cli.engine.model.packing import microbatches

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


# ------------------------------------------------------------------------------------------------ tasks
class Task(Protocol):
    """What the loop needs of a task. ``targets`` are the training targets of the micro-batch's
    examples, in the order of ``sequences`` (whatever one example's target is: a value, a class id,
    an array per token)."""

    def outputs(
        self, model: ObteModel, head: nn.Module, sequences: Sequence[np.ndarray], pad_id: int, device: torch.device
    ) -> Any: ...

    def loss(self, outputs: Any, targets: list) -> torch.Tensor: ...

    def predict(
        self,
        model: ObteModel,
        head: nn.Module,
        sequences: Sequence[np.ndarray],
        pad_id: int,
        device: torch.device | str = "cpu",
        max_tokens: int = 16384,
    ) -> Any: ...


@dataclass(frozen=True)
class SequenceTask:
    """One target per sequence, from the head on the sequence's ``readout`` (the first token unless
    told): ``mse`` on (standardised) values or ``cross_entropy`` on class ids. ``predict`` gives one
    value or class id per sequence."""

    loss_name: str = "mse"
    readout: Readout = FIRST_TOKEN

    def __post_init__(self):
        if self.loss_name not in ("mse", "cross_entropy"):
            raise ValueError(f"a sequence task's loss is mse or cross_entropy (got {self.loss_name!r})")

    def outputs(self, model, head, sequences, pad_id, device) -> torch.Tensor:
        return sequence_outputs(model, head, sequences, pad_id, device, self.readout)

    def loss(self, outputs: torch.Tensor, targets: list) -> torch.Tensor:
        y = torch.as_tensor(np.asarray(targets)).to(outputs.device)
        if self.loss_name == "mse":
            return F.mse_loss(outputs.squeeze(-1), y.float())
        return F.cross_entropy(outputs, y.long())

    def predict(self, model, head, sequences, pad_id, device="cpu", max_tokens=16384) -> np.ndarray:
        outputs = predict_sequence_task(model, head, sequences, pad_id, device, max_tokens, self.readout)
        return outputs.argmax(1) if self.loss_name == "cross_entropy" else outputs[:, 0]


NO_CLASS = -100  # a token without a class target (as ``F.cross_entropy``'s ``ignore_index``)


@dataclass(frozen=True)
class TokenTask:
    """One target per token, from the head on every token. A sequence's targets are an array over its
    tokens: class ids for ``cross_entropy`` (:data:`NO_CLASS` where none), values for ``mse``
    (one output), or (n_tokens, n_outputs) values in [0, 1] for ``bce`` (independent binary outputs,
    e.g. one per contact cutoff); NaN where a token has no target (tags, ``<EOS>``, other segments).

    ``predict`` gives one array per sequence over its tokens: class ids, values, or probabilities
    (n_tokens, n_outputs)."""

    loss_name: str

    def __post_init__(self):
        if self.loss_name not in ("mse", "cross_entropy", "bce"):
            raise ValueError(f"a token task's loss is mse, cross_entropy or bce (got {self.loss_name!r})")

    def outputs(self, model, head, sequences, pad_id, device) -> list[torch.Tensor]:
        return token_outputs(model, head, sequences, pad_id, device)

    def loss(self, outputs: list[torch.Tensor], targets: list) -> torch.Tensor:
        return per_token_loss(self.loss_name, outputs, targets)

    def predict(self, model, head, sequences, pad_id, device="cpu", max_tokens=16384) -> list[np.ndarray]:
        outputs = predict_token_outputs(model, head, sequences, pad_id, device, max_tokens)
        return [self._predictions(out) for out in outputs]

    def _predictions(self, outputs: torch.Tensor) -> np.ndarray:
        """One sequence's (n_tokens, n_outputs) float32 CPU head outputs → its per-token predictions."""
        if self.loss_name == "bce":
            return torch.sigmoid(outputs).numpy()
        values = outputs.numpy()
        return values.argmax(1) if self.loss_name == "cross_entropy" else values[:, 0]


def per_token_loss(loss_name: str, outputs: list[torch.Tensor], targets: list) -> torch.Tensor:
    """The mean loss over every token target of a micro-batch (see :class:`TokenTask` for the targets).

    Every target counts once, so a long sequence weighs more than a short one; for ``mse`` and ``bce``
    each output column of a token is a target. Tokens without targets add nothing."""
    total = outputs[0].sum() * 0  # a zero that keeps the graph when no token has a target
    count = 0
    for out, y in zip(outputs, targets):
        y = torch.as_tensor(y, device=out.device)
        if loss_name == "cross_entropy":
            keep = y >= 0
            if keep.any():
                total = total + F.cross_entropy(out[keep], y[keep].long(), reduction="sum")
                count += int(keep.sum())
            continue
        y = y[:, None] if y.ndim == 1 else y
        keep = ~torch.isnan(y[:, 0])
        if keep.any():
            elementwise = F.mse_loss if loss_name == "mse" else F.binary_cross_entropy_with_logits
            total = total + elementwise(out[keep], y[keep].float(), reduction="sum")
            count += int(keep.sum()) * y.shape[1]
    return total / max(count, 1)


# ------------------------------------------------------------------------------------------------ the loop
def one_cycle_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float):
    """The fine-tuning schedule: each parameter group warms up to its own ``lr`` over
    ``warmup_fraction`` of the steps, then anneals (cosine); β1 is not cycled. Also the attention
    probe's (:mod:`obte_cli.engine.contacts.probe`), so every trained module follows one recipe."""
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=[g["lr"] for g in optimizer.param_groups],
        total_steps=total_steps,
        pct_start=warmup_fraction,
        anneal_strategy="cos",
        cycle_momentum=False,
    )


def clipped_step(optimizer: torch.optim.Optimizer, scheduler, parameters: list, grad_clip: float) -> None:
    """Clip the gradients' global norm at ``grad_clip``, step the optimizer, then the schedule."""
    torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
    optimizer.step()
    scheduler.step()


def fine_tune(
    model: ObteModel,
    head: nn.Module,
    task: Task,
    sequences: Sequence[np.ndarray],
    targets: Sequence,
    settings: FinetuneSettings,
    pad_id: int,
    device: torch.device | str = "cpu",
    on_step: Callable[[dict], None] | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> list[dict]:
    """Fine-tune ``model`` and ``head`` on (sequence, target) pairs for ``task``; returns the per-step
    history. The one training loop of every task (see the module docstring). ``on_epoch(epoch)`` runs
    after each epoch (the model in train mode again afterwards), e.g. to evaluate on a dev set."""
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
    scheduler = one_cycle_schedule(optimizer, steps_per_epoch * settings.epochs, settings.warmup_fraction)
    trainable = [p for g in groups for p in g["params"]]
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
                outputs = task.outputs(model, head, [sequences[i] for i in members], pad_id, device)
                loss = task.loss(outputs, [targets[i] for i in members])
                weight = len(members) / len(batch)
                (loss * weight).backward()
                batch_loss += loss.item() * weight
            if not math.isfinite(batch_loss):
                raise FloatingPointError(f"loss became {batch_loss} at step {step}")
            clipped_step(optimizer, scheduler, trainable, settings.grad_clip)
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
    on_epoch: Callable[[int], None] | None = None,
    readout: Readout = FIRST_TOKEN,
) -> list[dict]:
    """:func:`fine_tune` on a :class:`SequenceTask`: ``targets`` are (N,) floats for ``mse`` (standardise
    them first) or (N,) class ids for ``cross_entropy``."""
    task = SequenceTask(loss_name, readout)
    return fine_tune(model, head, task, sequences, targets, settings, pad_id, device, on_step, on_epoch)

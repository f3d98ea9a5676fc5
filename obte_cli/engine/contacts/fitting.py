"""Fitting contact predictors: the fine-tuned head (:mod:`obte_cli.engine.contacts.head`) on the one
fine-tuning loop, the attention probe (:mod:`obte_cli.engine.contacts.probe`) on a loop of its own, and the
per-cutoff call thresholds; :func:`fit_contact_predictor` does all three.

The probe's loop is not :func:`obte_cli.engine.finetuning.trainer.fine_tune`: the backbone never changes,
so the maps are computed once per site and only the probe is trained, one site per step. Otherwise it
follows the trainer's recipe: the same per-token loss (BCE on protein tokens,
:func:`obte_cli.engine.finetuning.trainer.per_token_loss`), AdamW, the one-cycle schedule (warm-up
``warmup_fraction``, cosine) and gradient clipping at ``grad_clip``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from obte_cli.engine.contacts.head import contact_head
from obte_cli.engine.contacts.predictor import ContactPredictor
from obte_cli.engine.contacts.probe import probe_features
from obte_cli.engine.contacts.sites import ContactSite, protein_token_targets
from obte_cli.engine.core.metrics import best_f1_threshold
from obte_cli.engine.finetuning.trainer import (
    FinetuneSettings,
    TokenTask,
    clipped_step,
    fine_tune,
    one_cycle_schedule,
    per_token_loss,
)
from obte_cli.engine.model.encoder import ObteModel
from obte_cli.engine.model.heads import AttentionProbe, LinearHead
from obte_cli.engine.tokenizers.base import Encoding, Tokenizer


@dataclass
class ProbeSettings:
    epochs: int = 10
    lr: float = 1e-3  # the one-cycle schedule's peak
    weight_decay: float = 0.01
    channels: int = 64
    warmup_fraction: float = 0.05
    grad_clip: float = 1.0
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def alongside(cls, head: FinetuneSettings) -> ProbeSettings:
        """The probe's settings for a run whose head would use ``head``: 3× its epochs (the probe
        takes one site per step), a tenth of its head LR, its warm-up, clipping and seed."""
        return cls(
            epochs=3 * head.epochs,
            lr=head.lr_head / 10,
            warmup_fraction=head.warmup_fraction,
            grad_clip=head.grad_clip,
            seed=head.seed,
        )


CONTACT_TASK = TokenTask("bce")  # one logit per cutoff on every token; protein tokens carry the targets


def train_contact_head(
    model,
    tokenizer: Tokenizer,
    sites: list[ContactSite],
    encodings: list[Encoding],
    settings: FinetuneSettings,
    cutoffs: tuple[float, ...],
    device="cpu",
    on_step=None,
) -> LinearHead:
    """Fine-tune ``model`` and a fresh contact head on ``sites`` (BCE on protein tokens)."""
    torch.manual_seed(settings.seed)
    head = contact_head(model.config.width, cutoffs)
    targets = [protein_token_targets(e, s.labels) for e, s in zip(encodings, sites)]
    fine_tune(
        model, head, CONTACT_TASK, [e.ids for e in encodings], targets, settings, tokenizer.pad_id, device, on_step
    )
    return head


def train_probe(
    model: ObteModel,
    sites: list[ContactSite],
    encodings: list[Encoding],
    cutoffs: tuple[float, ...],
    settings: ProbeSettings | None = None,
    device="cpu",
    on_step=None,
) -> AttentionProbe:
    """Train a fresh probe on the frozen ``model``'s attention maps of ``sites`` (see module docstring).
    A site without protein or nucleic-acid residue tokens (all cut by truncation) is skipped."""
    settings = settings or ProbeSettings()
    device = torch.device(device)
    features = [probe_features(model, e, device) for e in encodings]
    targets = [protein_token_targets(e, s.labels)[tokens] for e, s, (_, tokens) in zip(encodings, sites, features)]
    usable = [stack.shape[1] > 0 and stack.shape[2] > 0 for stack, _ in features]
    torch.manual_seed(settings.seed)
    probe = AttentionProbe(features[0][0].shape[0], len(cutoffs), settings.channels).to(device)
    parameters = list(probe.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = one_cycle_schedule(optimizer, max(1, settings.epochs * sum(usable)), settings.warmup_fraction)
    generator = torch.Generator().manual_seed(settings.seed)
    step = 0
    for epoch in range(settings.epochs):
        for i in torch.randperm(len(features), generator=generator).tolist():
            if not usable[i]:
                continue
            logits = probe(features[i][0].to(device))
            loss = per_token_loss("bce", [logits], [targets[i]])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clipped_step(optimizer, scheduler, parameters, settings.grad_clip)
            step += 1
            if on_step is not None:
                on_step({"step": step, "epoch": epoch + 1, "loss": loss.item()})
    return probe.eval()


def fit_thresholds(probabilities: list[np.ndarray], sites: list[ContactSite]) -> list[float]:
    """Per cutoff, the F1-maximising threshold over the given (training) sites."""
    p = np.concatenate(probabilities)
    y = np.concatenate([s.labels for s in sites])
    keep = ~np.isnan(p[:, 0])
    return [best_f1_threshold(y[keep, c], p[keep, c]) for c in range(y.shape[1])]


def fit_contact_predictor(
    model,
    tokenizer: Tokenizer,
    sites: list[ContactSite],
    encodings: list[Encoding],
    cutoffs: tuple[float, ...],
    method: str,
    settings: FinetuneSettings,
    probe_settings=None,
    device="cpu",
    context: int | None = None,
    on_step=None,
) -> ContactPredictor:
    """Train a head (fine-tuning the backbone) or an attention probe (backbone frozen) on ``sites``,
    then fit the per-cutoff F1 thresholds on the same sites."""
    if method == "head":
        module = train_contact_head(model, tokenizer, sites, encodings, settings, cutoffs, device, on_step)
    elif method == "attention":
        module = train_probe(model, sites, encodings, cutoffs, probe_settings, device, on_step)
    else:
        raise ValueError(f"unknown contact method {method!r}")
    predictor = ContactPredictor(model, tokenizer, method, module, cutoffs, [], context or model.config.max_positions)
    predictor.thresholds = fit_thresholds(predictor.predict(sites, encodings, device), sites)
    return predictor

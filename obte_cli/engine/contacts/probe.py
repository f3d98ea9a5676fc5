"""The attention probe (paper §4.5.1): does a frozen model's attention already know the contacts?

For one site the frozen backbone reads the joint input; every head of every layer gives an attention
map (the probabilities of the model's own attention modules,
:meth:`obte_cli.engine.model.encoder.ObteModel.attention_probabilities`). The probe looks only at the
protein × nucleic-acid block of those maps: channel ``l·H + h`` is how much protein token i attends to
nucleic-acid token j in head h of layer l, and the next ``L·H`` channels are the reverse direction
(j attending to i), transposed. A 4-layer 3×3 convolutional net (64 channels, ReLU) turns the
(2·L·H, T_protein, T_nucleic) stack into one map per cutoff, and a protein token's contact logit is
the maximum over the nucleic-acid tokens.

Training is a loop of its own, not :func:`obte_cli.engine.finetuning.trainer.fine_tune`: the backbone
never changes, so the maps are computed once per site and only the probe is trained, one site per
step. Otherwise it follows the trainer's recipe: the same per-token loss (BCE on protein tokens,
:func:`obte_cli.engine.finetuning.trainer.per_token_loss`), AdamW, the one-cycle schedule (warm-up
``warmup_fraction``, cosine) and gradient clipping at ``grad_clip``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from obte_cli.engine.contacts.sites import ContactSite, protein_token_targets
from obte_cli.engine.finetuning.trainer import (
    FinetuneSettings,
    clipped_step,
    one_cycle_schedule,
    per_token_loss,
)
from obte_cli.engine.model.encoder import ObteModel
from obte_cli.engine.model.heads import AttentionProbe  # the module; it lives with the other heads
from obte_cli.engine.tokenizers.base import Encoding
from obte_cli.engine.tokenizers.residues import (
    segment_residue_tokens,
    token_values_to_residues,
)


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


@torch.no_grad()  # not inference_mode: the maps are the probe's training inputs
def attention_maps(model: ObteModel, ids: np.ndarray, device="cpu") -> torch.Tensor:
    """All heads' attention probabilities for one input: (n_layers · n_heads, T, T), rows = queries,
    channel ``l·H + h`` = head h of layer l."""
    device = torch.device(device)
    model.to(device).eval()
    maps = model.attention_probabilities(torch.as_tensor(ids, device=device)[None])[0]
    return maps.flatten(0, 1).float().cpu()


def probe_features(model: ObteModel, encoding: Encoding, device="cpu") -> tuple[torch.Tensor, np.ndarray]:
    """(2·L·H, T_protein, T_nucleic) probe input and the indices of the protein residue tokens."""
    maps = attention_maps(model, encoding.ids, device)
    protein = segment_residue_tokens(encoding, 0)
    nucleic = np.flatnonzero((encoding.segment > 0) & encoding.is_residue)
    forward = maps[:, protein][:, :, nucleic]
    backward = maps[:, nucleic][:, :, protein].transpose(1, 2)
    return torch.cat([forward, backward]), protein


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


@torch.inference_mode()
def predict_probe(
    model: ObteModel, probe: AttentionProbe, encodings: list[Encoding], n_residues: list[int], device="cpu"
) -> list[np.ndarray]:
    """P(contact) per protein residue and cutoff, (n_residues, n_cutoffs) per site."""
    out = []
    for encoding, n in zip(encodings, n_residues):
        stack, tokens = probe_features(model, encoding, device)
        token_values = np.full((len(encoding), probe.n_outputs), np.nan)
        if stack.shape[2]:
            token_values[tokens] = torch.sigmoid(probe(stack.to(device))).cpu().numpy()
        out.append(token_values_to_residues(encoding, token_values, n))
    return out

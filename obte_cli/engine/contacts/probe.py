"""The attention probe (paper §4.5.1): does a frozen model's attention already know the contacts?

For one site the frozen backbone reads the joint input; every head of every layer gives an attention
map. The probe looks only at the protein × nucleic-acid block of those maps: channel ``l·H + h`` is
how much protein token i attends to nucleic-acid token j in head h of layer l, and the next ``L·H``
channels are the reverse direction (j attending to i), transposed. A 4-layer 3×3 convolutional net
(64 channels, ReLU) turns the (2·L·H, T_protein, T_nucleic) stack into one map per cutoff, and a
protein token's contact logit is the maximum over the nucleic-acid tokens. Only the probe is trained
(BCE on protein tokens, AdamW); the backbone never changes, so the maps are computed once per site.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from obte_cli.engine.contacts.sites import (
    ContactSite,
    protein_residue_values,
    protein_token_targets,
)
from obte_cli.engine.finetuning.trainer import FinetuneSettings
from obte_cli.engine.model.encoder import (
    ObteModel,
    apply_rotary,
    positions_from_doc_ids,
)
from obte_cli.engine.tokenizers.base import Encoding

PROBE_KIND = "attention-probe"


@dataclass
class ProbeSettings:
    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 0.01
    channels: int = 64
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def alongside(cls, head: FinetuneSettings) -> ProbeSettings:
        """The probe's settings for a run whose head would use ``head``: 3× its epochs (the probe
        takes one site per step), a tenth of its head LR, the same seed."""
        return cls(epochs=3 * head.epochs, lr=head.lr_head / 10, seed=head.seed)


@torch.no_grad()  # not inference_mode: the maps are the probe's training inputs
def attention_maps(model: ObteModel, ids: np.ndarray, device="cpu") -> torch.Tensor:
    """All heads' attention probabilities for one input: (n_layers · n_heads, T, T), rows = queries."""
    device = torch.device(device)
    model.to(device).eval()
    x_ids = torch.as_tensor(ids, device=device)[None]
    cos, sin = model.rotary(positions_from_doc_ids(torch.zeros_like(x_ids)))
    x = model.embed(x_ids)
    maps = []
    config = model.config
    for block in model.blocks:
        h = block.ln_1(x)
        q, k, _ = block.attn.qkv(h).split(config.width, dim=-1)
        q, k = (t.view(1, -1, config.n_heads, config.head_dim).transpose(1, 2) for t in (q, k))
        q, k = apply_rotary(q, cos, sin, config.rope), apply_rotary(k, cos, sin, config.rope)
        maps.append(torch.softmax((q @ k.transpose(-1, -2)).float() * config.attn_scale, dim=-1)[0])
        x = block(x, cos, sin, None)
    return torch.cat(maps).float().cpu()


def probe_features(model: ObteModel, encoding: Encoding, device="cpu") -> tuple[torch.Tensor, np.ndarray]:
    """(2·L·H, T_protein, T_nucleic) probe input and the indices of the protein residue tokens."""
    maps = attention_maps(model, encoding.ids, device)
    protein = np.flatnonzero((encoding.segment == 0) & encoding.is_residue)
    nucleic = np.flatnonzero((encoding.segment > 0) & encoding.is_residue)
    forward = maps[:, protein][:, :, nucleic]
    backward = maps[:, nucleic][:, :, protein].transpose(1, 2)
    return torch.cat([forward, backward]), protein


class AttentionProbe(nn.Module):
    def __init__(self, in_channels: int, n_outputs: int, channels: int = 64):
        super().__init__()
        self.in_channels, self.n_outputs, self.channels = in_channels, n_outputs, channels
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, n_outputs, 3, padding=1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(C, T_protein, T_nucleic) → (T_protein, n_outputs) logits (max over nucleic-acid tokens)."""
        return self.net(features[None])[0].amax(dim=-1).transpose(0, 1)

    def describe(self) -> dict:
        return {"kind": PROBE_KIND, "in_channels": self.in_channels, "n_outputs": self.n_outputs, "channels": self.channels}


def train_probe(model: ObteModel, sites: list[ContactSite], encodings: list[Encoding], cutoffs: tuple[float, ...],
                settings: ProbeSettings | None = None, device="cpu", on_step=None) -> AttentionProbe:
    settings = settings or ProbeSettings()
    device = torch.device(device)
    features = [probe_features(model, e, device) for e in encodings]
    targets = [torch.from_numpy(protein_token_targets(e, s.labels)[tokens]) for e, s, (_, tokens) in zip(encodings, sites, features)]
    torch.manual_seed(settings.seed)
    probe = AttentionProbe(features[0][0].shape[0], len(cutoffs), settings.channels).to(device)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed)
    step = 0
    for epoch in range(settings.epochs):
        for i in torch.randperm(len(features), generator=generator).tolist():
            stack, _ = features[i]
            if stack.shape[1] == 0 or stack.shape[2] == 0:
                continue
            logits = probe(stack.to(device))
            loss = F.binary_cross_entropy_with_logits(logits, targets[i].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if on_step is not None:
                on_step({"step": step, "epoch": epoch + 1, "loss": loss.item()})
    return probe.eval()


@torch.inference_mode()
def predict_probe(model: ObteModel, probe: AttentionProbe, encodings: list[Encoding], n_residues: list[int],
                  device="cpu") -> list[np.ndarray]:
    """P(contact) per protein residue and cutoff, (n_residues, n_cutoffs) per site."""
    out = []
    for encoding, n in zip(encodings, n_residues):
        stack, tokens = probe_features(model, encoding, device)
        token_values = np.full((len(encoding), probe.n_outputs), np.nan)
        if stack.shape[2]:
            token_values[tokens] = torch.sigmoid(probe(stack.to(device))).cpu().numpy()
        out.append(protein_residue_values(encoding, token_values, n))
    return out

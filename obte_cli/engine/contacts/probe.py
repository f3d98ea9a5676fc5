"""The attention probe (paper §4.5.1): does a frozen model's attention already know the contacts?

For one site the frozen backbone reads the joint input; every head of every layer gives an attention
map (the probabilities of the model's own attention modules,
:meth:`obte_cli.engine.model.encoder.ObteModel.attention_probabilities`). The probe looks only at the
protein × nucleic-acid block of those maps: channel ``l·H + h`` is how much protein token i attends to
nucleic-acid token j in head h of layer l, and the next ``L·H`` channels are the reverse direction
(j attending to i), transposed. A 4-layer 3×3 convolutional net (64 channels, ReLU) turns the
(2·L·H, T_protein, T_nucleic) stack into one map per cutoff, and a protein token's contact logit is
the maximum over the nucleic-acid tokens.

Training the probe (:func:`obte_cli.engine.contacts.fitting.train_probe`) lives with the other fitting
code; this module computes the maps and predicts with a trained probe.
"""

from __future__ import annotations

import numpy as np
import torch

from obte_cli.engine.model.encoder import ObteModel
from obte_cli.engine.model.heads import AttentionProbe  # the module; it lives with the other heads
from obte_cli.engine.tokenizers.base import Encoding
from obte_cli.engine.tokenizers.residues import (
    segment_residue_tokens,
    token_values_to_residues,
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

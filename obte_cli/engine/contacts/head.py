"""The fine-tuned contact head: which protein residues touch the nucleic acid (paper §4.3.3).

Input of one site (a protein chain and the nucleic-acid chains it binds), the affinity layout
(:func:`~obte_cli.engine.contacts.sites.encode_site`)::

    <protein> M K ... <EOS> <DNA> A C G ... <EOS> <DNA> C G T ... <EOS>

A linear head on the final hidden state of every protein token gives one logit per contact cutoff
(4, 6, 8 Å are learnt together); the loss is binary cross-entropy on protein tokens only — the
nucleic-acid tokens are context. With a BPE tokenizer a token's target is the fraction of its residues
in contact, and predictions are expanded back to one per residue (each residue gets its token's; the
one mapping of :mod:`obte_cli.engine.tokenizers.residues`). Training runs on the one fine-tuning loop
(:func:`obte_cli.engine.contacts.fitting.train_contact_head`); predicting, on the one packed forward pass
(:mod:`obte_cli.engine.model.inference`).
"""

from __future__ import annotations

import numpy as np
import torch

from obte_cli.engine.model.heads import LinearHead
from obte_cli.engine.model.inference import predict_token_outputs
from obte_cli.engine.tokenizers.base import Encoding
from obte_cli.engine.tokenizers.residues import token_values_to_residues


def contact_head(width: int, cutoffs: tuple[float, ...]) -> LinearHead:
    """One logit per cutoff on every token (a :class:`LinearHead` applied token-wise)."""
    return LinearHead(width, len(cutoffs))


def predict_contact_probabilities(
    model, head, encodings: list[Encoding], n_residues: list[int], pad_id: int, device="cpu", max_tokens: int = 16384
) -> list[np.ndarray]:
    """P(contact) per protein residue and cutoff, (n_residues, n_cutoffs) per site, in input order."""
    logits = predict_token_outputs(model, head, [e.ids for e in encodings], pad_id, device, max_tokens)
    probabilities = [torch.sigmoid(out).numpy() for out in logits]
    return [token_values_to_residues(e, p, n) for e, p, n in zip(encodings, probabilities, n_residues)]

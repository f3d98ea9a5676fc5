"""The fine-tuned contact head: which protein residues touch the nucleic acid (paper §4.3.3).

Input of one site (a protein chain and the nucleic-acid chains it binds), the affinity layout
(:func:`~obte_cli.engine.contacts.sites.encode_site`)::

    <protein> M K ... <EOS> <DNA> A C G ... <EOS> <DNA> C G T ... <EOS>

A linear head on the final hidden state of every protein token gives one logit per contact cutoff
(4, 6, 8 Å are learnt together); the loss is binary cross-entropy on protein tokens only — the
nucleic-acid tokens are context. With a BPE tokenizer a token's target is the fraction of its residues
in contact, and predictions are expanded back to one per residue (each residue gets its token's; the
one mapping of :mod:`obte_cli.engine.tokenizers.residues`). Training runs on the one fine-tuning loop
(:func:`obte_cli.engine.finetuning.trainer.fine_tune`) as a ``bce`` :class:`TokenTask`.
"""

from __future__ import annotations

import numpy as np
import torch

from obte_cli.engine.contacts.sites import ContactSite, protein_token_targets
from obte_cli.engine.finetuning.trainer import FinetuneSettings, TokenTask, fine_tune
from obte_cli.engine.model.heads import LinearHead
from obte_cli.engine.tokenizers.base import Encoding, Tokenizer
from obte_cli.engine.tokenizers.residues import token_values_to_residues


def contact_head(width: int, cutoffs: tuple[float, ...]) -> LinearHead:
    """One logit per cutoff on every token (a :class:`LinearHead` applied token-wise)."""
    return LinearHead(width, len(cutoffs))


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


def predict_contact_probabilities(
    model, head, encodings: list[Encoding], n_residues: list[int], pad_id: int, device="cpu", max_tokens: int = 16384
) -> list[np.ndarray]:
    """P(contact) per protein residue and cutoff, (n_residues, n_cutoffs) per site, in input order."""
    probabilities = CONTACT_TASK.predict(model, head, [e.ids for e in encodings], pad_id, device, max_tokens)
    return [token_values_to_residues(e, p, n) for e, p, n in zip(encodings, probabilities, n_residues)]

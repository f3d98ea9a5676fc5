"""The contact predictor: a backbone with its fine-tuned head (:mod:`obte_cli.engine.contacts.head`) or its
attention probe (:mod:`obte_cli.engine.contacts.probe`), the cutoffs it predicts and its call thresholds; how
to fit one, save it as a model directory and load it back.

Probabilities are turned into calls with the threshold that maximises F1 on the training sites (stored
with the head): contacts are rare at 4 Å, where 0.5 would call almost nothing. Fitting a predictor is
:mod:`obte_cli.engine.contacts.fitting`; this module loads and uses one, and never imports the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from obte_cli.engine.contacts.head import predict_contact_probabilities
from obte_cli.engine.contacts.probe import predict_probe
from obte_cli.engine.contacts.sites import ContactSite, encode_site
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.model.directory import load_model, save_model
from obte_cli.engine.model.heads import CONTACTS_TASK, build_head
from obte_cli.engine.tokenizers.base import Encoding, Tokenizer

HEAD_KIND = CONTACTS_TASK


@dataclass
class ContactPredictor:
    """A backbone with its contact head (``method="head"``) or attention probe (``"attention"``),
    the cutoffs it predicts and the F1 thresholds fitted on its training sites."""

    model: object
    tokenizer: Tokenizer
    method: str
    module: torch.nn.Module
    cutoffs: tuple[float, ...]
    thresholds: list[float]
    context: int

    def encode(self, sites: list[ContactSite], truncate: bool = True) -> list[Encoding]:
        return [encode_site(self.tokenizer, s, self.context, truncate) for s in sites]

    def predict(
        self, sites: list[ContactSite], encodings: list[Encoding] | None = None, device="cpu"
    ) -> list[np.ndarray]:
        encodings = encodings if encodings is not None else self.encode(sites)
        lengths = [len(s.protein) for s in sites]
        if self.method == "head":
            return predict_contact_probabilities(
                self.model, self.module, encodings, lengths, self.tokenizer.pad_id, device
            )
        return predict_probe(self.model, self.module, encodings, lengths, device)

    def describe(self) -> dict:
        return {
            **self.module.describe(),
            "task": HEAD_KIND,
            "method": self.method,
            "cutoffs": list(self.cutoffs),
            "thresholds": self.thresholds,
            "context": self.context,
        }

    def save(self, directory: str | Path, metadata: dict | None = None) -> None:
        save_model(
            directory,
            self.model,
            self.tokenizer,
            head=self.describe(),
            head_state=self.module.state_dict(),
            metadata=metadata,
            overwrite=True,
        )


def load_contact_predictor(directory: str | Path) -> ContactPredictor:
    """A model directory written by `obte finetune contacts` (its ``config.json`` head says how;
    :func:`~obte_cli.engine.model.directory.load_model` has checked every field and weight of it)."""
    loaded = load_model(directory)
    head = loaded.head or {}
    if head.get("task") != HEAD_KIND:
        raise InputError(f"{directory}: not a contact model (train one with `obte finetune contacts`)")
    module = build_head(head, loaded.model.config.width)
    module.load_state_dict(loaded.head_state)
    return ContactPredictor(
        loaded.model.eval(),
        loaded.tokenizer,
        head["method"],
        module.eval(),
        tuple(float(c) for c in head["cutoffs"]),
        [float(t) for t in head["thresholds"]],
        int(head["context"]),
    )

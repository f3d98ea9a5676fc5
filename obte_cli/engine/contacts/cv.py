"""Cross-validated contact prediction: the protocol of `obte finetune contacts` and `obte bench contacts`.

Sites are dealt to folds grouped by protein sequence (:func:`obte_cli.engine.finetuning.folds.plan_folds`): the two
identical chains of a homodimer always land in the same fold. For each fold a *fresh copy* of the
backbone is trained on the other folds, its F1 threshold is fitted on those training sites, and it
predicts the held-out sites. Every score is therefore out-of-fold.

Predictors (``method``):

* ``head`` — the fine-tuned per-residue head (:mod:`obte_cli.engine.contacts.head`);
* ``attention`` — the paper's probe on the frozen backbone's attention maps
  (:mod:`obte_cli.engine.contacts.probe`);
* ``propensity`` — no model: P(contact | amino acid) counted on the training folds, the baseline any
  sequence model must beat (arginine and lysine touch DNA far more often than leucine).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from obte_cli.engine.contacts.fitting import fit_contact_predictor, fit_thresholds
from obte_cli.engine.contacts.sites import ContactSite, encode_site
from obte_cli.engine.core.metrics import f1_scores, mean_and_sem, random_guess_f1, roc_auc
from obte_cli.engine.finetuning.folds import plan_folds
from obte_cli.engine.finetuning.trainer import FinetuneSettings
from obte_cli.engine.model.directory import load_model
from obte_cli.engine.model.encoder import ObteModel, set_context
from obte_cli.engine.tokenizers.base import Tokenizer

METHODS = ("head", "attention", "propensity")


@dataclass
class ContactCV:
    method: str
    cutoffs: tuple[float, ...]
    fold_of_site: np.ndarray
    probabilities: list[np.ndarray]  # out-of-fold, (n_residues, n_cutoffs) per site
    thresholds: dict[int, list[float]] = field(default_factory=dict)  # fold → per-cutoff threshold


def site_folds(sites: list[ContactSite], n_folds: int, seed: int) -> np.ndarray:
    plan = plan_folds([s.protein for s in sites], n_folds, seed)
    return plan.fold_of_rows([s.protein for s in sites])


def propensity_probabilities(train: list[ContactSite], test: list[ContactSite]) -> list[np.ndarray]:
    """P(contact | amino acid) from ``train`` (add-one smoothing towards the overall rate) for ``test``."""
    labels = np.concatenate([s.labels for s in train]).astype(np.float64)
    residues = np.array(list("".join(s.protein for s in train)))
    overall = labels.mean(axis=0)
    table = {}
    for aa in np.unique(residues):
        rows = labels[residues == aa]
        table[aa] = (rows.sum(axis=0) + overall) / (len(rows) + 1)
    return [np.array([table.get(aa, overall) for aa in s.protein]) for s in test]


def backbone_loader(path: Path, context: int | None = None) -> Callable[[], tuple[ObteModel, Tokenizer]]:
    """What :func:`cross_validate_contacts` calls for each fold's fresh backbone: the model in ``path`` and its
    tokenizer, reading up to ``context`` tokens when given (:func:`~obte_cli.engine.model.encoder.set_context`)."""

    def load() -> tuple[ObteModel, Tokenizer]:
        loaded = load_model(path)
        if context is not None:
            set_context(loaded.model, context)
        return loaded.model, loaded.tokenizer

    return load


def cross_validate_contacts(
    load_backbone: Callable[[], tuple] | None,
    sites: list[ContactSite],
    cutoffs: tuple[float, ...],
    n_folds: int,
    settings: FinetuneSettings,
    method: str = "head",
    device="cpu",
    on_fold: Callable[[int, int], None] | None = None,
    on_step: Callable[[dict], None] | None = None,
    probe_settings=None,
) -> ContactCV:
    """Out-of-fold contact probabilities for every site (see module docstring).

    ``load_backbone()`` returns a fresh (model, tokenizer) each call (each fold trains its own copy); the
    ``propensity`` method reads no model and takes None.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}")
    folds = site_folds(sites, n_folds, settings.seed)
    result = ContactCV(method, cutoffs, folds, [None] * len(sites))  # type: ignore[list-item]
    encodings = None
    for fold in range(n_folds):
        if on_fold is not None:
            on_fold(fold, n_folds)
        train = [i for i in range(len(sites)) if folds[i] != fold]
        test = [i for i in range(len(sites)) if folds[i] == fold]
        train_sites, test_sites = [sites[i] for i in train], [sites[i] for i in test]
        if method == "propensity":
            thresholds = fit_thresholds(propensity_probabilities(train_sites, train_sites), train_sites)
            test_p = propensity_probabilities(train_sites, test_sites)
        else:
            model, tokenizer = load_backbone()
            window = model.config.max_positions  # a longer one: load the backbone with backbone_loader(path, context)
            if encodings is None:  # the same tokenizer for every fold: encode once
                encodings = [encode_site(tokenizer, s, window) for s in sites]
            predictor = fit_contact_predictor(
                model,
                tokenizer,
                train_sites,
                [encodings[i] for i in train],
                cutoffs,
                method,
                settings,
                probe_settings,
                device,
                window,
                on_step,
            )
            thresholds = predictor.thresholds
            test_p = predictor.predict(test_sites, [encodings[i] for i in test], device)
        result.thresholds[fold] = thresholds
        for i, p in zip(test, test_p):
            result.probabilities[i] = p
    return result


def contact_metrics(cv: ContactCV, sites: list[ContactSite]) -> pd.DataFrame:
    """Per cutoff: positive rate, random-guess F1, F1 / precision / recall (mean ± SEM over folds, each
    fold at its own training-fitted threshold), pooled F1 and ROC AUC over all out-of-fold residues."""
    rows = []
    for c, cutoff in enumerate(cv.cutoffs):
        per_fold = []
        pooled_p, pooled_y, pooled_call = [], [], []
        for fold, thresholds in sorted(cv.thresholds.items()):
            members = np.flatnonzero(cv.fold_of_site == fold)
            p = np.concatenate([cv.probabilities[i][:, c] for i in members])
            y = np.concatenate([sites[i].labels[:, c] for i in members])
            keep = ~np.isnan(p)
            per_fold.append(f1_scores(y[keep], p[keep], thresholds[c]))
            pooled_p.append(p[keep])
            pooled_y.append(y[keep])
            pooled_call.append(p[keep] >= thresholds[c])
        p, y = np.concatenate(pooled_p), np.concatenate(pooled_y)
        calls = np.concatenate(pooled_call).astype(float)
        rate = float(y.mean())
        row = {
            "method": cv.method,
            "cutoff": cutoff,
            "residues": int(len(y)),
            "positive_rate": rate,
            "random_f1": random_guess_f1(rate),
        }
        for key in ("f1", "precision", "recall"):
            mean, sem = mean_and_sem([f[key] for f in per_fold])
            row[key], row[f"{key}_sem"] = mean, sem
        row["pooled_f1"] = f1_scores(y, calls, 0.5)["f1"]
        row["roc_auc"] = roc_auc(y, p)
        rows.append(row)
    return pd.DataFrame(rows)


def prediction_table(cv: ContactCV, sites: list[ContactSite]) -> pd.DataFrame:
    """One row per residue: site, residue, fold, label and out-of-fold probability per cutoff."""
    frames = []
    for i, site in enumerate(sites):
        frame = pd.DataFrame(
            {
                "site": site.name,
                "residue": site.residue_ids,
                "aa": list(site.protein),
                "fold": int(cv.fold_of_site[i]) + 1,
            }
        )
        for c, cutoff in enumerate(cv.cutoffs):
            frame[f"contact_{cutoff:g}"] = site.labels[:, c]
            frame[f"p_{cutoff:g}"] = cv.probabilities[i][:, c]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def fold_table(sites: list[ContactSite], fold_of_site: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "site": [s.name for s in sites],
            "residues": [len(s.protein) for s in sites],
            "fold": [int(f) + 1 for f in fold_of_site],
        }
    )

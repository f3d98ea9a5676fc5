"""Training a contact model, the protocol of `obte finetune contacts`: read the labelled sites, cross-validate
them by protein sequence (optional; :mod:`obte_cli.engine.contacts.cv`), then fit the predictor on every
site and save it as a model directory that `obte contacts predict` reads.

Nothing here prints: what the run is doing goes to the callbacks of :class:`ContactReport`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from obte_cli.engine.contacts.cv import (
    backbone_loader,
    contact_metrics,
    cross_validate_contacts,
    fold_table,
    prediction_table,
)
from obte_cli.engine.contacts.fitting import ProbeSettings, fit_contact_predictor
from obte_cli.engine.contacts.predictor import ContactPredictor
from obte_cli.engine.contacts.sites import ContactSite, encode_site, read_contact_labels, sites_cut
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.outputs import staged_directory
from obte_cli.engine.core.tables import write_tsv
from obte_cli.engine.finetuning.trainer import FinetuneSettings
from obte_cli.engine.tokenizers.base import check_standard


def _ignore(*args) -> None:
    return None


def no_progress(total_steps: int, label: str) -> AbstractContextManager[Callable[[dict], None]]:
    """The default ``progress`` of a report: no progress shown."""
    return nullcontext(_ignore)


@dataclass
class ContactReport:
    """How a contact run tells its caller what it is doing (the engine itself is silent).

    ``progress(total_steps, label)`` returns a context manager that yields the per-step callback
    (``training_progress`` of the commands fits); the others are called once, or once per fold.
    """

    loaded: Callable[[list[ContactSite], tuple[float, ...]], None] = _ignore  # (sites, cutoffs)
    progress: Callable[[int, str], AbstractContextManager[Callable[[dict], None]]] = no_progress
    fold_started: Callable[[int, int], None] = _ignore  # (fold, folds)
    cv_done: Callable[[pd.DataFrame], None] = _ignore  # the out-of-fold metrics table
    # (sites cut, sites, context): sites longer than the context, their protein cut at its C-terminal end
    cut: Callable[[int, int, int], None] = _ignore


@dataclass
class ContactTraining:
    """What `obte finetune contacts` trains: a backbone, the head's fine-tuning settings (the probe's follow
    them, :meth:`~obte_cli.engine.contacts.probe.ProbeSettings.alongside`), the method and the folds."""

    backbone: Path
    settings: FinetuneSettings
    method: str = "head"  # "head" (fine-tune backbone + head) or "attention" (probe on the frozen maps)
    folds: int = 5  # 0: only the final fit on every site
    context: int | None = None  # tokens a site may take (None: the backbone's)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    # "unk": letters outside the standard alphabets are read as <unk>; "error": such a site is refused
    on_unknown: str = "unk"

    @property
    def probe_settings(self) -> ProbeSettings:
        return ProbeSettings.alongside(self.settings)

    def steps(self, n_sites: int) -> int:
        """Optimizer steps of one fit on ``n_sites`` (the head takes a batch per step, the probe one site)."""
        if self.method == "head":
            return self.settings.epochs * math.ceil(n_sites / self.settings.batch_size)
        return self.probe_settings.epochs * n_sites


@dataclass
class ContactRun:
    sites: list[ContactSite]
    cutoffs: tuple[float, ...]
    metrics: pd.DataFrame | None  # out-of-fold, per cutoff (None without folds)
    predictor: ContactPredictor  # the final fit on every site, as saved in out/model


def read_training_sites(labels: Path, training: ContactTraining) -> tuple[list[ContactSite], tuple[float, ...]]:
    """The sites and cutoffs of ``labels``, checked for the run: standard letters where asked, and enough
    distinct proteins for the folds."""
    sites, cutoffs = read_contact_labels(labels)
    if training.on_unknown == "error":  # sites are encoded with <unk> for such letters; refuse them first
        for site in sites:
            try:
                check_standard(site.segments())
            except InputError as exc:
                raise exc.within(str(labels)) from None
    n_proteins = len({s.protein for s in sites})
    if training.folds and n_proteins < training.folds:
        raise InputError(f"{labels}: {n_proteins} distinct protein sequences, fewer than --folds {training.folds}")
    return sites, cutoffs


def train_contact_model(
    labels: Path, out: Path, training: ContactTraining, report: ContactReport | None = None
) -> ContactRun:
    """Train on the sites of ``labels`` into ``out`` (replaced if it exists): with folds, predictions.tsv
    (out-of-fold), metrics.tsv and folds.tsv first; then model/, fitted on every site with F1-maximising
    thresholds from its training sites."""
    report = report or ContactReport()
    out = Path(out)
    sites, cutoffs = read_training_sites(labels, training)
    report.loaded(sites, cutoffs)
    backbone = backbone_loader(training.backbone, training.context)
    model, tokenizer = backbone()
    context = model.config.max_positions
    del model  # each fit below loads its own copy
    report.cut(sites_cut(tokenizer, sites, context), len(sites), context)
    settings, probe_settings, folds = training.settings, training.probe_settings, training.folds
    metrics = None
    with staged_directory(out, inputs=[labels, training.backbone]) as staging:
        if folds:
            steps = folds * training.steps(len(sites) - len(sites) // folds)
            with report.progress(steps, f"{folds}-fold CV") as on_step:
                cv = cross_validate_contacts(
                    backbone,
                    sites,
                    cutoffs,
                    folds,
                    settings,
                    training.method,
                    training.device,
                    on_fold=report.fold_started,
                    on_step=on_step,
                    probe_settings=probe_settings,
                )
            metrics = contact_metrics(cv, sites)
            write_tsv(metrics, staging / "metrics.tsv")
            write_tsv(prediction_table(cv, sites), staging / "predictions.tsv")
            write_tsv(fold_table(sites, cv.fold_of_site), staging / "folds.tsv")
            report.cv_done(metrics)
        model, tokenizer = backbone()
        encodings = [encode_site(tokenizer, s, model.config.max_positions) for s in sites]
        with report.progress(training.steps(len(sites)), "final fit on all sites") as on_step:
            predictor = fit_contact_predictor(
                model,
                tokenizer,
                sites,
                encodings,
                cutoffs,
                training.method,
                settings,
                probe_settings,
                training.device,
                on_step=on_step,
            )
        predictor.save(
            staging / "model",
            metadata={
                "task": "contacts",
                "labels": str(labels),
                "backbone": str(training.backbone),
                "sites": len(sites),
                "finetune": settings.to_dict(),
                "probe": probe_settings.to_dict() if training.method == "attention" else None,
            },
        )
    return ContactRun(sites, cutoffs, metrics, predictor)

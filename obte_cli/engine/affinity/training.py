"""Training the ΔG model: cross-validation grouped by protein (with the homology guard), the fold
ensemble and its reports, as `obte finetune affinity` and `obte bench pronab` run it."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from obte_cli.engine.affinity.baseline import composition_features
from obte_cli.engine.affinity.composition_model import fit_composition_model
from obte_cli.engine.affinity.cv import (
    CrossValidationResult,
    EncodedTable,
    FoldAssignment,
    assign_folds,
    cross_validate,
    encode_affinity_table,
    fold_directory_name,
    fold_metrics_table,
    train_all_data,
)
from obte_cli.engine.affinity.data import load_affinity_data
from obte_cli.engine.affinity.ensemble import write_ensemble_manifest
from obte_cli.engine.affinity.report import write_cv_outputs
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.metrics import regression_metrics
from obte_cli.engine.core.outputs import staged_directory
from obte_cli.engine.core.progress import ProgressFactory, no_progress
from obte_cli.engine.finetuning.trainer import FinetuneSettings
from obte_cli.engine.model.directory import load_model


def _ignore(*args) -> None:
    return None


def _no_progress(total_steps: int, label: str) -> AbstractContextManager[Callable[[dict], None]]:
    return nullcontext(_ignore)


@dataclass
class CVReport:
    """How a cross-validation run tells its caller what it is doing (the engine itself is silent).

    ``progress(total_steps, label)`` returns a context manager that yields the per-step callback
    (``training_progress`` of the commands fits); the others are called once each, or once per fold.
    """

    loaded: Callable[[pd.DataFrame, dict], None] = _ignore  # (table, dropped counts)
    encoded: Callable[[EncodedTable, int], None] = _ignore  # (encoded table, backbone context)
    assigned: Callable[[FoldAssignment, pd.DataFrame], None] = _ignore  # (folds, table); CV only
    progress: Callable[[int, str], AbstractContextManager[Callable[[dict], None]]] = _no_progress
    work_progress: ProgressFactory = no_progress  # other long work: the homology guard's alignments
    fold_started: Callable[[int, int, int], None] = _ignore  # (fold, train rows, test rows)
    fold_done: Callable[[int, dict], None] = _ignore  # (fold, test metrics)
    baseline: Callable[[int], None] = _ignore  # (folds): the bench's baseline starts


@dataclass
class AffinityCV:
    """What `obte finetune affinity` trains: a backbone, ΔG fine-tuning settings, folds and the guard."""

    backbone: Path
    settings: FinetuneSettings
    folds: int = 10  # 0: one model on all rows
    homology_threshold: float | None = 0.3  # None: no homology guard
    truncate: bool = False
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    workers: int | None = None  # homology alignments (None: all cores)
    homology_cache: Path | None = None
    # "error": rows with letters outside the standard alphabets are dropped and counted (the paper's filter);
    # "unk": they are kept, each such letter read as <unk>
    on_unknown: str = "error"
    # what the ΔG head reads: "first" (the first token, as the reference) or "parts-mean" (the protein's
    # and the nucleic acid's mean states side by side)
    readout: str = "first"
    # "transformer": fine-tune the backbone; "composition": the composition model (no backbone, no GPU,
    # none of the training settings but the seed)
    method: str = "transformer"


@dataclass
class AffinityCVRun:
    table: pd.DataFrame
    folds: FoldAssignment | None  # None for the all-data model (folds = 0)
    result: CrossValidationResult | None


def train_affinity_cv(data: Path, out: Path, cv: AffinityCV, report: CVReport | None = None) -> AffinityCVRun:
    """Fine-tune ΔG models on ``data`` into ``out`` (replaced if it exists): fold-NN/ models,
    ensemble.json, folds.tsv, predictions.tsv, metrics.tsv and scatter.png; with ``folds = 0`` one
    all-data/ model and ensemble.json."""
    report = report or CVReport()
    out = Path(out)
    settings = cv.settings
    table, dropped = load_affinity_data(data, keep_nonstandard=cv.on_unknown == "unk")
    report.loaded(table, dropped)
    if cv.method == "composition":
        return _composition_cv(data, out, cv, table, report)
    backbone = load_model(cv.backbone)
    context = backbone.model.config.max_positions
    encoded = encode_affinity_table(backbone.tokenizer, table, context, cv.truncate, cv.on_unknown)
    report.encoded(encoded, context)
    provenance = {
        "task": "affinity",
        "data": Path(data).name,
        "backbone": str(cv.backbone),
        "seed": settings.seed,
        "readout": cv.readout,
    }
    del backbone
    with staged_directory(out, inputs=[data, cv.backbone]) as staging:
        if cv.folds == 0:
            with report.progress(settings.epochs * math.ceil(len(table) / settings.batch_size), "all data") as on_step:
                train_all_data(
                    cv.backbone, table, encoded, settings, staging, cv.device, provenance, on_step, cv.readout
                )
            return AffinityCVRun(table, None, None)
        assignment = assign_folds(
            table, cv.folds, settings.seed, cv.homology_threshold, cv.workers, cv.homology_cache, report.work_progress
        )
        report.assigned(assignment, table)
        provenance["homology_threshold"] = cv.homology_threshold
        total_steps = sum(
            settings.epochs * math.ceil(int((assignment.fold_of_row != f).sum()) / settings.batch_size)
            for f in range(cv.folds)
        )
        with report.progress(total_steps, f"{cv.folds}-fold CV") as on_step:
            result = cross_validate(
                cv.backbone,
                table,
                encoded,
                assignment,
                settings,
                staging,
                cv.device,
                provenance,
                on_fold=report.fold_started,
                on_step=on_step,
                on_fold_done=report.fold_done,
                readout=cv.readout,
            )
        write_cv_outputs(staging, table, assignment, result, title=f"obte ΔG, {cv.folds}-fold CV by protein")
        return AffinityCVRun(table, assignment, result)


def _composition_cv(data: Path, out: Path, cv: AffinityCV, table: pd.DataFrame, report: CVReport) -> AffinityCVRun:
    """The composition model under the same protocol and outputs as the transformer's."""
    seed = cv.settings.seed
    features = composition_features(table)
    dg, groups = table["dG"].to_numpy(np.float64), table["protein"].to_numpy()
    if len(set(groups)) < 2:
        raise InputError(f"{data}: the composition model needs measurements of at least 2 proteins")
    provenance = {"task": "affinity", "method": "composition", "data": Path(data).name, "seed": seed}
    with staged_directory(out, inputs=[data]) as staging:
        if cv.folds == 0:
            model = fit_composition_model(features, dg, groups, seed, {**provenance, "train_rows": len(table)})
            model.save(staging / "all-data")
            write_ensemble_manifest(staging, ["all-data"], provenance)
            return AffinityCVRun(table, None, None)
        assignment = assign_folds(
            table, cv.folds, seed, cv.homology_threshold, cv.workers, cv.homology_cache, report.work_progress
        )
        report.assigned(assignment, table)
        provenance["homology_threshold"] = cv.homology_threshold
        predicted = np.full(len(table), np.nan)
        members = []
        for fold in range(cv.folds):
            test = assignment.fold_of_row == fold
            if len(set(groups[~test])) < 2:
                raise InputError(f"{data}: fold {fold + 1} trains on one protein only; use fewer --folds")
            report.fold_started(fold, int((~test).sum()), int(test.sum()))
            metadata = {**provenance, "fold": fold + 1, "n_folds": cv.folds, "train_rows": int((~test).sum())}
            model = fit_composition_model(features[~test], dg[~test], groups[~test], seed, metadata)
            predicted[test] = model.predict_features(features[test])
            metrics = regression_metrics(dg[test], predicted[test])
            report.fold_done(fold, metrics)
            model.metadata.update(test_rows=int(test.sum()), test_metrics=metrics)
            model.save(staging / fold_directory_name(fold))
            members.append(fold_directory_name(fold))
        write_ensemble_manifest(staging, members, provenance)
        result = CrossValidationResult(predicted, fold_metrics_table(table, assignment.fold_of_row, predicted))
        write_cv_outputs(
            staging, table, assignment, result, title=f"obte ΔG (composition), {cv.folds}-fold CV by protein"
        )
        return AffinityCVRun(table, assignment, result)

"""`obte bench pronab`: the ΔG model and the composition baseline, scored on the same folds.

The model's numbers come from a cross-validation run's ``predictions.tsv``: one trained here by
:func:`train_affinity_cv` (the protocol of `obte finetune affinity`, which runs the same function), or an
earlier run's directory. The baseline (:mod:`obte_cli.engine.affinity.baseline`) is trained on exactly
those folds — the same test proteins, the same train-only (homology-guarded) rows — so the two columns
differ only in the method. :func:`run_pronab_bench` does it all; nothing here prints: progress goes
through the callbacks of :class:`CVReport`.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from obte_cli.engine.affinity.baseline import baseline_cross_validation
from obte_cli.engine.affinity.cv import (
    CrossValidationResult,
    EncodedTable,
    FoldAssignment,
    assign_folds,
    cross_validate,
    encode_affinity_table,
    fold_metrics_table,
    train_all_data,
)
from obte_cli.engine.affinity.data import load_affinity_data
from obte_cli.engine.affinity.report import write_cv_outputs
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.metrics import mean_and_sem, regression_metrics
from obte_cli.engine.core.plots import method_comparison
from obte_cli.engine.core.tables import write_tsv
from obte_cli.engine.finetuning.trainer import FinetuneSettings
from obte_cli.engine.model.directory import load_model

BENCH_COLUMNS = [
    "method",
    "folds",
    "test_rows",
    "pcc_mean",
    "pcc_sem",
    "mae_mean",
    "mae_sem",
    "rmse_mean",
    "rmse_sem",
    "pooled_pcc",
    "pooled_mae",
]


def folds_from_predictions(table: pd.DataFrame, predictions_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(fold of each row, -1 if never tested; the model's out-of-fold ΔG, NaN if never tested).

    Checks that the predictions were made on this data: row numbers in range and measured ΔG equal.
    """
    try:
        predictions = pd.read_csv(predictions_path, sep="\t")
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{predictions_path}: unreadable ({exc})") from None
    needed = {"row", "fold", "dG_measured", "dG_predicted"}
    if not needed <= set(predictions.columns):
        raise InputError(f"{predictions_path}: needs columns {', '.join(sorted(needed))}")
    rows = predictions["row"].to_numpy() - 1
    if rows.min() < 0 or rows.max() >= len(table):
        raise InputError(
            f"{predictions_path}: row numbers outside the {len(table)} rows of the data (another data file?)"
        )
    if not np.allclose(table["dG"].to_numpy()[rows], predictions["dG_measured"].to_numpy(), atol=1e-3):
        raise InputError(f"{predictions_path}: measured ΔG differs from the data's (made on another data file?)")
    fold_of_row = np.full(len(table), -1, dtype=np.int64)
    fold_of_row[rows] = predictions["fold"].to_numpy() - 1
    predicted = np.full(len(table), np.nan)
    predicted[rows] = predictions["dG_predicted"].to_numpy()
    return fold_of_row, predicted


def method_summary(method: str, table: pd.DataFrame, fold_of_row: np.ndarray, predicted: np.ndarray) -> dict:
    folds = fold_metrics_table(table, fold_of_row, predicted)
    tested = fold_of_row >= 0
    pooled = regression_metrics(table["dG"].to_numpy()[tested], predicted[tested])
    row = {"method": method, "folds": len(folds), "test_rows": int(tested.sum())}
    for metric in ("pcc", "mae", "rmse"):
        row[f"{metric}_mean"], row[f"{metric}_sem"] = mean_and_sem(folds[metric].tolist())
    row["pooled_pcc"], row["pooled_mae"] = pooled["pcc"], pooled["mae"]
    return row


def comparison_table(table: pd.DataFrame, fold_of_row: np.ndarray, predictions: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame(
        [method_summary(m, table, fold_of_row, p) for m, p in predictions.items()], columns=BENCH_COLUMNS
    )


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
    table, dropped = load_affinity_data(data)
    report.loaded(table, dropped)
    backbone = load_model(cv.backbone)
    context = backbone.model.config.max_positions
    encoded = encode_affinity_table(backbone.tokenizer, table, context, cv.truncate)
    report.encoded(encoded, context)
    provenance = {"task": "affinity", "data": Path(data).name, "backbone": str(cv.backbone), "seed": settings.seed}
    del backbone
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    if cv.folds == 0:
        with report.progress(settings.epochs * math.ceil(len(table) / settings.batch_size), "all data") as on_step:
            train_all_data(cv.backbone, table, encoded, settings, out, cv.device, provenance, on_step)
        return AffinityCVRun(table, None, None)
    assignment = assign_folds(table, cv.folds, settings.seed, cv.homology_threshold, cv.workers, cv.homology_cache)
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
            out,
            cv.device,
            provenance,
            on_fold=report.fold_started,
            on_step=on_step,
            on_fold_done=report.fold_done,
        )
    write_cv_outputs(out, table, assignment, result, title=f"obte ΔG, {cv.folds}-fold CV by protein")
    return AffinityCVRun(table, assignment, result)


def run_pronab_bench(
    data: Path,
    out: Path,
    seed: int,
    *,
    from_cv: Path | None = None,
    train: AffinityCV | None = None,
    report: CVReport | None = None,
) -> pd.DataFrame:
    """The bench: with ``train``, first a CV run into ``out/obte-cv``; else score the run in ``from_cv``.
    Writes bench.tsv and bench.png to ``out`` and returns the table (one row per method)."""
    if (train is None) == (from_cv is None):
        raise InputError("give either --model (train and score) or --from-cv (score an existing run)")
    report = report or CVReport()
    out = Path(out)
    if train is not None:
        from_cv = out / "obte-cv"
        train_affinity_cv(data, from_cv, train, report)
    out.mkdir(parents=True, exist_ok=True)
    table, _ = load_affinity_data(data)
    fold_of_row, obte_predicted = folds_from_predictions(table, Path(from_cv) / "predictions.tsv")
    report.baseline(len(set(fold_of_row) - {-1}))
    baseline_predicted = baseline_cross_validation(table, fold_of_row, seed)
    results = comparison_table(table, fold_of_row, {"obte": obte_predicted, "composition+GBM": baseline_predicted})
    write_tsv(results, out / "bench.tsv")
    method_comparison(
        results["method"].tolist(),
        [
            ("PCC (mean ± SEM over folds)", results["pcc_mean"].tolist(), results["pcc_sem"].tolist()),
            ("MAE, kcal/mol (mean ± SEM over folds)", results["mae_mean"].tolist(), results["mae_sem"].tolist()),
        ],
        f"ProNAB ΔG, {results['folds'][0]}-fold CV grouped by protein ({results['test_rows'][0]} test rows)",
        out / "bench.png",
    )
    return results

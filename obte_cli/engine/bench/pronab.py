"""`obte bench pronab`: the ΔG model and the composition baseline, scored on the same folds.

The model's numbers come from a cross-validation run's ``predictions.tsv``: one trained here by
:func:`train_affinity_cv` (the protocol of `obte finetune affinity`, which runs the same function), or an
earlier run's directory. The baseline (:mod:`obte_cli.engine.affinity.baseline`) is trained on exactly
those folds — the same test proteins, the same train-only (homology-guarded) rows — so the two columns
differ only in the method.

Besides PCC and MAE over all test complexes, two figures say *what* a method learned (computed on the
out-of-fold predictions, proteins grouped by sequence):

* ``within_protein_pcc`` — mean over test proteins with ≥ 5 measurements of the PCC between predicted
  and measured ΔG across that protein's nucleic acids: nucleic-acid specificity
  (:func:`~obte_cli.engine.core.metrics.within_group_pcc`; ``within_protein_n`` proteins);
* ``per_protein_pcc`` — PCC between each protein's mean predicted and mean measured ΔG: does it rank
  the proteins? :func:`run_pronab_bench` does it all; nothing here prints: progress goes
through the callbacks of :class:`CVReport`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from obte_cli.engine.affinity.baseline import baseline_cross_validation
from obte_cli.engine.affinity.cv import (
    fold_metrics_table,
)
from obte_cli.engine.affinity.data import load_affinity_data
from obte_cli.engine.affinity.training import AffinityCV, CVReport, train_affinity_cv
from obte_cli.engine.core.directories import output_directory
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.metrics import group_mean_pcc, mean_and_sem, regression_metrics, within_group_pcc
from obte_cli.engine.core.plots import method_comparison
from obte_cli.engine.core.tables import read_table, write_tsv

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
    "within_protein_pcc",
    "within_protein_n",
    "per_protein_pcc",
]
MIN_ROWS_WITHIN_PROTEIN = 5  # a test protein needs this many measurements for its within-protein PCC


def folds_from_predictions(table: pd.DataFrame, predictions_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(fold of each row, -1 if never tested; the model's out-of-fold ΔG, NaN if never tested).

    Checks that the predictions were made on this data: row numbers in range and measured ΔG equal.
    """
    predictions = read_table(predictions_path)
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
    # proteins are grouped by sequence, as the folds are
    true, guess, proteins = table["dG"].to_numpy()[tested], predicted[tested], table["protein"].to_numpy()[tested]
    row["within_protein_pcc"], row["within_protein_n"] = within_group_pcc(
        true, guess, proteins, MIN_ROWS_WITHIN_PROTEIN
    )
    row["per_protein_pcc"] = group_mean_pcc(true, guess, proteins)
    return row


def comparison_table(table: pd.DataFrame, fold_of_row: np.ndarray, predictions: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame(
        [method_summary(m, table, fold_of_row, p) for m, p in predictions.items()], columns=BENCH_COLUMNS
    )


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
    output_directory(out)
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

"""Tables and the figure a ΔG cross-validation run leaves in its output directory.

* ``folds.tsv``        protein_id, fold (``train-only`` for homology-guarded proteins), rows — one row per
  protein id (accessions with the same sequence are one group and share a fold)
* ``predictions.tsv``  one row per tested complex: row, protein_id, fold, na_type, nucleic_acid,
  complement, dG_measured, dG_predicted (kcal/mol)
* ``metrics.tsv``      fold, proteins, rows, pcc, mae, rmse — one row per fold, then ``mean`` and ``sem``
  (standard error over folds) and ``pooled`` (all out-of-fold predictions at once)
* ``scatter.png``      predicted vs measured, PCC and MAE (mean ± SEM over folds) in the title
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from obte_cli.engine.affinity.cv import CrossValidationResult, FoldAssignment
from obte_cli.engine.core.metrics import mean_and_sem, regression_metrics
from obte_cli.engine.core.plots import prediction_scatter
from obte_cli.engine.core.tables import write_tsv

METRICS = ("pcc", "mae", "rmse")


def summarise_folds(fold_metrics: pd.DataFrame) -> str:
    pcc, pcc_sem = mean_and_sem(fold_metrics["pcc"].tolist())
    mae, mae_sem = mean_and_sem(fold_metrics["mae"].tolist())
    return (
        f"PCC {pcc:.3f} ± {pcc_sem:.3f}, MAE {mae:.3f} ± {mae_sem:.3f} kcal/mol (mean ± SEM over "
        f"{len(fold_metrics)} folds)"
    )


def metrics_with_summary(fold_metrics: pd.DataFrame, measured: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    """Per-fold rows plus ``mean``, ``sem`` and ``pooled`` rows."""
    table = fold_metrics.astype({"fold": str})
    mean = {"fold": "mean", "proteins": "", "rows": ""}
    sem = {"fold": "sem", "proteins": "", "rows": ""}
    for metric in METRICS:
        mean[metric], sem[metric] = mean_and_sem(fold_metrics[metric].tolist())
    tested = ~np.isnan(predicted)
    pooled = regression_metrics(measured[tested], predicted[tested])
    pooled_row = {"fold": "pooled", "proteins": int(fold_metrics["proteins"].sum()), "rows": pooled.pop("n"), **pooled}
    return pd.concat([table, pd.DataFrame([mean, sem, pooled_row])], ignore_index=True)


def folds_table(table: pd.DataFrame, fold_of_row: np.ndarray) -> pd.DataFrame:
    """One row per protein id (accessions sharing a sequence are one CV group, so they share a fold)."""
    per_row = pd.DataFrame({"protein_id": table["protein_id"].to_numpy(), "fold": fold_of_row})
    grouped = per_row.groupby("protein_id", sort=False)["fold"].agg(["first", "size"]).reset_index()
    return pd.DataFrame(
        {
            "protein_id": grouped["protein_id"],
            "fold": [str(f + 1) if f >= 0 else "train-only" for f in grouped["first"]],
            "rows": grouped["size"],
        }
    )


def write_cv_outputs(
    out: Path, table: pd.DataFrame, folds: FoldAssignment, result: CrossValidationResult, title: str
) -> None:
    out = Path(out)
    write_tsv(folds_table(table, folds.fold_of_row), out / "folds.tsv")
    tested = np.flatnonzero(folds.fold_of_row >= 0)
    predictions = table.iloc[tested][["protein_id", "na_type", "nucleic_acid", "complement"]].copy()
    predictions.insert(0, "row", tested + 1)
    predictions.insert(2, "fold", folds.fold_of_row[tested] + 1)
    predictions["dG_measured"] = table["dG"].to_numpy()[tested]
    predictions["dG_predicted"] = result.predicted[tested]
    write_tsv(predictions, out / "predictions.tsv")
    measured = table["dG"].to_numpy(dtype=np.float64)
    write_tsv(metrics_with_summary(result.fold_metrics, measured, result.predicted), out / "metrics.tsv")
    prediction_scatter(
        measured[tested], result.predicted[tested], scatter_title(title, result.fold_metrics), out / "scatter.png"
    )


def scatter_title(title: str, fold_metrics: pd.DataFrame) -> str:
    """Three short lines, so the title fits the figure: what, PCC and MAE, and how they were averaged."""
    summary = summarise_folds(fold_metrics)
    scores, averaging = summary.split(" (", 1)
    return f"{title}\n{scores}\n({averaging}"

"""ΔG fine-tuning with cross-validation: the protocol behind `obte finetune affinity` and `obte bench pronab`.

One run, step by step:

1. every complex is encoded with the backbone's tokenizer (:func:`encode_affinity_table`);
2. proteins are dealt to folds, grouped by sequence, with the homology guard (:func:`assign_folds`);
3. for each fold a *fresh copy* of the backbone is fine-tuned on the other folds plus the train-only
   (guarded) proteins, predicts its fold, and is saved as ``fold-NN/`` (:func:`cross_validate`);
4. ``ensemble.json`` lists the fold models, so the output directory is itself a model that
   :mod:`obte_cli.engine.affinity.ensemble` can load and `obte affinity` can use (``sd`` = spread of the folds).

With ``n_folds = 0`` a single model is trained on all rows and saved as ``all-data/``.
The target is standardised on each training side only (:class:`TargetScaler`), and its mean and sd are
stored with the head, so a fold never sees its test targets, not even their mean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from obte_cli.engine.affinity.complexes import (
    TargetScaler,
    complex_segments,
    encode_complex,
    row_name,
)
from obte_cli.engine.affinity.ensemble import (
    ENSEMBLE_FILE,
    affinity_head_description,
    affinity_readout,
    write_ensemble_manifest,
)
from obte_cli.engine.bio.homology import homology_matrix
from obte_cli.engine.core.metrics import regression_metrics
from obte_cli.engine.core.progress import ProgressFactory, no_progress
from obte_cli.engine.finetuning.folds import FoldPlan, plan_folds
from obte_cli.engine.finetuning.trainer import FinetuneSettings, train_sequence_task
from obte_cli.engine.model.directory import load_model, save_model
from obte_cli.engine.model.heads import LinearHead
from obte_cli.engine.model.inference import Readout, predict_sequence_task
from obte_cli.engine.tokenizers.base import Tokenizer


@dataclass
class EncodedTable:
    token_ids: list[np.ndarray]
    residues_cut: np.ndarray  # protein residues removed by truncation, per row
    n_tokens: np.ndarray


def encode_affinity_table(
    tokenizer: Tokenizer, table: pd.DataFrame, context: int, truncate: bool, on_unknown: str = "error"
) -> EncodedTable:
    """Token ids of every complex in ``table`` (errors name the protein and the row)."""
    ids, cut = [], []
    for row, r in enumerate(table.itertuples(index=False)):
        segments = complex_segments(r.protein, r.nucleic_acid, r.complement, r.na_type, row_name(table, row))
        encoding, residues_cut = encode_complex(tokenizer, segments, context, truncate, on_unknown)
        ids.append(encoding.ids)
        cut.append(residues_cut)
    return EncodedTable(ids, np.asarray(cut, dtype=np.int64), np.asarray([len(i) for i in ids], dtype=np.int64))


@dataclass
class FoldAssignment:
    plan: FoldPlan
    fold_of_row: np.ndarray  # -1: train-only (guarded) rows

    @property
    def guarded_proteins(self) -> int:
        return int(self.plan.guarded.sum())

    @property
    def guarded_rows(self) -> int:
        return int((self.fold_of_row < 0).sum())


def assign_folds(
    table: pd.DataFrame,
    n_folds: int,
    seed: int,
    homology_threshold: float | None,
    homology_workers: int | None = None,
    homology_cache: Path | None = None,
    progress: ProgressFactory = no_progress,
) -> FoldAssignment:
    """Folds grouped by protein *sequence* (two accessions with one sequence are one group); ``progress``
    hears the homology guard's alignments."""
    groups = table["protein"].tolist()
    homology = None
    if homology_threshold is not None:
        proteins = list(dict.fromkeys(groups))
        homology = homology_matrix(proteins, workers=homology_workers, cache_dir=homology_cache, progress=progress)
    plan = plan_folds(groups, n_folds, seed, homology, homology_threshold)
    return FoldAssignment(plan, plan.fold_of_rows(groups))


@dataclass
class TrainedAffinityModel:
    loaded_backbone: object  # LoadedModel (its model now fine-tuned)
    head: LinearHead
    scaler: TargetScaler
    history: list[dict]
    readout: Readout

    def predict(self, token_ids: list[np.ndarray], device: torch.device | str = "cpu") -> np.ndarray:
        backbone = self.loaded_backbone
        pad_id = backbone.tokenizer.pad_id
        z = predict_sequence_task(backbone.model, self.head, token_ids, pad_id, device, readout=self.readout)[:, 0]
        return self.scaler.inverse(z)

    def save(self, directory: Path, metadata: dict) -> Path:
        backbone = self.loaded_backbone
        return save_model(
            directory,
            backbone.model,
            backbone.tokenizer,
            head=affinity_head_description(self.head, self.scaler, self.readout.kind),
            head_state=self.head.state_dict(),
            metadata=metadata,
            overwrite=True,
        )


def fit_affinity_model(
    backbone_dir: Path,
    token_ids: list[np.ndarray],
    dg: np.ndarray,
    settings: FinetuneSettings,
    device: torch.device | str = "cpu",
    on_step: Callable[[dict], None] | None = None,
    readout: str = "first",
) -> TrainedAffinityModel:
    """Fine-tune a fresh copy of the backbone in ``backbone_dir`` to predict ΔG (kcal/mol), read out as
    ``readout`` (see :class:`~obte_cli.engine.model.inference.Readout`)."""
    loaded = load_model(backbone_dir, device="cpu")
    reader = affinity_readout(readout, loaded.tokenizer)
    torch.manual_seed(settings.seed)
    head = LinearHead(reader.input_width(loaded.model.config.width), 1)
    scaler = TargetScaler.fit(dg)
    history = train_sequence_task(
        loaded.model,
        head,
        token_ids,
        scaler.transform(dg),
        settings,
        loaded.tokenizer.pad_id,
        device,
        "mse",
        on_step,
        readout=reader,
    )
    return TrainedAffinityModel(loaded, head, scaler, history, reader)


@dataclass
class CrossValidationResult:
    predicted: np.ndarray  # out-of-fold ΔG per row; NaN for train-only rows
    fold_metrics: pd.DataFrame  # fold, proteins, rows, pcc, mae, rmse


def fold_metrics_table(table: pd.DataFrame, fold_of_row: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    records = []
    for fold in sorted(set(fold_of_row.tolist()) - {-1}):
        rows = fold_of_row == fold
        metrics = regression_metrics(table["dG"].to_numpy()[rows], predicted[rows])
        records.append(
            {"fold": fold + 1, "proteins": int(table["protein"][rows].nunique()), "rows": metrics.pop("n"), **metrics}
        )
    return pd.DataFrame.from_records(records, columns=["fold", "proteins", "rows", "pcc", "mae", "rmse"])


def fold_directory_name(fold: int) -> str:
    return f"fold-{fold + 1:02d}"


def cross_validate(
    backbone_dir: Path,
    table: pd.DataFrame,
    encoded: EncodedTable,
    folds: FoldAssignment,
    settings: FinetuneSettings,
    out_dir: Path,
    device: torch.device | str = "cpu",
    provenance: dict | None = None,
    on_fold: Callable[[int, int, int], None] | None = None,
    on_step: Callable[[dict], None] | None = None,
    on_fold_done: Callable[[int, dict], None] | None = None,
    readout: str = "first",
) -> CrossValidationResult:
    """Train one model per fold (see module docstring); writes ``fold-NN/`` and ``ensemble.json``.

    ``on_fold(fold, n_train_rows, n_test_rows)`` is called before each fold trains and
    ``on_fold_done(fold, test_metrics)`` after it is scored.
    """
    dg = table["dG"].to_numpy(dtype=np.float64)
    predicted = np.full(len(table), np.nan)
    members = []
    for fold in range(folds.plan.n_folds):
        test = np.flatnonzero(folds.fold_of_row == fold)
        train = np.flatnonzero(folds.fold_of_row != fold)
        if on_fold is not None:
            on_fold(fold, len(train), len(test))
        trained = fit_affinity_model(
            backbone_dir, [encoded.token_ids[i] for i in train], dg[train], settings, device, on_step, readout
        )
        predicted[test] = trained.predict([encoded.token_ids[i] for i in test], device)
        metrics = regression_metrics(dg[test], predicted[test])
        if on_fold_done is not None:
            on_fold_done(fold, metrics)
        name = fold_directory_name(fold)
        trained.save(
            out_dir / name,
            {
                **(provenance or {}),
                "fold": fold + 1,
                "n_folds": folds.plan.n_folds,
                "train_rows": int(len(train)),
                "test_rows": int(len(test)),
                "test_metrics": metrics,
                "finetune": settings.to_dict(),
            },
        )
        members.append(name)
    write_ensemble_manifest(out_dir, members, provenance or {})
    return CrossValidationResult(predicted, fold_metrics_table(table, folds.fold_of_row, predicted))


def train_all_data(
    backbone_dir: Path,
    table: pd.DataFrame,
    encoded: EncodedTable,
    settings: FinetuneSettings,
    out_dir: Path,
    device: torch.device | str = "cpu",
    provenance: dict | None = None,
    on_step: Callable[[dict], None] | None = None,
    readout: str = "first",
) -> Path:
    """``--folds 0``: one model on every row, saved as ``all-data/`` and listed in ``ensemble.json``."""
    dg = table["dG"].to_numpy(dtype=np.float64)
    trained = fit_affinity_model(backbone_dir, encoded.token_ids, dg, settings, device, on_step, readout)
    trained.save(out_dir / "all-data", {**(provenance or {}), "train_rows": len(table), "finetune": settings.to_dict()})
    write_ensemble_manifest(out_dir, ["all-data"], provenance or {})
    return out_dir / ENSEMBLE_FILE

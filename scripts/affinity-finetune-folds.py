#!/usr/bin/env python3
"""Fine-tune a backbone for ΔG on *some* of the default ΔG folds, beside the default and the baseline there.

A full 10-fold `obte finetune affinity` of a 6M-parameter backbone takes about 4 hours per epoch on one CPU
core, more than a session can give a single configuration. This script asks the same question on a subset of
the folds: the protein-grouped, homology-guarded folds of `obte finetune affinity --seed 0`, each fold model
fine-tuned exactly as that command would (`fit_affinity_model`, the same settings), then scored on its
held-out proteins. The default ΔG model's recipe (composition, mean of ridge and gradient boosting) and the
gradient-boosting baseline are fitted and scored on the same folds, so the rows compare like with like.
Fewer folds mean larger SEMs: a subset can show that a configuration is clearly worse, rarely that it is
better.

    scripts/affinity-finetune-folds.py PRONAB_JSON MODEL --folds 1,2,3 [--epochs 1] [--readout parts-mean]
        [--lr-body 1e-4] [--out DIR] > rows.tsv

Prints one TSV row per (method, fold) and one summary row per method: rows, PCC, MAE; summaries add
within-protein and per-protein PCC (as `obte bench pronab`). Progress goes to stderr. ``--out DIR`` keeps
each fold's fine-tuned model and out-of-fold predictions.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from obte_cli.engine.affinity.baseline import composition_features
from obte_cli.engine.affinity.composition_model import fit_composition_model
from obte_cli.engine.affinity.cv import assign_folds, encode_affinity_table, fit_affinity_model, fold_directory_name
from obte_cli.engine.affinity.data import load_affinity_data
from obte_cli.engine.bio.homology import homology_cache_dir
from obte_cli.engine.core.metrics import group_mean_pcc, mean_and_sem, regression_metrics, within_group_pcc
from obte_cli.engine.core.tables import write_tsv
from obte_cli.engine.finetuning.trainer import FinetuneSettings
from obte_cli.engine.model.directory import load_model

N_FOLDS, HOMOLOGY = 10, 0.3


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data")
    parser.add_argument("model")
    parser.add_argument("--folds", default="1,2,3", help="1-based fold numbers, comma-separated")
    parser.add_argument("--seed", type=int, default=0, help="fold seed and training seed (as --seed)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr-head", type=float, default=1e-2)
    parser.add_argument("--lr-embedding", type=float, default=1e-3)
    parser.add_argument("--lr-body", type=float, default=1e-4)
    parser.add_argument("--readout", default="parts-mean", choices=["first", "mean", "parts-mean"])
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args(argv)


def summary_row(method, table, fold_of_row, chosen, predicted, per_fold):
    rows = np.isin(fold_of_row, chosen)
    dg, groups = table["dG"].to_numpy(), table["protein"].to_numpy()
    pcc, pcc_sem = mean_and_sem([m["pcc"] for m in per_fold])
    mae, mae_sem = mean_and_sem([m["mae"] for m in per_fold])
    within, n_within = within_group_pcc(dg[rows], predicted[rows], groups[rows])
    per_protein = group_mean_pcc(dg[rows], predicted[rows], groups[rows])
    return (
        f"{method}\tall {len(chosen)}\t{int(rows.sum())}\t{pcc:.3f} ± {pcc_sem:.3f}\t{mae:.3f} ± {mae_sem:.3f}"
        f"\t{within:.3f} ({n_within} proteins)\t{per_protein:.3f}"
    )


def main(argv=None) -> None:
    args = parse_args(argv if argv is not None else sys.argv[1:])
    table, _ = load_affinity_data(args.data)
    folds = assign_folds(table, N_FOLDS, args.seed, HOMOLOGY, None, homology_cache_dir())
    chosen = [int(f) - 1 for f in args.folds.split(",")]
    dg = table["dG"].to_numpy(dtype=np.float64)
    features = composition_features(table)
    groups = table["protein"].to_numpy()
    loaded = load_model(args.model)
    encoded = encode_affinity_table(loaded.tokenizer, table, loaded.model.config.max_positions, truncate=True)
    settings = FinetuneSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr_head=args.lr_head,
        lr_embedding=args.lr_embedding,
        lr_body=args.lr_body,
        seed=args.seed,
    )
    methods = {"fine-tuned": {}, "default (composition)": {}, "baseline (gbm)": {}}
    predicted = {name: np.full(len(table), np.nan) for name in methods}
    print("method\tfold\trows\tpcc\tmae\twithin-protein pcc\tper-protein pcc")
    for fold in chosen:
        test = np.flatnonzero(folds.fold_of_row == fold)
        train = np.flatnonzero(folds.fold_of_row != fold)
        started = time.perf_counter()
        trained = fit_affinity_model(
            Path(args.model), [encoded.token_ids[i] for i in train], dg[train], settings, readout=args.readout
        )
        predicted["fine-tuned"][test] = trained.predict([encoded.token_ids[i] for i in test])
        seconds = time.perf_counter() - started
        composition = fit_composition_model(features[train], dg[train], groups[train], seed=args.seed)
        predicted["default (composition)"][test] = composition.predict_features(features[test])
        predicted["baseline (gbm)"][test] = composition.trees.predict(features[test])
        for name in methods:
            methods[name][fold] = regression_metrics(dg[test], predicted[name][test])
            m = methods[name][fold]
            print(f"{name}\t{fold + 1}\t{len(test)}\t{m['pcc']:.3f}\t{m['mae']:.3f}\t\t", flush=True)
        print(f"fold {fold + 1}: fine-tuned in {seconds:.0f} s", file=sys.stderr, flush=True)
        if args.out is not None:
            trained.save(args.out / fold_directory_name(fold), {"fold": fold + 1, "finetune": settings.to_dict()})
    for name in methods:
        print(summary_row(name, table, folds.fold_of_row, chosen, predicted[name], list(methods[name].values())))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        rows = np.flatnonzero(np.isin(folds.fold_of_row, chosen))
        table_out = pd.DataFrame({"row": rows, "fold": folds.fold_of_row[rows] + 1, "dG": dg[rows]})
        for name in methods:
            table_out[name] = predicted[name][rows]
        write_tsv(table_out, args.out / "predictions.tsv")


if __name__ == "__main__":
    main()

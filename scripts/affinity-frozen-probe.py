#!/usr/bin/env python3
"""What a backbone's frozen representation knows about ΔG: ridge probes on the default ΔG folds.

Fine-tuning a backbone on ProNAB takes hours per model on a CPU; a frozen probe takes minutes and asks the
first question of the ΔG issue: does pretraining put anything into the representation that composition
does not? For every model given, each complex is encoded once (the layout of `obte finetune affinity`,
proteins cut to the context) and its states are read out per layer, as the first token and as the
protein's and the nucleic acid's mean states (the two readouts of `--readout`). A ridge regression,
its penalty chosen by 5-fold CV grouped by protein *inside* each training side, predicts ΔG on the
same 10 protein-grouped folds with the homology guard as `obte finetune affinity --seed 0`. The
composition features of the gradient-boosting baseline get the same ridge, and the baseline itself is
scored too.

    scripts/affinity-frozen-probe.py PRONAB_JSON MODEL [MODEL ...] > probe.tsv
    scripts/affinity-frozen-probe.py --kmers PRONAB_JSON > kmers.tsv
    scripts/affinity-frozen-probe.py --with-composition PRONAB_JSON MODEL [MODEL ...] > stacked.tsv
    scripts/affinity-frozen-probe.py --within PRONAB_JSON MODEL [MODEL ...] > within.tsv

``--with-composition`` also asks whether the states add anything to composition: per layer, a ridge on the
composition features and the parts-mean states side by side, and the mean of that ridge and the baseline's
gradient boosting (the recipe of the default ΔG model, with the states added).

``--within`` asks whether the states know more about *specificity* (which nucleic acids one protein binds
best) than composition does: per layer, the default's recipe plus a ridge on the nucleic acid's mean states
fitted within proteins (states and ΔG centred per protein, so it cannot learn protein offsets), shifted to
mean 0 over the training rows; the same residual on the composition features of the nucleic acid is the
row to beat.

``--kmers`` adds richer sequence features to composition instead (protein dipeptide fractions, nucleic-acid
3-mer fractions over both strands), each with ridge and with the baseline's gradient boosting: do features
that say more about a sequence than its composition carry to proteins never trained on?

Prints one TSV row per (model, readout, layer): PCC and MAE as mean ± SEM over folds, within-protein
and per-protein PCC (as `obte bench pronab`). Each model takes about 5 minutes on one CPU core.
"""

from __future__ import annotations

import sys
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.ensemble import HistGradientBoostingRegressor

from obte_cli.engine.affinity.baseline import composition_features
from obte_cli.engine.affinity.complexes import complex_segments, encode_complex
from obte_cli.engine.affinity.composition_model import grouped_ridge_search
from obte_cli.engine.affinity.cv import assign_folds
from obte_cli.engine.affinity.data import load_affinity_data
from obte_cli.engine.core.metrics import group_mean_pcc, mean_and_sem, regression_metrics, within_group_pcc
from obte_cli.engine.model.directory import load_model

FOLDS, SEED, HOMOLOGY = 10, 0, 0.3
PROTEIN_COMPOSITION_FEATURES = 22  # composition_features: 20 amino-acid fractions, log length, net charge; then NA's


def states(model_dir: str, table) -> np.ndarray:
    """(complexes, layers + 1, 3, width): per layer the protein mean, nucleic-acid mean and first token."""
    loaded = load_model(model_dir)
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    context, n_layers = model.config.max_positions, model.config.n_layers
    encodings = [
        encode_complex(tokenizer, complex_segments(r.protein, r.nucleic_acid, r.complement, r.na_type), context, True)[
            0
        ]
        for r in table.itertuples(index=False)
    ]
    out = np.zeros((len(encodings), n_layers + 1, 3, model.config.width), np.float32)
    order = np.argsort([len(e) for e in encodings])
    with torch.inference_mode():
        for start in range(0, len(order), 16):
            batch = order[start : start + 16]
            length = max(len(encodings[i]) for i in batch)
            ids = torch.full((len(batch), length), tokenizer.pad_id)
            doc_ids = torch.full((len(batch), length), -1)
            for row, i in enumerate(batch):
                ids[row, : len(encodings[i])] = torch.as_tensor(encodings[i].ids)
                doc_ids[row, : len(encodings[i])] = 0
            layers = model(ids, doc_ids, layers=tuple(range(n_layers + 1))).layers
            for layer in range(n_layers + 1):
                for row, i in enumerate(batch):
                    hidden = layers[layer][row, : len(encodings[i])]
                    protein = torch.as_tensor(encodings[i].segment == 0)
                    out[i, layer] = torch.stack([hidden[protein].mean(0), hidden[~protein].mean(0), hidden[0]]).numpy()
    return out


def cross_validated(features: np.ndarray, dg: np.ndarray, fold_of_row: np.ndarray, groups: np.ndarray, ridge: bool):
    predicted = np.full(len(dg), np.nan)
    for fold in range(FOLDS):
        test = fold_of_row == fold
        if ridge:
            search = grouped_ridge_search(features[~test], dg[~test], groups[~test])
            predicted[test] = search.predict(features[test])
        else:
            model = HistGradientBoostingRegressor(random_state=SEED).fit(features[~test], dg[~test])
            predicted[test] = model.predict(features[test])
    return predicted


def within_residual(features: np.ndarray, dg: np.ndarray, fold_of_row: np.ndarray, groups: np.ndarray):
    """Out-of-fold effect of a ridge fitted within proteins (features and ΔG centred per protein)."""
    effect = np.full(len(dg), np.nan)
    for fold in range(FOLDS):
        test, train = fold_of_row == fold, fold_of_row != fold
        frame = pd.DataFrame(features[train])
        centred = (frame - frame.groupby(groups[train]).transform("mean")).to_numpy()
        target = dg[train] - pd.Series(dg[train]).groupby(groups[train]).transform("mean").to_numpy()
        search = grouped_ridge_search(centred, target, groups[train])
        effect[test] = search.predict(features[test]) - search.predict(features[train]).mean()
    return effect


def row(name: str, readout: str, layer: str, dg, predicted, fold_of_row, groups) -> str:
    folds = [regression_metrics(dg[fold_of_row == f], predicted[fold_of_row == f]) for f in range(FOLDS)]
    pcc, pcc_sem = mean_and_sem([m["pcc"] for m in folds])
    mae, mae_sem = mean_and_sem([m["mae"] for m in folds])
    tested = fold_of_row >= 0
    within, n = within_group_pcc(dg[tested], predicted[tested], groups[tested])
    per_protein = group_mean_pcc(dg[tested], predicted[tested], groups[tested])
    values = [pcc, pcc_sem, mae, mae_sem, within, n, per_protein]
    return "\t".join([name, readout, layer, *(f"{v:.4f}" if isinstance(v, float) else str(v) for v in values)])


def kmer_fractions(sequence: str, alphabet: str, k: int) -> np.ndarray:
    """Fraction of each of the len(alphabet)^k k-mers among the sequence's k-mers (others skipped)."""
    index = {"".join(p): i for i, p in enumerate(product(alphabet, repeat=k))}
    counts = np.zeros(len(index))
    for i in range(len(sequence) - k + 1):
        j = index.get(sequence[i : i + k])
        if j is not None:
            counts[j] += 1
    return counts / max(counts.sum(), 1)


def kmer_rows(table, composition, dg, fold_of_row, groups) -> None:
    dipeptides = np.array([kmer_fractions(p, "ACDEFGHIKLMNPQRSTVWY", 2) for p in table.protein])
    strands = [(a + "N" + (c or "")).replace("U", "T") for a, c in zip(table.nucleic_acid, table.complement)]
    trimers = np.array([kmer_fractions(s, "ACGT", 3) for s in strands])  # N: no 3-mer across the two strands
    for name, extra in (("+ protein dipeptides", [dipeptides]), ("+ nucleic 3-mers", [trimers]),
                        ("+ both", [dipeptides, trimers])):  # fmt: skip
        features = np.hstack([composition, *extra])
        for readout, ridge in (("ridge", True), ("GBM", False)):
            predicted = cross_validated(features, dg, fold_of_row, groups, ridge)
            print(row(f"composition {name}", readout, "-", dg, predicted, fold_of_row, groups), flush=True)


def main(
    data: str, models: list[str], kmers: bool = False, with_composition: bool = False, within: bool = False
) -> None:
    table, _ = load_affinity_data(data)
    cache = Path.home() / ".cache" / "obte" / "homology"
    fold_of_row = assign_folds(table, FOLDS, SEED, HOMOLOGY, None, cache).fold_of_row
    dg = table["dG"].to_numpy(np.float64)
    groups = table["protein"].to_numpy()
    print("model\treadout\tlayer\tpcc\tpcc_sem\tmae\tmae_sem\twithin_protein_pcc\twithin_protein_n\tper_protein_pcc")
    composition = composition_features(table)
    composition_predictions = {}
    for readout, ridge in (("GBM (the bench baseline)", False), ("ridge", True)):
        composition_predictions[ridge] = cross_validated(composition, dg, fold_of_row, groups, ridge)
        print(row("composition", readout, "-", dg, composition_predictions[ridge], fold_of_row, groups), flush=True)
    boosted = composition_predictions[False]
    mean = (composition_predictions[True] + boosted) / 2  # the default ΔG model's recipe
    print(row("composition", "mean of ridge and GBM", "-", dg, mean, fold_of_row, groups), flush=True)
    if kmers:
        kmer_rows(table, composition, dg, fold_of_row, groups)
    if within:
        nucleic = composition[:, PROTEIN_COMPOSITION_FEATURES:]
        residual = mean + within_residual(nucleic, dg, fold_of_row, groups)
        print(row("composition", "default + within-protein NA residual", "-", dg, residual, fold_of_row, groups))
    for model_dir in models:
        features = states(model_dir, table)
        path = Path(model_dir)
        name = path.parent.name if path.name == "model" else path.name  # a pretraining run's RUN/model
        for layer in range(features.shape[1]):
            parts = np.concatenate([features[:, layer, 0], features[:, layer, 1]], axis=1)
            predicted = cross_validated(parts, dg, fold_of_row, groups, True)
            print(row(name, "parts-mean", str(layer), dg, predicted, fold_of_row, groups), flush=True)
            if within:
                residual = mean + within_residual(features[:, layer, 1], dg, fold_of_row, groups)
                print(row(name, "default + within NA-states residual", str(layer), dg, residual, fold_of_row, groups))
            if with_composition:
                stacked = cross_validated(np.hstack([composition, parts]), dg, fold_of_row, groups, True)
                print(row(name, "composition + parts-mean", str(layer), dg, stacked, fold_of_row, groups))
                both = (stacked + boosted) / 2
                print(row(name, "mean of that and GBM", str(layer), dg, both, fold_of_row, groups), flush=True)
        last = features.shape[1] - 1
        predicted = cross_validated(features[:, last, 2], dg, fold_of_row, groups, True)
        print(row(name, "first", str(last), dg, predicted, fold_of_row, groups), flush=True)


if __name__ == "__main__":
    kmers, with_composition, within = (flag in sys.argv for flag in ("--kmers", "--with-composition", "--within"))
    arguments = [a for a in sys.argv[1:] if a not in ("--kmers", "--with-composition", "--within")]
    if not arguments or (len(arguments) < 2 and not kmers):
        sys.exit(__doc__)
    torch.set_num_threads(1)
    main(arguments[0], arguments[1:], kmers, with_composition, within)

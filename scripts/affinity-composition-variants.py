#!/usr/bin/env python3
"""Variants of the default ΔG model's composition recipe, each on the protein-grouped, homology-guarded folds of
three fold seeds (0, 1, 2), as `obte finetune affinity --method composition --seed S` would split them.

    scripts/affinity-composition-variants.py PRONAB_JSON [CANDIDATE ...] > variants.tsv

Candidates (all on the bench baseline's 45 composition features; "ridge" has its penalty chosen by 5-fold CV
grouped by protein inside each training side):

* ``gbm (baseline)``, ``ridge``, ``default: mean(ridge,gbm)``: the bench baseline, its linear twin, the default;
* ``gbm abs``: gradient boosting on the absolute error, which targets the median (MAE is a figure of merit);
* ``gbm reg``: a more regularised boosting (learning rate 0.05, 15 leaves, ≥ 50 rows per leaf, L2 1.0);
* ``w^0.5``: rows weighted by 1/sqrt(rows of their protein), so that proteins measured 100 times do not
  dominate a model that is scored on proteins it never saw;
* their means with the ridge, as the default does;
* ``two-stage``: a protein offset (from the protein's features) plus a nucleic-acid effect fitted within
  proteins (:func:`two_stage`);
* ``default + within-protein NA residual``: the default plus a nucleic-acid effect fitted within proteins
  (:func:`within_residual`), which leaves the default's protein offsets alone;
* ``... + extra trees`` / ``... + SVR``: a third regressor of another kind in the default's mean;
* ``(+ local)`` candidates read 13 more features that say *where*, not only what (:func:`local_features`): the
  protein's highest net charge in windows of 10, 20 and 40 residues, counts of six DNA/RNA-binding motifs
  (C2H2 zinc finger, leucine zipper, homeodomain WFxNxR, RRM RNP1, CCHC knuckle, AT-hook), and for the
  nucleic acid its longest homopolymer run, reverse-complement (palindrome) identity, longest hairpin stem
  (single strands) and 3-mer entropy.

Prints one row per (candidate, fold seed): PCC and MAE as mean ± SEM over folds, within-protein and per-protein
PCC (as `obte bench pronab`), seconds. About 15 minutes for all on one core (extra trees and SVR take 8 of them).
"""

import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from obte_cli.engine.affinity.baseline import composition_features
from obte_cli.engine.affinity.composition_model import grouped_ridge_search
from obte_cli.engine.affinity.cv import assign_folds, fold_metrics_table
from obte_cli.engine.affinity.data import load_affinity_data
from obte_cli.engine.core.metrics import group_mean_pcc, mean_and_sem, within_group_pcc

REGULARISED = {"learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 50, "l2_regularization": 1.0}


def weights_for(g, power):
    """Row weights 1 / (rows of the row's protein)^power, scaled to mean 1."""
    _, inv, counts = np.unique(g, return_inverse=True, return_counts=True)
    w = 1.0 / counts[inv] ** power
    return w * len(w) / w.sum()


def ridge(Xtr, ytr, gtr, Xte, w=None):
    """The default model's ridge (its penalty grid and protein-grouped inner CV), optionally row-weighted."""
    return grouped_ridge_search(Xtr, ytr, gtr, w).predict(Xte)


def gbm(Xtr, ytr, gtr, Xte, w=None, **kw):
    return HistGradientBoostingRegressor(random_state=0, **kw).fit(Xtr, ytr, sample_weight=w).predict(Xte)


PROTEIN_FEATURES = 22  # composition_features: 20 amino-acid fractions, log length, net charge; then the nucleic acid's


def two_stage(Xtr, ytr, gtr, Xte):
    """ΔG = protein offset + nucleic-acid effect, each learned from the part of the variance it can explain.

    The nucleic-acid effect is a ridge on the nucleic-acid features fitted *within* proteins (targets and
    features centred per protein), so it is not confounded by which proteins happen to be measured with which
    nucleic acids. Each training protein's offset is then the mean of its ΔG minus that effect, and the offset
    is predicted from the protein's features alone by the default's recipe (mean of ridge and boosting), one
    row per protein."""
    na_tr, na_te = Xtr[:, PROTEIN_FEATURES:], Xte[:, PROTEIN_FEATURES:]
    frame = pd.DataFrame(na_tr)
    na_centred = (frame - frame.groupby(gtr).transform("mean")).to_numpy()
    y_centred = ytr - pd.Series(ytr).groupby(gtr).transform("mean").to_numpy()
    within = grouped_ridge_search(na_centred, y_centred, gtr)
    offsets = pd.Series(ytr - within.predict(na_tr)).groupby(gtr).mean()
    first_row = pd.Series(np.arange(len(gtr))).groupby(gtr).first()[offsets.index].to_numpy()
    proteins_tr, proteins_te = Xtr[first_row, :PROTEIN_FEATURES], Xte[:, :PROTEIN_FEATURES]
    names = offsets.index.to_numpy()
    offset = (
        ridge(proteins_tr, offsets.to_numpy(), names, proteins_te)
        + gbm(proteins_tr, offsets.to_numpy(), names, proteins_te)
    ) / 2
    return offset + within.predict(na_te)


def within_residual(Xtr, ytr, gtr, Xte):
    """The default plus a ridge on the nucleic-acid features fitted within proteins (both sides centred per
    protein), shifted so that its mean over the training rows is 0: specificity added, protein offsets kept."""
    default = (ridge(Xtr, ytr, gtr, Xte) + gbm(Xtr, ytr, gtr, Xte)) / 2
    na_tr, na_te = Xtr[:, PROTEIN_FEATURES:], Xte[:, PROTEIN_FEATURES:]
    frame = pd.DataFrame(na_tr)
    na_centred = (frame - frame.groupby(gtr).transform("mean")).to_numpy()
    y_centred = ytr - pd.Series(ytr).groupby(gtr).transform("mean").to_numpy()
    within = grouped_ridge_search(na_centred, y_centred, gtr)
    return default + within.predict(na_te) - within.predict(na_tr).mean()


def extra_trees(Xtr, ytr, gtr, Xte):
    model = ExtraTreesRegressor(300, min_samples_leaf=10, max_features=0.5, n_jobs=1, random_state=0)
    return model.fit(Xtr, ytr).predict(Xte)


def svr(Xtr, ytr, gtr, Xte):
    return make_pipeline(StandardScaler(), SVR(C=1.0, epsilon=0.5)).fit(Xtr, ytr).predict(Xte)


CHARGE = {"K": 1.0, "R": 1.0, "D": -1.0, "E": -1.0}
BINDING_MOTIFS = {
    "C2H2 zinc finger": r"C.{2,4}C.{12}H.{3,5}H",
    "leucine zipper": r"L.{6}L.{6}L.{6}L",
    "homeodomain": r"WF.N.R",
    "RRM RNP1": r"[RK]G[FY][GAV][FY][VIL].[FY]",
    "CCHC knuckle": r"C.{2}C.{4}H.{4}C",
    "AT-hook": r"[PR]RGRP",
}
COMPLEMENT = str.maketrans("ACGT", "TGCA")


def reverse_complement(dna: str) -> str:
    return dna.translate(COMPLEMENT)[::-1]


def longest_hairpin_stem(dna: str, loop: int = 3, longest: int = 20) -> int:
    """Longest k (3..longest) for which some k-mer's reverse complement occurs ≥ ``loop`` bases downstream."""
    best = 0
    for k in range(3, min(len(dna) // 2, longest) + 1):
        if not any(
            reverse_complement(dna[i : i + k]) in dna[i + k + loop :] for i in range(len(dna) - 2 * k - loop + 1)
        ):
            break
        best = k
    return best


def protein_local_features(protein: str) -> list[float]:
    charge = np.array([CHARGE.get(a, 0.0) for a in protein])
    windows = [np.convolve(charge, np.ones(w), "valid").max() / w for w in (10, 20, 40)]
    return windows + [np.log1p(len(re.findall(m, protein))) for m in BINDING_MOTIFS.values()]


def nucleic_local_features(nucleic_acid: str, complement: str) -> list[float]:
    dna = nucleic_acid.replace("U", "T")
    run = max(len(m.group()) for m in re.finditer(r"(.)\1*", dna))
    palindrome = np.mean([a == b for a, b in zip(dna, reverse_complement(dna))])
    stem = 0.0 if complement else longest_hairpin_stem(dna) / len(dna)
    _, counts = np.unique([dna[i : i + 3] for i in range(len(dna) - 2)] or ["-"], return_counts=True)
    entropy = float(-(counts / counts.sum() * np.log2(counts / counts.sum())).sum())
    return [run / len(dna), palindrome, stem, entropy]


def local_features(table: pd.DataFrame) -> np.ndarray:
    proteins = {p: protein_local_features(p) for p in table.protein.unique()}
    return np.array(
        [proteins[r.protein] + nucleic_local_features(r.nucleic_acid, r.complement) for r in table.itertuples()]
    )


CANDIDATES = {
    "gbm (baseline)": lambda a, b, c, d: gbm(a, b, c, d),
    "ridge": lambda a, b, c, d: ridge(a, b, c, d),
    "default: mean(ridge,gbm)": lambda a, b, c, d: (ridge(a, b, c, d) + gbm(a, b, c, d)) / 2,
    "gbm abs": lambda a, b, c, d: gbm(a, b, c, d, loss="absolute_error"),
    "mean(ridge,gbm abs)": lambda a, b, c, d: (ridge(a, b, c, d) + gbm(a, b, c, d, loss="absolute_error")) / 2,
    "gbm reg": lambda a, b, c, d: gbm(a, b, c, d, **REGULARISED),
    "mean(ridge,gbm reg)": lambda a, b, c, d: (ridge(a, b, c, d) + gbm(a, b, c, d, **REGULARISED)) / 2,
    "gbm w^0.5": lambda a, b, c, d: gbm(a, b, c, d, w=weights_for(c, 0.5)),
    "mean(ridge w^.5,gbm w^.5)": lambda a, b, c, d: (
        (ridge(a, b, c, d, weights_for(c, 0.5)) + gbm(a, b, c, d, w=weights_for(c, 0.5))) / 2
    ),
    "mean(ridge w^.5,gbm abs w^.5)": lambda a, b, c, d: (
        (ridge(a, b, c, d, weights_for(c, 0.5)) + gbm(a, b, c, d, w=weights_for(c, 0.5), loss="absolute_error")) / 2
    ),
    "two-stage": two_stage,
    "default + within-protein NA residual": within_residual,
    "default + extra trees": lambda a, b, c, d: (ridge(a, b, c, d) + gbm(a, b, c, d) + extra_trees(a, b, c, d)) / 3,
    "default + SVR": lambda a, b, c, d: (ridge(a, b, c, d) + gbm(a, b, c, d) + svr(a, b, c, d)) / 3,
    "default (+ local)": lambda a, b, c, d: (ridge(a, b, c, d) + gbm(a, b, c, d)) / 2,
    "gbm (+ local)": lambda a, b, c, d: gbm(a, b, c, d),
}


def main(data: str, names: list[str]) -> None:
    table, _ = load_affinity_data(data)
    composition = composition_features(table)
    with_local = np.hstack([composition, local_features(table)]) if any("(+ local)" in n for n in names) else None
    y = table.dG.to_numpy(np.float64)
    groups = table.protein.to_numpy()
    cache = Path.home() / ".cache" / "obte" / "homology"  # the homology matrix, shared with obte finetune
    folds = {s: assign_folds(table, 10, s, 0.3, None, cache).fold_of_row for s in (0, 1, 2)}
    print("candidate\tseed\tpcc\tpcc_sem\tmae\tmae_sem\twithin\tper_protein\tseconds", flush=True)
    for name in names:
        X = with_local if "(+ local)" in name else composition
        for seed, f in folds.items():
            t0 = time.time()
            pred = np.full(len(y), np.nan)
            for k in sorted(set(f.tolist()) - {-1}):
                te = f == k
                pred[te] = CANDIDATES[name](X[~te], y[~te], groups[~te], X[te])
            per_fold = fold_metrics_table(table, f, pred)
            (pm, ps), (mm, ms) = mean_and_sem(per_fold["pcc"].tolist()), mean_and_sem(per_fold["mae"].tolist())
            m = f >= 0
            wp = within_group_pcc(y[m], pred[m], groups[m], 5)
            pp = group_mean_pcc(y[m], pred[m], groups[m])
            figures = f"{pm:.3f}\t{ps:.3f}\t{mm:.3f}\t{ms:.3f}\t{wp[0]:.3f}\t{pp:.3f}"
            print(f"{name}\t{seed}\t{figures}\t{time.time() - t0:.0f}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:] or list(CANDIDATES))

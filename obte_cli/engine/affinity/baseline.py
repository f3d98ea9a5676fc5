"""The non-neural ΔG baseline that `obte bench pronab` runs beside the model, on the same folds.

Features are compositions only — what a sequence *contains*, not where — so the baseline measures how
much of ΔG is predictable without reading sequence order:

* protein: fraction of each of the 20 amino acids, log length, net charge per residue (K+R−D−E);
* nucleic acid (both strands together): fraction of each nucleotide, of each of the 16 dinucleotides
  (read along each strand), GC content, log length of the strand, RNA flag, double-stranded flag.

The regressor is scikit-learn's ``HistGradientBoostingRegressor`` with its defaults (fixed seed), so
the baseline is neither tuned on the test folds nor handicapped.
"""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pandas as pd

from obte_cli.engine.bio.molecules import AMINO_ACIDS, NUCLEOTIDES
from obte_cli.engine.core.threads import one_thread

_DINUCLEOTIDES = ["".join(p) for p in product(NUCLEOTIDES, repeat=2)]


def feature_names() -> list[str]:
    return (
        [f"protein_frac_{a}" for a in AMINO_ACIDS]
        + ["protein_log_length", "protein_net_charge"]
        + [f"na_frac_{n}" for n in NUCLEOTIDES]
        + [f"na_frac_{d}" for d in _DINUCLEOTIDES]
        + ["na_gc", "na_log_length", "na_is_rna", "na_is_double"]
    )


def _fractions(counts: dict[str, int], keys: list[str]) -> list[float]:
    total = sum(counts.get(k, 0) for k in keys) or 1
    return [counts.get(k, 0) / total for k in keys]


def _protein_features(protein: str) -> list[float]:
    counts = {a: protein.count(a) for a in AMINO_ACIDS}
    charge = counts["K"] + counts["R"] - counts["D"] - counts["E"]
    return _fractions(counts, list(AMINO_ACIDS)) + [math.log(len(protein)), charge / len(protein)]


def _nucleic_features(strand: str, complement: str, na_type: str) -> list[float]:
    strands = [s.replace("U", "T") for s in (strand, complement) if s]
    counts = {n: sum(s.count(n) for s in strands) for n in NUCLEOTIDES}
    pairs: dict[str, int] = {}
    for s in strands:
        for i in range(len(s) - 1):
            pairs[s[i : i + 2]] = pairs.get(s[i : i + 2], 0) + 1
    fractions = _fractions(counts, list(NUCLEOTIDES))
    gc = fractions[NUCLEOTIDES.index("G")] + fractions[NUCLEOTIDES.index("C")]
    return (
        fractions
        + _fractions(pairs, _DINUCLEOTIDES)
        + [
            gc,
            math.log(len(strand)),
            float(na_type.upper() == "RNA"),
            float(bool(complement)),
        ]
    )


def complex_composition(protein: str, nucleic_acid: str, complement: str, na_type: str) -> list[float]:
    """The features of one complex, in the order of :func:`feature_names`."""
    return _protein_features(protein) + _nucleic_features(nucleic_acid, complement, na_type)


def composition_features(table: pd.DataFrame) -> np.ndarray:
    """(rows, features) matrix for a table with ``protein, nucleic_acid, complement, na_type``."""
    rows = [
        complex_composition(r.protein, r.nucleic_acid, r.complement, r.na_type) for r in table.itertuples(index=False)
    ]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(feature_names()))


def baseline_cross_validation(table: pd.DataFrame, fold_of_row: np.ndarray, seed: int = 0) -> np.ndarray:
    """Out-of-fold ΔG predictions from gradient boosting on composition features.

    ``fold_of_row``: the fold of each row, -1 for train-only rows (never predicted: NaN).
    """
    from sklearn.ensemble import (
        HistGradientBoostingRegressor,  # imported here: only `bench` needs it
    )

    features = composition_features(table)
    target = table["dG"].to_numpy(dtype=np.float64)
    predicted = np.full(len(table), np.nan)
    for fold in sorted(set(fold_of_row.tolist()) - {-1}):
        test = fold_of_row == fold
        model = HistGradientBoostingRegressor(random_state=seed)
        with one_thread():  # the same model, much faster on a busy machine (see one_thread)
            model.fit(features[~test], target[~test])
            predicted[test] = model.predict(features[test])
    return predicted

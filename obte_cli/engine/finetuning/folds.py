"""Cross-validation folds grouped by protein, with a homology guard.

Protocol (paper §4.3.1, made leakage-free):

1. **Groups** are unique protein sequences: every row of a protein goes to the same fold, so no protein
   is ever both trained on and tested.
2. **Homology guard**: a protein whose normalised BLOSUM62 homology (:mod:`obte_cli.engine.bio.homology`)
   to any *other* protein reaches ``threshold`` is kept on the training side of every fold
   (fold ``-1``, "train-only"). Test folds then hold only proteins with no close relative anywhere in
   the data, so a test score never rewards recognising a homolog seen in training.
3. The remaining proteins are dealt to ``k`` folds: shuffled by ``seed``, then taken largest first
   (most rows) into the fold with the fewest rows so far, which balances folds by rows, not proteins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from obte_cli.engine.core.errors import InputError


@dataclass
class FoldPlan:
    proteins: list[str]  # unique protein sequences, in first-seen order
    fold_of_protein: np.ndarray  # (n_proteins,) fold index 0..k-1, or -1 for train-only
    n_folds: int
    threshold: float | None

    @property
    def guarded(self) -> np.ndarray:
        return self.fold_of_protein < 0

    def fold_of_rows(self, protein_per_row: list[str]) -> np.ndarray:
        index = {p: i for i, p in enumerate(self.proteins)}
        return self.fold_of_protein[[index[p] for p in protein_per_row]]


def homology_guard(homology: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean mask of proteins with another protein at homology ≥ ``threshold``."""
    related = homology >= threshold
    np.fill_diagonal(related, False)
    return related.any(axis=1)


def plan_folds(
    protein_per_row: list[str],
    n_folds: int,
    seed: int = 0,
    homology: np.ndarray | None = None,
    threshold: float | None = None,
) -> FoldPlan:
    """Assign proteins to folds (see module docstring). ``homology`` is indexed like the unique
    proteins in first-seen order (``FoldPlan.proteins``)."""
    if n_folds < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    proteins = list(dict.fromkeys(protein_per_row))
    rows = np.zeros(len(proteins), dtype=np.int64)
    index = {p: i for i, p in enumerate(proteins)}
    for p in protein_per_row:
        rows[index[p]] += 1
    fold = np.full(len(proteins), -1, dtype=np.int64)
    guarded = np.zeros(len(proteins), dtype=bool)
    if homology is not None and threshold is not None:
        if homology.shape != (len(proteins), len(proteins)):
            raise ValueError("homology matrix does not match the proteins")
        guarded = homology_guard(homology, threshold)
    candidates = np.flatnonzero(~guarded)
    if len(candidates) < n_folds:
        kept = f" (the homology guard keeps {int(guarded.sum())} more on the training side)" if guarded.any() else ""
        raise InputError(
            f"--folds {n_folds}: the data have {len(candidates)} proteins to test{kept}, and each test fold "
            f"needs one, so at most {len(candidates)} folds are possible"
            + ("" if len(candidates) >= 2 else " (cross-validation needs 2: give more proteins, or --folds 0)")
        )
    rng = np.random.default_rng(seed)
    candidates = candidates[rng.permutation(len(candidates))]
    candidates = candidates[np.argsort(-rows[candidates], kind="stable")]
    load = np.zeros(n_folds, dtype=np.int64)
    for i in candidates:
        f = int(np.argmin(load))
        fold[i] = f
        load[f] += rows[i]
    return FoldPlan(proteins, fold, n_folds, threshold if homology is not None else None)

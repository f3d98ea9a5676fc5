"""Binding specificity from JASPAR matrices (paper §4.3.2): does the ΔG model prefer a TF's consensus site?

For each matrix: ΔG of the protein with its consensus duplex (consensus + reverse complement), then of
``n_mutants`` mutated consensus sites (:func:`obte_cli.engine.bio.motifs.mutate`), and
ΔΔG = ΔG(mutant) − ΔG(consensus): positive when the model finds the mutant binds less tightly, as the
motif says it should. The mutants of a matrix are drawn from a generator seeded by ``(seed, matrix id)``,
so a matrix gets the same mutants whatever else is scanned with it.

Summary: per-TF mean ΔΔG; their mean ± SEM and the fraction of TFs with a positive mean; and Spearman's
ρ between ΔΔG and the PFM's own log-odds drop (how much less likely the mutant is under the motif).

Saturation (beyond the paper): ΔΔG of every single substitution of the consensus, and a model-derived
PFM, p_i(b) ∝ exp(−ΔΔG_i(b) / RT) at 298.15 K (RT = 0.593 kcal/mol: the Boltzmann weight of each base
at each position), compared with the JASPAR frequencies by the Pearson correlation of each column.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from obte_cli.engine.affinity.complexes import RT_KCAL
from obte_cli.engine.affinity.ensemble import AffinityEnsemble, predict_affinities
from obte_cli.engine.bio.complex_inputs import (
    Complex,
    NamedSequence,
    reverse_complement,
)
from obte_cli.engine.bio.motifs import BASES, Matrix, mutate, single_substitutions
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.metrics import mean_and_sem

SCAN_COLUMNS = [
    "matrix_id",
    "tf_name",
    "protein_id",
    "consensus",
    "mutant",
    "n_subs",
    "dG_consensus",
    "dG_mutant",
    "ddG",
    "log_odds_change",
]


def _uniprot_keys(record_id: str) -> set[str]:
    """Names a protein record answers to: its id, and for UniProt ids (sp|P49711|CTCF_HUMAN) the
    accession and the entry name's gene part (CTCF)."""
    keys = {record_id.upper()}
    parts = record_id.split("|")
    if len(parts) >= 3:
        keys.add(parts[1].upper())
        keys.add(parts[2].split("_")[0].upper())
    return keys


def read_accessions(path: str | Path) -> dict[str, list[str]]:
    """matrix_id → UniProt accessions from a JASPAR ``matrices.tsv`` (columns matrix_id, uniprot)."""
    from obte_cli.engine.core.tables import read_table

    table = read_table(path, dtype=str).fillna("")
    if not {"matrix_id", "uniprot"} <= set(table.columns):
        raise InputError(f"{path}: needs matrix_id and uniprot columns")
    return {r.matrix_id: [a for a in r.uniprot.replace(";", ",").split(",") if a.strip()] for r in table.itertuples()}


def match_proteins(
    matrices: list[Matrix], proteins: list[NamedSequence], accessions: dict[str, list[str]] | None = None
) -> dict[str, NamedSequence | None]:
    """The protein for each matrix id: a record whose id (or UniProt accession / gene name) equals the
    matrix id, the TF name (either part of a dimer's ``A::B``), or one of the matrix's UniProt
    ``accessions``. None when nothing matches (the caller reports it). A single protein is matched like
    any other: scoring one protein against every matrix is the caller's explicit choice
    (``scan-jaspar --all-matrices``)."""
    index: dict[str, NamedSequence] = {}
    for protein in proteins:
        for key in _uniprot_keys(protein.id):
            index.setdefault(key, protein)
    found = {}
    for m in matrices:
        candidates = [m.matrix_id, *m.name.upper().split("::"), m.name, *((accessions or {}).get(m.matrix_id, []))]
        found[m.matrix_id] = next((index[c.upper()] for c in candidates if c.upper() in index), None)
    return found


def matrix_seed(seed: int, matrix_id: str) -> list[int]:
    return [seed, zlib.crc32(matrix_id.encode())]


def _duplex(protein: NamedSequence, site: str, label: str) -> Complex:
    return Complex(protein, NamedSequence(label, site, label, "DNA"), reverse_complement(site))


@dataclass
class ScanRow:
    matrix_id: str
    tf_name: str
    protein_id: str
    consensus: str
    mutant: str
    n_subs: int
    dG_consensus: float
    dG_mutant: float
    ddG: float
    log_odds_change: float


def scan_matrix(
    ensemble: AffinityEnsemble,
    matrix: Matrix,
    protein: NamedSequence,
    n_mutants: int,
    rate: float,
    seed: int,
    device="cpu",
    truncate: bool = False,
    on_unknown: str = "error",
) -> list[ScanRow]:
    consensus = matrix.consensus()
    rng = np.random.default_rng(matrix_seed(seed, matrix.matrix_id))
    mutants = [mutate(consensus, rate, rng) for _ in range(n_mutants)]
    sites = [consensus, *mutants]
    predictions = list(
        predict_affinities(
            ensemble,
            [_duplex(protein, s, f"{matrix.matrix_id}:{k}") for k, s in enumerate(sites)],
            truncate,
            device,
            on_unknown=on_unknown,
        )
    )
    dg_consensus = predictions[0].dg
    base = matrix.log_odds(consensus)
    return [
        ScanRow(
            matrix.matrix_id,
            matrix.name,
            protein.id,
            consensus,
            mutant,
            sum(a != b for a, b in zip(consensus, mutant)),
            dg_consensus,
            p.dg,
            p.dg - dg_consensus,
            matrix.log_odds(mutant) - base,
        )
        for mutant, p in zip(mutants, predictions[1:])
    ]


def format_scan_row(row: ScanRow) -> str:
    """One TSV line (``SCAN_COLUMNS`` order): floats to 4 decimals, NaN as NA."""

    def text(value) -> str:
        if isinstance(value, float):
            return "NA" if value != value else f"{value:.4f}"
        return str(value)

    return "\t".join(text(getattr(row, c)) for c in SCAN_COLUMNS)


def summarise_scan(rows: list[ScanRow]) -> dict:
    """Mean ΔΔG over TFs ± SEM, the fraction of TFs with mean ΔΔG > 0, Spearman ρ(ΔΔG, log-odds drop), and
    the one-sided p-value of a one-sample t-test over TFs that the mean ΔΔG is > 0 (mutated sites bind
    worse, as they should)."""
    from scipy.stats import spearmanr, ttest_1samp

    per_tf: dict[str, list[float]] = {}
    for r in rows:
        per_tf.setdefault(r.matrix_id, []).append(r.ddG)
    means = [float(np.mean(v)) for v in per_tf.values()]
    mean, sem = mean_and_sem(means) if means else (float("nan"), float("nan"))
    ddg = np.array([r.ddG for r in rows])
    drop = -np.array([r.log_odds_change for r in rows])
    rho = float(spearmanr(ddg, drop).statistic) if len(rows) > 2 and ddg.std() > 0 and drop.std() > 0 else float("nan")
    return {
        "matrices": len(per_tf),
        "mutants": len(rows),
        "positive_mutants": int(sum(r.ddG > 0 for r in rows)),
        "sem_ddG_over_mutants": mean_and_sem(list(ddg))[1] if len(rows) > 1 else float("nan"),
        "mean_ddG": mean,
        "sem_ddG": sem,
        "fraction_positive": float(np.mean([m > 0 for m in means])) if means else float("nan"),
        "spearman_ddG_vs_logodds_drop": rho,
        "p_mean_ddG_gt_0": float(ttest_1samp(means, 0.0, alternative="greater").pvalue)
        if len(means) > 1 and np.std(means) > 0
        else float("nan"),
    }


def describe_scan(summary: dict, rows: list[ScanRow]) -> str:
    """The one-line summary of a scan (what `scan-jaspar` logs): over TFs when there are several; for one
    matrix, over its mutants (a mean ± SEM over one TF, a fraction of one TF and a t-test on one value mean
    nothing). A statistic that cannot be computed is left out, never printed as nan."""

    def kcal(value: float, sem: float) -> str:
        return f"{value:.3f} ± {sem:.3f} kcal/mol" if np.isfinite(sem) else f"{value:.3f} kcal/mol"

    n, mutants = summary["matrices"], summary["mutants"]
    if n == 0:
        return "no matrix scanned"
    rho = summary["spearman_ddG_vs_logodds_drop"]
    spearman = (
        f"Spearman ρ(ΔΔG, log-odds drop) = {rho:.3f}"
        if np.isfinite(rho)
        else "Spearman ρ(ΔΔG, log-odds drop): NA (needs 3 mutants and ΔΔG and log-odds drops that vary)"
    )
    if n == 1:
        first = rows[0]
        return (
            f"1 matrix ({first.matrix_id} {first.tf_name}, protein {first.protein_id}), {mutants} mutants: "
            f"mean ΔΔG {kcal(summary['mean_ddG'], summary['sem_ddG_over_mutants'])} (± SEM over its mutants), "
            f"{summary['positive_mutants']} of {mutants} mutants > 0, {spearman}"
        )
    p = summary["p_mean_ddG_gt_0"]
    test = f" (one-sided p for > 0: {p:.3g})" if np.isfinite(p) else ""
    positive = round(summary["fraction_positive"] * n)
    return (
        f"{n} matrices, {mutants} mutants: mean ΔΔG over TFs {kcal(summary['mean_ddG'], summary['sem_ddG'])}{test}, "
        f"{positive} of {n} TFs ({100 * summary['fraction_positive']:.0f}%) > 0, {spearman}"
    )


@dataclass
class Saturation:
    matrix: Matrix
    protein_id: str
    consensus: str
    ddg: np.ndarray  # (length, 4): ΔΔG of each base at each position (0 for the consensus base)
    model_pfm: np.ndarray  # (length, 4) probabilities
    column_pearson: np.ndarray  # (length,) Pearson r between model and JASPAR columns

    @property
    def mean_column_pearson(self) -> float:
        finite = self.column_pearson[np.isfinite(self.column_pearson)]
        return float(finite.mean()) if len(finite) else float("nan")


def saturation_scan(
    ensemble: AffinityEnsemble,
    matrix: Matrix,
    protein: NamedSequence,
    device="cpu",
    truncate: bool = False,
    on_unknown: str = "error",
) -> Saturation:
    consensus = matrix.consensus()
    substitutions = single_substitutions(consensus)
    sites = [consensus] + [s for _, _, s in substitutions]
    predictions = list(
        predict_affinities(
            ensemble,
            [_duplex(protein, s, f"{matrix.matrix_id}:{k}") for k, s in enumerate(sites)],
            truncate,
            device,
            on_unknown=on_unknown,
        )
    )
    ddg = np.zeros((len(consensus), 4))
    for (i, base, _), p in zip(substitutions, predictions[1:]):
        ddg[i, BASES.index(base)] = p.dg - predictions[0].dg
    weights = np.exp(-ddg / RT_KCAL)
    model_pfm = weights / weights.sum(axis=1, keepdims=True)
    reference = matrix.probabilities
    pearson = np.array(
        [
            np.corrcoef(model_pfm[i], reference[i])[0, 1]
            if model_pfm[i].std() > 0 and reference[i].std() > 0
            else np.nan
            for i in range(len(consensus))
        ]
    )
    return Saturation(matrix, protein.id, consensus, ddg, model_pfm, pearson)


def held_out_members(
    model_dir, matrices: list[Matrix], accessions: dict[str, list[str]], sequences: dict[str, str]
) -> tuple[list[tuple[Matrix, NamedSequence, str]], dict[str, int]]:
    """For `obte bench jaspar`: pair each matrix with its TF's protein and the fold model that never
    trained on it (the fold that tested that protein, from the ensemble's ``folds.tsv``).

    Returns (matrix, protein, member directory name) triples and counts of matrices skipped and why:
    ``no_sequence`` (no accession with a known sequence), ``in_training`` (the protein is train-only,
    i.e. homology-guarded, or unknown to the cross-validation).
    """
    import pandas as pd

    folds_path = Path(model_dir) / "folds.tsv"
    if not folds_path.is_file():
        raise FileNotFoundError(
            f"{model_dir}: no folds.tsv — not a cross-validation ensemble from `obte finetune affinity`"
        )
    folds = pd.read_csv(folds_path, sep="\t", dtype=str)
    fold_of = dict(zip(folds["protein_id"], folds["fold"]))
    chosen, skipped = [], {"no_sequence": 0, "in_training": 0}
    for m in matrices:
        known = [a for a in accessions.get(m.matrix_id, []) if a in sequences]
        if not known:
            skipped["no_sequence"] += 1
            continue
        tested = [a for a in known if str(fold_of.get(a, "")).isdigit()]
        if not tested:
            skipped["in_training"] += 1
            continue
        accession = tested[0]
        member = f"fold-{int(fold_of[accession]):02d}"
        chosen.append((m, NamedSequence(accession, sequences[accession], accession), member))
    return chosen, skipped

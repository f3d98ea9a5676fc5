"""`obte bench variants`: zero-shot variant-effect scores against measured fitness (Spearman ρ).

The data are a FLIP GB1 split file (``sequence,target,set,validation``; Wu et al. 2016's four-site
landscape, V39, D40, G41 and V54): every row is a whole sequence and its fitness, normalised to the wild
type's, so the wild type is the row whose target is exactly 1 (checked: it must be unique). Every other row
becomes a variant of it: the substitutions at the positions where its sequence differs (all rows of the
file, whatever their ``set``; a zero-shot score uses no training labels).

Rows of the table: each strategy of :mod:`obte_cli.engine.embedding.variants` for the model and for a
fresh-init control of the same shape (what the architecture and tokenizer alone give: a fresh model's
readout is zero-initialised (μP), so it gives every letter the same probability, every variant scores 0 and
its ρ is undefined, NA: the control shows that any ρ of the model comes from pretraining), and two baselines
that need no model: the sum of the BLOSUM62 scores of the substitutions, and minus the summed absolute
change of Kyte–Doolittle hydropathy (a substitution that changes hydropathy more is scored as more
damaging). ``limit`` scores a seeded random subset (the output says so).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from obte_cli.engine.bench.tasks import fresh_copy
from obte_cli.engine.bio.molecules import MOLECULE_TYPES
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.tables import read_table
from obte_cli.engine.embedding.variants import STRATEGIES, Substitution, Variant, score_variants
from obte_cli.engine.model.directory import LoadedModel

_ORDER = "ARNDCQEGHILKMFPSTWYV"


def _blosum62() -> dict[tuple[str, str], int]:
    """BLOSUM62 (Henikoff & Henikoff 1992, the NCBI table) over the 20 amino acids, from Biopython (as the
    homology guard's aligner reads it)."""
    from Bio.Align import substitution_matrices

    matrix = substitution_matrices.load("BLOSUM62")
    return {(a, b): int(matrix[a][b]) for a in _ORDER for b in _ORDER}


BLOSUM62 = _blosum62()
KYTE_DOOLITTLE = dict(
    zip(
        _ORDER,
        [
            1.8,
            -4.5,
            -3.5,
            -3.5,
            2.5,
            -3.5,
            -3.5,
            -0.4,
            -3.2,
            4.5,
            3.8,
            -3.9,
            1.9,
            2.8,
            -1.6,
            -0.8,
            -0.7,
            -0.9,
            -1.3,
            4.2,
        ],
    )
)
BASELINES = ("blosum62", "hydropathy-change")
PRETRAINED, FRESH, NO_MODEL = "model", "fresh-init", "none"


@dataclass
class Landscape:
    wild_type: str
    variants: list[Variant]
    fitness: np.ndarray
    total: int  # variants in the file (before any subset)


def read_landscape(path: str | Path, limit: int = 0, seed: int = 0) -> Landscape:
    """The variants of a FLIP GB1 split file against its wild type (module docstring); ``limit`` > 0 keeps
    a seeded random subset of that many."""
    table = read_table(path, "CSV")
    missing = {"sequence", "target"} - set(table.columns)
    if missing:
        raise InputError(f"{path}: no {', '.join(sorted(missing))} column (a FLIP file has sequence,target,...)")
    wild = table.loc[table["target"] == 1.0, "sequence"].unique()
    if len(wild) != 1:
        raise InputError(f"{path}: {len(wild)} sequences have fitness exactly 1 (the wild type's); expected one")
    reference = str(wild[0]).upper()
    rows = table[table["sequence"].str.upper() != reference].reset_index(drop=True)
    if rows.empty:
        raise InputError(f"{path}: no variant besides the wild type")
    if limit and limit < len(rows):
        rows = rows.iloc[np.sort(np.random.default_rng(seed).choice(len(rows), limit, replace=False))]
    found = []
    for sequence in rows["sequence"].str.upper():
        if len(sequence) != len(reference):
            raise InputError(f"{path}: a variant of length {len(sequence)}, the wild type has {len(reference)}")
        sites = [i for i, (a, b) in enumerate(zip(reference, sequence)) if a != b]
        found.append(Variant(tuple(Substitution(reference[i], i + 1, sequence[i]) for i in sites)))
    fitness = rows["target"].to_numpy(dtype=np.float64)
    return Landscape(reference, found, fitness, len(table) - 1)


def baseline_scores(variants: Sequence[Variant]) -> dict[str, np.ndarray]:
    """The two model-free scores (module docstring)."""
    return {
        "blosum62": np.array([sum(BLOSUM62[s.wild_type, s.mutant] for s in v.substitutions) for v in variants], float),
        "hydropathy-change": np.array(
            [
                -sum(abs(KYTE_DOOLITTLE[s.mutant] - KYTE_DOOLITTLE[s.wild_type]) for s in v.substitutions)
                for v in variants
            ]
        ),
    }


def spearman(scores: np.ndarray, fitness: np.ndarray) -> float:
    """ρ, or NaN where the scores are all equal (a fresh model's zero readout scores every variant 0)."""
    if np.ptp(scores) == 0 or np.ptp(fitness) == 0:
        return float("nan")
    return float(spearmanr(scores, fitness).statistic)


def run_variant_bench(
    loaded: LoadedModel,
    landscape: Landscape,
    strategies: Sequence[str] = STRATEGIES,
    device="cpu",
    max_tokens: int = 16384,
    seed: int = 0,
    on_row: Callable[[dict], None] = lambda row: None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ρ table, per-variant scores): each strategy for the model and its fresh-init control, then the
    baselines; ``on_row`` hears each ρ row as it is measured."""
    protein = MOLECULE_TYPES["protein"]
    rows, columns = [], {"mutant": [str(v) for v in landscape.variants], "fitness": landscape.fitness}

    def add(method, model, values):
        row = {
            "method": method,
            "model": model,
            "spearman": spearman(values, landscape.fitness),
            "variants": len(values),
            "of": landscape.total,
        }
        rows.append(row)
        columns[f"{method} ({model})" if model != NO_MODEL else method] = values
        on_row(row)

    for name, candidate in ((PRETRAINED, loaded), (FRESH, fresh_copy(loaded, seed))):
        result = score_variants(
            candidate.model, candidate.tokenizer, landscape.wild_type, protein, landscape.variants,
            strategies, device, max_tokens, seed,
        )  # fmt: skip
        for strategy in strategies:
            add(strategy, name, result.scores[strategy])
    for method, values in baseline_scores(landscape.variants).items():
        add(method, NO_MODEL, values)
    return pd.DataFrame(rows), pd.DataFrame(columns)

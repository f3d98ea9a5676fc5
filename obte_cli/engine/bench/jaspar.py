"""`obte bench jaspar`: binding specificity over a JASPAR collection, each TF scored by the fold model of a
ΔG cross-validation ensemble that never trained on its protein.

Only matrices whose TF has a known protein sequence (through ``matrices.tsv``'s accessions and the
ProNAB data), and whose protein the ensemble's cross-validation *tested*, are scanned
(:func:`~obte_cli.engine.affinity.specificity.held_out_members`); each then gets the consensus-vs-mutants
scan of :func:`~obte_cli.engine.affinity.specificity.scan_matrix`. :func:`run_jaspar_bench` does it all;
nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from obte_cli.engine.affinity.data import load_affinity_data
from obte_cli.engine.affinity.ensemble import load_affinity_model
from obte_cli.engine.affinity.specificity import (
    SCAN_COLUMNS,
    ScanRow,
    format_scan_row,
    held_out_members,
    read_accessions,
    scan_matrix,
    summarise_scan,
)
from obte_cli.engine.bio.motifs import read_matrices
from obte_cli.engine.core.directories import output_directory
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.outputs import atomic_file
from obte_cli.engine.core.plots import histogram


def _ignore(*args) -> None:
    return None


@dataclass
class JasparBench:
    """The ensemble to score and how each matrix is scanned."""

    model_dir: Path  # a cross-validation ensemble from `obte finetune affinity` (it has folds.tsv)
    mutants: int = 8  # mutated consensus sites per matrix
    rate: float = 0.05  # per-base substitution probability
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


@dataclass
class JasparBenchResult:
    rows: list[ScanRow]  # one per mutant
    summary: dict  # :func:`~obte_cli.engine.affinity.specificity.summarise_scan`


def run_jaspar_bench(
    matrices: Path,
    accessions: Path,
    data: Path,
    out: Path,
    bench: JasparBench,
    chosen: Callable[[int, dict[str, int]], None] = _ignore,
) -> JasparBenchResult:
    """Scan every matrix of ``matrices`` whose protein the ensemble held out; write ``out``/bench-jaspar.tsv
    (per mutant) and bench-jaspar.png (per-TF mean ΔΔG). ``chosen(n, skipped)`` hears how many matrices are
    scanned and how many were skipped, by reason, before the scan starts."""
    out = Path(out)
    output_directory(out)  # now, not after the scan
    table, _ = load_affinity_data(data)
    sequences = dict(zip(table["protein_id"], table["protein"]))
    try:
        members, skipped = held_out_members(
            bench.model_dir, read_matrices(matrices), read_accessions(accessions), sequences
        )
    except FileNotFoundError as exc:
        raise InputError(str(exc)) from None
    chosen(len(members), skipped)
    if not members:
        raise InputError("no matrix has a protein that the ensemble held out")
    models: dict = {}
    rows = []
    for matrix, protein, member in members:
        if member not in models:
            models[member] = load_affinity_model(Path(bench.model_dir) / member, bench.device)
        rows += scan_matrix(
            models[member], matrix, protein, bench.mutants, bench.rate, bench.seed, bench.device, truncate=True
        )
    with atomic_file(out / "bench-jaspar.tsv") as handle:
        handle.write("\t".join(SCAN_COLUMNS) + "\n")
        for r in rows:
            handle.write(format_scan_row(r) + "\n")
    summary = summarise_scan(rows)
    per_tf: dict[str, list[float]] = {}
    for r in rows:
        per_tf.setdefault(r.matrix_id, []).append(r.ddG)
    histogram(
        [float(np.mean(v)) for v in per_tf.values()],
        "mean ΔΔG per TF (kcal/mol)",
        f"JASPAR specificity: mean ΔΔG {summary['mean_ddG']:.3f} ± {summary['sem_ddG']:.3f}, "
        f"{100 * summary['fraction_positive']:.0f}% of {summary['matrices']} TFs > 0",
        out / "bench-jaspar.png",
    )
    return JasparBenchResult(rows, summary)

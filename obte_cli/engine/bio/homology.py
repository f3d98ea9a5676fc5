"""Protein homology by BLOSUM62 local alignment, for leakage-free cross-validation.

Score: Smith–Waterman local alignment with BLOSUM62, gap open −11 and extend −1 (the BLASTP defaults),
by Biopython's ``PairwiseAligner``. Normalisation: a pair's score divided by the *smaller* of the two
self-alignment scores,

    h(a, b) = SW(a, b) / min(SW(a, a), SW(b, b))

so h = 1 when the shorter protein aligns to the longer one as well as to itself (identical sequences,
or one contained in the other), and h ≈ 0 for unrelated proteins (their best local alignment is a short
chance match). Dividing by the smaller self-score makes a domain shared by a short and a long protein
count as homology, which is what matters for leakage: a model that saw the domain in training has seen
most of the short protein.

All pairs of n proteins take n(n−1)/2 alignments (≈ 220,000 for ProNAB, a few minutes on two cores);
:func:`homology_matrix` spreads them over worker processes and can cache the result on disk, keyed by a
hash of the sequences and the scoring scheme, so repeated cross-validation runs pay once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from obte_cli.engine.core.outputs import atomic_file

SCORING = {"matrix": "BLOSUM62", "open_gap_score": -11.0, "extend_gap_score": -1.0, "mode": "local"}

_aligner = None


def homology_cache_dir() -> Path:
    """Where :func:`homology_matrix` results are cached between runs: ``$XDG_CACHE_HOME/obte/homology``
    (``~/.cache/obte/homology`` when the variable is unset or empty)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "obte" / "homology"


def _get_aligner():
    """One aligner per process (building it loads the matrix)."""
    global _aligner
    if _aligner is None:
        from Bio.Align import PairwiseAligner, substitution_matrices

        _aligner = PairwiseAligner()
        _aligner.substitution_matrix = substitution_matrices.load(SCORING["matrix"])
        _aligner.open_gap_score = SCORING["open_gap_score"]
        _aligner.extend_gap_score = SCORING["extend_gap_score"]
        _aligner.mode = SCORING["mode"]
    return _aligner


def alignment_score(a: str, b: str) -> float:
    return float(_get_aligner().score(a, b))


def _score_rows(args: tuple[Sequence[str], list[int]]) -> list[tuple[int, np.ndarray]]:
    """Scores of row i against every j > i, for the rows given (runs in a worker process)."""
    sequences, rows = args
    aligner = _get_aligner()
    out = []
    for i in rows:
        scores = np.array([aligner.score(sequences[i], sequences[j]) for j in range(i + 1, len(sequences))])
        out.append((i, scores))
    return out


def _cache_key(sequences: Sequence[str]) -> str:
    digest = hashlib.sha256(repr(sorted(SCORING.items())).encode())
    for s in sequences:
        digest.update(s.encode() + b"\n")
    return digest.hexdigest()[:24]


def raw_score_matrix(sequences: Sequence[str], workers: int = 1) -> np.ndarray:
    """Symmetric matrix of Smith–Waterman scores, self-scores on the diagonal."""
    n = len(sequences)
    scores = np.zeros((n, n), dtype=np.float64)
    for i, s in enumerate(sequences):
        scores[i, i] = alignment_score(s, s)
    # Interleave rows so every worker gets a similar number of cells (row i has n-1-i pairs).
    workers = max(1, min(workers, n))
    chunks = [(list(sequences), list(range(w, n, workers))) for w in range(workers)]
    if workers == 1:
        results = [_score_rows(chunks[0])]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_score_rows, chunks))
    for chunk in results:
        for i, row in chunk:
            scores[i, i + 1 :] = row
            scores[i + 1 :, i] = row
    return scores


def normalise(scores: np.ndarray) -> np.ndarray:
    """h(a, b) = SW(a, b) / min(SW(a, a), SW(b, b)); 1 on the diagonal."""
    self_scores = np.diag(scores)
    denominator = np.minimum(self_scores[:, None], self_scores[None, :])
    return scores / np.maximum(denominator, 1e-9)


def homology_matrix(sequences: Sequence[str], workers: int | None = None, cache_dir: Path | None = None) -> np.ndarray:
    """Normalised homology h for all pairs of ``sequences`` (see module docstring), cached if asked."""
    workers = workers or os.cpu_count() or 1
    cache_path = None
    if cache_dir is not None:
        cache_path = Path(cache_dir) / f"homology-{_cache_key(sequences)}.npy"
        if cache_path.is_file():
            cached = np.load(cache_path, allow_pickle=False)
            if cached.shape == (len(sequences), len(sequences)):
                return cached
    h = normalise(raw_score_matrix(sequences, workers))
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(cache_path, binary=True) as handle:
            np.save(handle, h, allow_pickle=False)
    return h

"""Protein homology by BLOSUM62 local alignment, for leakage-free cross-validation.

Score: Smith–Waterman local alignment with BLOSUM62 and affine gaps, a gap of k residues scoring
−11 − (k − 1) (Biopython's ``open_gap_score=-11, extend_gap_score=-1``; in BLAST's words, where a gap of
k costs existence + k × extension, that is existence 10, extension 1). Computed by parasail's striped
SIMD Smith–Waterman (``sw_striped_profile_sat``: 8-bit lanes first, 16 then 32 bits when a score
saturates), whose scores equal those of Biopython's ``PairwiseAligner`` with the same matrix and gap
scores, pair for pair (checked on all 216,153 pairs of ProNAB's proteins, and on a sample in the tests,
which keep Biopython as the reference); about 100 times faster. Letters outside BLOSUM62's alphabet
(``ARNDCQEGHILKMFPSTWYVBZX*``), e.g. U or O read with ``--on-unknown unk``, are scored as X.

Normalisation: a pair's score divided by the *smaller* of the two self-alignment scores,

    h(a, b) = SW(a, b) / min(SW(a, a), SW(b, b))

so h = 1 when the shorter protein aligns to the longer one as well as to itself (identical sequences,
or one contained in the other), and h ≈ 0 for unrelated proteins (their best local alignment is a short
chance match). Dividing by the smaller self-score makes a domain shared by a short and a long protein
count as homology, which is what matters for leakage: a model that saw the domain in training has seen
most of the short protein.

All pairs of n proteins take n(n−1)/2 alignments (≈ 216,000 for ProNAB's 657 proteins: 7 s on one core);
:func:`homology_matrix` spreads larger sets over worker processes, reports the pairs done through a
``progress`` callback, and can cache the result on disk, keyed by a hash of the sequences, the scoring
scheme and the aligner, so repeated cross-validation runs pay once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from obte_cli.engine.core.outputs import atomic_file
from obte_cli.engine.core.progress import ProgressFactory, no_progress

SCORING = {
    "matrix": "BLOSUM62",
    "open_gap_score": -11.0,  # a gap of one residue (Biopython's convention; parasail's open penalty 11)
    "extend_gap_score": -1.0,  # each further residue of the gap
    "mode": "local",
    "aligner": "parasail sw_striped_profile_sat",  # part of the cache key: a cache is one aligner's scores
}
MATRIX_LETTERS = "ARNDCQEGHILKMFPSTWYVBZX*"  # BLOSUM62's alphabet; any other letter is scored as X
_OPEN, _EXTEND = int(-SCORING["open_gap_score"]), int(-SCORING["extend_gap_score"])
ROWS_PER_TASK = 8  # rows of the matrix a worker process scores per task (progress moves task by task)
MIN_PAIRS_FOR_WORKERS = 20_000  # fewer pairs take well under a second on one core: no process pool


def homology_cache_dir() -> Path:
    """Where :func:`homology_matrix` results are cached between runs: ``$XDG_CACHE_HOME/obte/homology``
    (``~/.cache/obte/homology`` when the variable is unset or empty)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "obte" / "homology"


def matrix_letters(sequence: str) -> str:
    """``sequence`` in upper case with every letter outside BLOSUM62's alphabet written as X."""
    sequence = sequence.upper()
    if set(sequence) <= set(MATRIX_LETTERS):
        return sequence
    return "".join(c if c in MATRIX_LETTERS else "X" for c in sequence)


def alignment_score(a: str, b: str) -> float:
    """The Smith–Waterman score of ``a`` against ``b`` (module docstring)."""
    import parasail

    result = parasail.sw_striped_sat(matrix_letters(a), matrix_letters(b), _OPEN, _EXTEND, parasail.blosum62)
    return float(result.score)


_worker_sequences: list[str] = []


def _hold_sequences(sequences: list[str]) -> None:
    """Worker process initializer: the sequences, sent once instead of with every task."""
    global _worker_sequences
    _worker_sequences = sequences


def _score_rows(rows: Sequence[int], sequences: Sequence[str] | None = None) -> list[tuple[int, np.ndarray]]:
    """Scores of row i against every j ≥ i (its self-score first), for the rows given; in a worker process
    the sequences are those its initializer received."""
    import parasail

    sequences = _worker_sequences if sequences is None else sequences
    out = []
    for i in rows:
        profile = parasail.profile_create_sat(sequences[i], parasail.blosum62)
        scores = [
            parasail.sw_striped_profile_sat(profile, sequences[j], _OPEN, _EXTEND).score
            for j in range(i, len(sequences))
        ]
        out.append((i, np.asarray(scores, dtype=np.float64)))
    return out


def _cache_key(sequences: Sequence[str]) -> str:
    digest = hashlib.sha256(repr(sorted(SCORING.items())).encode())
    for s in sequences:
        digest.update(s.encode() + b"\n")
    return digest.hexdigest()[:24]


def raw_score_matrix(sequences: Sequence[str], workers: int = 1, progress: ProgressFactory = no_progress) -> np.ndarray:
    """Symmetric matrix of Smith–Waterman scores, self-scores on the diagonal; ``progress`` hears the
    n(n−1)/2 pairs as they are scored (with the n self-pairs, which take a moment too)."""
    sequences = [matrix_letters(s) for s in sequences]
    n = len(sequences)
    scores = np.zeros((n, n), dtype=np.float64)
    workers = max(1, min(workers, n))
    if n * (n - 1) // 2 < MIN_PAIRS_FOR_WORKERS:
        workers = 1
    # Heavy rows (row i has n-1-i pairs) go first, so the last tasks to finish are short ones.
    tasks = [list(range(start, min(start + ROWS_PER_TASK, n))) for start in range(0, n, ROWS_PER_TASK)]

    def take(chunk: list[tuple[int, np.ndarray]], advance) -> None:
        for i, row in chunk:
            scores[i, i:] = row
            scores[i:, i] = row
            advance(len(row) - 1)

    with progress(n * (n - 1) // 2, "homology guard, alignments") as advance:
        if workers == 1:
            for rows in tasks:
                take(_score_rows(rows, sequences), advance)
        else:
            with ProcessPoolExecutor(workers, initializer=_hold_sequences, initargs=(sequences,)) as pool:
                for future in as_completed([pool.submit(_score_rows, rows) for rows in tasks]):
                    take(future.result(), advance)
    return scores


def normalise(scores: np.ndarray) -> np.ndarray:
    """h(a, b) = SW(a, b) / min(SW(a, a), SW(b, b)); 1 on the diagonal."""
    self_scores = np.diag(scores)
    denominator = np.minimum(self_scores[:, None], self_scores[None, :])
    return scores / np.maximum(denominator, 1e-9)


def homology_matrix(
    sequences: Sequence[str],
    workers: int | None = None,
    cache_dir: Path | None = None,
    progress: ProgressFactory = no_progress,
) -> np.ndarray:
    """Normalised homology h for all pairs of ``sequences`` (see module docstring), cached if asked;
    ``progress`` hears the alignments done (none when the cache has them)."""
    workers = workers or os.cpu_count() or 1
    cache_path = None
    if cache_dir is not None:
        cache_path = Path(cache_dir) / f"homology-{_cache_key(sequences)}.npy"
        if cache_path.is_file():
            cached = np.load(cache_path, allow_pickle=False)
            if cached.shape == (len(sequences), len(sequences)):
                return cached
    h = normalise(raw_score_matrix(sequences, workers, progress))
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(cache_path, binary=True) as handle:
            np.save(handle, h, allow_pickle=False)
    return h

"""The homology guard's aligner (parasail) against the reference it replaced (Biopython's PairwiseAligner with
the same BLOSUM62 matrix and gap scores): the scores must be identical, pair for pair."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from conftest import SHARED_DATA

from obte_cli.engine.affinity.data import load_affinity_data
from obte_cli.engine.bio import homology
from obte_cli.engine.bio.homology import SCORING, alignment_score, homology_matrix, raw_score_matrix


def _biopython_aligner():
    from Bio.Align import PairwiseAligner, substitution_matrices

    aligner = PairwiseAligner()
    aligner.substitution_matrix = substitution_matrices.load(SCORING["matrix"])
    aligner.open_gap_score = SCORING["open_gap_score"]
    aligner.extend_gap_score = SCORING["extend_gap_score"]
    aligner.mode = SCORING["mode"]
    return aligner


def _biopython_matrix(sequences: list[str]) -> np.ndarray:
    aligner = _biopython_aligner()
    n = len(sequences)
    scores = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            scores[i, j] = scores[j, i] = aligner.score(sequences[i], sequences[j])
    return scores


def test_the_matrix_is_biopythons_blosum62():
    import parasail
    from Bio.Align import substitution_matrices

    blosum = substitution_matrices.load("BLOSUM62")
    letters = homology.MATRIX_LETTERS
    assert "".join(blosum.alphabet) == letters
    assert np.array_equal(parasail.blosum62.matrix, [[blosum[a][b] for b in letters] for a in letters])


def test_gaps_score_as_biopython_scores_them():
    """A gap of k residues: −11 − (k − 1), not BLAST's −11 − k (parasail's open penalty counts the first residue)."""
    aligner = _biopython_aligner()
    left, right = "MKHW" + "WYFCHW" * 4, "WCHYWF" * 4 + "WHKM"
    for k in range(1, 8):
        for a, b in ((left + right, left + "A" * k + right), (left + "GP" * k + right, left + right)):
            assert alignment_score(a, b) == aligner.score(a, b), (k, a, b)


def test_scores_equal_biopythons_on_real_proteins(pronab_path):
    table, _ = load_affinity_data(pronab_path)
    proteins = list(dict.fromkeys(table["protein"]))[:30]  # 79 to 1,901 residues
    # plus the letters BLOSUM62 has beyond the 20 (B, Z, X, *) and a repeat-rich protein
    proteins += ["MKBZXXK*LLW", "QQQQQQQQHHHHQQQQQQQQ" * 5]
    assert np.array_equal(raw_score_matrix(proteins, workers=1), _biopython_matrix(proteins))


def test_scores_past_16_bits_equal_biopythons():
    """Self-scores over 32,767 saturate parasail's 8- and 16-bit lanes: the 32-bit pass must give them."""
    rng = np.random.default_rng(0)
    long = "WWC" * 1100  # self-score 34,100
    edited = "".join(c if rng.random() > 0.05 else "A" for c in long[:1500]) + long[1520:] + "MKV"
    scores = raw_score_matrix([long, edited], workers=1)
    assert scores[0, 0] > 32767 and scores[0, 1] > 32767
    assert np.array_equal(scores, _biopython_matrix([long, edited]))


def test_scores_equal_biopythons_on_a_sample_of_pronab():
    """A seeded sample of the ProNAB development set (with its longest protein, 3,969 residues)."""
    path = SHARED_DATA / "omnibiote-ref" / "pronab_dev.json"
    if not path.is_file():
        pytest.skip(f"shared data {path} is not available")
    table, _ = load_affinity_data(path)
    proteins = list(dict.fromkeys(table["protein"]))
    chosen = sorted(np.random.default_rng(1).choice(len(proteins), 30, replace=False))
    sample = [proteins[i] for i in chosen] + [max(proteins, key=len)]
    assert np.array_equal(raw_score_matrix(sample, workers=1), _biopython_matrix(sample))


def test_letters_outside_the_matrix_are_scored_as_x():
    assert alignment_score("MKUOJLW", "MKXXXLW") == alignment_score("MKXXXLW", "MKXXXLW")
    assert alignment_score("mkvlw", "MKVLW") == alignment_score("MKVLW", "MKVLW")


def _recorder(calls: list):
    @contextlib.contextmanager
    def progress(total, label):
        done = []
        yield done.append
        calls.append((total, label, sum(done)))

    return progress


@pytest.mark.parametrize("workers", [1, 2])
def test_progress_counts_every_pair_once(monkeypatch, workers):
    monkeypatch.setattr(homology, "MIN_PAIRS_FOR_WORKERS", 0)  # a pool even for a few pairs
    monkeypatch.setattr(homology, "ROWS_PER_TASK", 3)
    rng = np.random.default_rng(2)
    proteins = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), int(n))) for n in rng.integers(20, 80, 17)]
    calls: list = []
    scores = raw_score_matrix(proteins, workers=workers, progress=_recorder(calls))
    assert calls == [(17 * 16 // 2, "homology guard, alignments", 17 * 16 // 2)]
    assert np.array_equal(scores, raw_score_matrix(proteins, workers=1))


def test_cache_is_keyed_by_the_aligner(tmp_path, monkeypatch):
    proteins = ["MKVLAAGIVGLLLAW", "MKVLAAGIVG", "WWPPGGHHKK"]
    calls: list = []
    first = homology_matrix(proteins, workers=1, cache_dir=tmp_path, progress=_recorder(calls))
    again = homology_matrix(proteins, workers=1, cache_dir=tmp_path, progress=_recorder(calls))
    assert np.array_equal(first, again) and len(calls) == 1  # the second came from the cache, no alignments
    monkeypatch.setitem(SCORING, "aligner", "another aligner")
    homology_matrix(proteins, workers=1, cache_dir=tmp_path, progress=_recorder(calls))
    assert len(calls) == 2 and len(list(tmp_path.glob("homology-*.npy"))) == 2

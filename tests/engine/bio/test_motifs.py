"""Malformed and minimal motif files (review of `obte scan-jaspar` inputs): each refusal is one line naming the file,
the matrix and what is wrong; lowercase JASPAR rows and MEME files without the optional background block read."""

import io
import sys
import warnings
from math import comb

import numpy as np
import pytest
from conftest import within

from obte_cli.engine.bio.motifs import mutate, read_matrices, substituted_positions
from obte_cli.engine.core.errors import InputError

JASPAR = ">MA0139.1 CTCF\nA [ 1 2 ]\nC [ 3 0 ]\nG [ 1 0 ]\nT [ 1 1 ]\n"
COUNTS = np.array([[1, 3, 1, 1], [2, 0, 0, 1]], dtype=float)
MEME_HEAD = "MEME version 4\n\nALPHABET= ACGT\n\n"
BACKGROUND = "Background letter frequencies\nA 0.25 C 0.25 G 0.25 T 0.25\n\n"
MEME_MOTIF = "MOTIF M1 foo\nletter-probability matrix: alength= 4 w= 2 nsites= 10\n0.1 0.2 0.3 0.4\n0.7 0.1 0.1 0.1\n"


def refusal(tmp_path, file_name: str, text: str) -> str:
    """The one-line InputError of reading ``text`` saved as ``file_name``."""
    path = tmp_path / file_name
    path.write_text(text)
    with pytest.raises(InputError) as info:
        read_matrices(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: "), message
    return message


# ---- empty input ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("file_name", ["m.jaspar", "m.pfm", "m.meme", "m.transfac", "m.txt", "m"])
@pytest.mark.parametrize("text", ["", " \n\n\t\n"], ids=["empty", "blank"])
def test_an_empty_file_has_no_matrices(tmp_path, file_name, text):
    assert refusal(tmp_path, file_name, text).endswith(": no motif matrices found (empty file?)")


def test_empty_standard_input_has_no_matrices(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    with pytest.raises(InputError, match=r"^<stdin>: no motif matrices found \(empty file\?\)$"):
        read_matrices("-")


# ---- JASPAR ---------------------------------------------------------------------------------------------
def test_a_jaspar_matrix_without_its_t_row_is_named(tmp_path):
    three_rows = JASPAR.replace("T [ 1 1 ]\n", "")
    assert refusal(tmp_path, "m.jaspar", three_rows).endswith(": matrix MA0139.1: missing row T")


def test_a_row_missing_in_the_first_matrix_is_not_filled_from_the_next(tmp_path):
    """Biopython's reader took the next matrix's A row as the fourth row here."""
    text = JASPAR.replace("T [ 1 1 ]\n", "") + JASPAR.replace("MA0139.1", "MA0139.2")
    assert refusal(tmp_path, "m.jaspar", text).endswith(": matrix MA0139.1: missing row T")


def test_a_jaspar_header_without_rows_names_all_four(tmp_path):
    text = ">MA0139.1 CTCF\n"
    assert refusal(tmp_path, "m.jaspar", text).endswith(": matrix MA0139.1: missing rows A, C, G, T")


@pytest.mark.parametrize(
    "text, message",
    [
        (JASPAR.replace("C [ 3 0 ]", "C [ 3 ]"), "matrix MA0139.1: rows of different lengths (A 2, C 1, G 2, T 2)"),
        (JASPAR.replace("G [", "A ["), "matrix MA0139.1: two A rows"),
        (JASPAR + "1 2\n", "matrix MA0139.1: more than four rows"),
        (JASPAR.replace("C [ 3 0 ]", "C [ 3 x ]"), "matrix MA0139.1: C row: 'x' is not a number"),
    ],
    ids=["ragged", "duplicate", "extra", "not-a-number"],
)
def test_a_malformed_jaspar_matrix_is_named(tmp_path, text, message):
    assert message in refusal(tmp_path, "m.jaspar", text)


def test_lowercase_jaspar_row_letters_read_as_uppercase(tmp_path):
    path = tmp_path / "lower.jaspar"
    path.write_text(JASPAR.replace("A [", "a [").replace("C [", "c [").replace("G [", "g [").replace("T [", "t ["))
    [matrix] = read_matrices(path)
    assert (matrix.matrix_id, matrix.name) == ("MA0139.1", "CTCF")
    np.testing.assert_array_equal(matrix.counts, COUNTS)


def test_rows_in_any_letter_order_and_bare_rows_read(tmp_path):
    """Rows go by their letter; bare rows (JASPAR 2010–2014) by their place, A, C, G, T."""
    path = tmp_path / "m.jaspar"
    shuffled = ">M1 X\nT [ 1 1 ]\nG [ 1 0 ]\nA [ 1 2 ]\nC [ 3 0 ]\n"
    path.write_text(shuffled + ">M2 Y\n1 2\n3 0\n1 0\n1 1\n")
    first, second = read_matrices(path)
    np.testing.assert_array_equal(first.counts, COUNTS)
    np.testing.assert_array_equal(second.counts, COUNTS)


# ---- MEME -----------------------------------------------------------------------------------------------
def test_a_meme_row_with_three_values_is_named(tmp_path):
    text = MEME_HEAD + BACKGROUND + MEME_MOTIF.replace("0.1 0.2 0.3 0.4", "0.1 0.2 0.3")
    message = refusal(tmp_path, "m.meme", text)
    assert message.endswith(": motif M1: row 1 has 3 values where 4 are expected (A, C, G, T)")


@pytest.mark.parametrize("declared, found", [("3", "2 rows"), ("1", "2 rows")])
def test_a_meme_width_that_disagrees_with_the_rows_is_refused(tmp_path, declared, found):
    """Biopython's reader stopped after w= rows, or at the last row, without a word."""
    text = MEME_HEAD + BACKGROUND + MEME_MOTIF.replace("w= 2", f"w= {declared}")
    message = refusal(tmp_path, "m.meme", text)
    assert message.endswith(f": motif M1: declares width w= {declared} but has {found}")


def test_a_meme_width_of_three_over_one_row(tmp_path):
    """Read as a motif of width 1 before."""
    text = MEME_HEAD + BACKGROUND + "MOTIF M1 foo\nletter-probability matrix: alength= 4 w= 3\n0.1 0.2 0.3 0.4\n"
    assert refusal(tmp_path, "m.meme", text).endswith(": motif M1: declares width w= 3 but has 1 row")


def test_a_meme_file_without_background_reads_as_with_it(tmp_path):
    """The background block is optional in the MEME format (and unused here: counts are p × nsites)."""
    without, with_block = tmp_path / "without.meme", tmp_path / "with.meme"
    without.write_text(MEME_HEAD + MEME_MOTIF)
    with_block.write_text(MEME_HEAD + BACKGROUND + MEME_MOTIF)
    [bare] = read_matrices(without)
    [full] = read_matrices(with_block)
    assert (bare.matrix_id, bare.name) == (full.matrix_id, full.name) == ("M1", "foo")
    np.testing.assert_array_equal(bare.counts, full.counts)
    np.testing.assert_array_equal(bare.counts, [[1, 2, 3, 4], [7, 1, 1, 1]])


def test_a_meme_file_without_motifs_says_so(tmp_path):
    assert refusal(tmp_path, "m.meme", MEME_HEAD).endswith(": no motif matrices found")


@pytest.mark.parametrize(
    "text, message",
    [
        (MEME_MOTIF, "not a MEME file (no 'MEME version' line)"),
        (MEME_HEAD.replace("ACGT", "ACDEFGHIKLMNPQRSTVWY") + MEME_MOTIF, "only DNA (ACGT) or RNA (ACGU) motifs"),
        (MEME_HEAD + "MOTIF M1 foo\n0.1 0.2 0.3 0.4\n", "motif M1: no 'letter-probability matrix:' line"),
        (MEME_HEAD + MEME_MOTIF.replace("0.7 0.1", "0.7 x"), "motif M1: row 2: 'x' is not a number"),
    ],
    ids=["no-version", "protein", "no-matrix-line", "not-a-number"],
)
def test_a_malformed_meme_file_is_named(tmp_path, text, message):
    assert message in refusal(tmp_path, "m.meme", text)


def test_an_overflowing_meme_count_is_refused_without_a_warning(tmp_path):
    text = MEME_HEAD + MEME_MOTIF.replace("0.7 0.1 0.1 0.1", "1e308 0 0 0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the engine never prints, a numpy warning included
        assert refusal(tmp_path, "m.meme", text).endswith(
            ": matrix M1 is empty or has a column without positive counts"
        )


# ---- mutants: a tiny rate ends at once, with the same distribution (#31 §3) ---------------------------


def test_a_tiny_mutation_rate_ends_at_once_with_one_substitution():
    """`scan-jaspar --rate 1e-12` redrew until a substitution happened: about 5e10 rounds per mutant."""
    rng = np.random.default_rng(0)
    consensus = "TGGCCACCAGGGGGCGCTA"
    with within(10):
        mutants = [mutate(consensus, 1e-12, rng) for _ in range(200)]
    changed = [[i for i, (a, b) in enumerate(zip(consensus, m)) if a != b] for m in mutants]
    assert all(len(c) == 1 for c in changed)  # ≥ 2 has probability about 1e-11
    assert len({c[0] for c in changed}) > 10  # anywhere in the site, not always one position


@pytest.mark.parametrize("length, rate", [(19, 0.2), (8, 0.05), (30, 1e-6), (5, 1.0)])
def test_substituted_positions_follow_the_conditioned_bernoulli_draw(length, rate):
    """Drawn directly: the count is binomial given ≥ 1 and, given the count, every position is as likely."""
    rng = np.random.default_rng(1)
    draws = [substituted_positions(length, rate, rng) for _ in range(20000)]
    assert all(len(d) == len(set(d.tolist())) >= 1 and 0 <= d.min() and d.max() < length for d in draws)
    counts = np.bincount([len(d) for d in draws], minlength=length + 1)[1:] / len(draws)
    pmf = np.array([comb(length, k) * rate**k * (1 - rate) ** (length - k) for k in range(1, length + 1)])
    expected = pmf / pmf.sum()
    assert np.abs(counts - expected).max() < 0.015, (counts[:4], expected[:4])
    per_position = np.bincount(np.concatenate(draws), minlength=length) / sum(len(d) for d in draws)
    assert np.abs(per_position - 1 / length).max() < 0.015


def test_rejection_and_direct_draws_agree():
    """The per-base rounds and the direct draw give one distribution: compare them at a rate where both run."""
    consensus, rate = "ACGTACGTAC", 0.1
    rng = np.random.default_rng(2)
    by_rounds = np.bincount(
        [sum(a != b for a, b in zip(consensus, mutate(consensus, rate, rng))) for _ in range(20000)], minlength=11
    )
    direct = np.bincount([len(substituted_positions(len(consensus), rate, rng)) for _ in range(20000)], minlength=11)
    assert np.abs(by_rounds / 20000 - direct / 20000).max() < 0.02

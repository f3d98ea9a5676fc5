"""`obte scan-jaspar` on an empty or malformed matrix file: one ``error:`` line naming the file and matrix, exit 1."""

from conftest import REPO, obte, one_error_line

CTCF_FASTA = REPO / "share" / "examples" / "ctcf.fa"


def test_empty_standard_input_as_the_matrix_file():
    result = obte("scan-jaspar", "-", "--protein", CTCF_FASTA, input="")
    one_error_line(result, "<stdin>: no motif matrices found (empty file?)")


def test_a_jaspar_matrix_without_its_t_row(tmp_path):
    path = tmp_path / "threerows.jaspar"
    path.write_text(">MA0139.1\tCTCF\nA  [ 1 2 ]\nC  [ 3 0 ]\nG  [ 1 0 ]\n")
    one_error_line(obte("scan-jaspar", path, "--protein", CTCF_FASTA), f"{path}: matrix MA0139.1: missing row T")


def test_a_meme_motif_shorter_than_its_declared_width(tmp_path):
    path = tmp_path / "wshort.meme"
    motif = "MOTIF M1 foo\nletter-probability matrix: alength= 4 w= 3\n0.1 0.2 0.3 0.4\n"
    path.write_text("MEME version 4\n\nALPHABET= ACGT\n\n" + motif)
    result = obte("scan-jaspar", path, "--protein", CTCF_FASTA)
    one_error_line(result, f"{path}: motif M1: declares width w= 3 but has 1 row")

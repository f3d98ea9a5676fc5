"""`obte scan-jaspar` and the matrix readers, on real JASPAR 2024 matrices (tests/data/motifs; the whole
CORE collection from ../shared in one slow test)."""

import numpy as np
import pytest
from conftest import DATA, obte, shared_file, within

from obte_cli.engine.bio.motifs import mutate, read_matrices, single_substitutions
from obte_cli.engine.core.errors import InputError

MOTIFS = DATA / "motifs"
CTCF_JASPAR = MOTIFS / "MA0139.1.jaspar"  # a single-matrix file as users download it
CORE_SAMPLE = MOTIFS / "core_sample.jaspar"  # MA0002.3, MA0139.2, MA0764.4 as JASPAR2024_CORE.jaspar has them
ACCESSIONS = MOTIFS / "matrices.tsv"  # their rows of the matrix → UniProt accession table
CTCF_CONSENSUS = "TGGCCACCAGGGGGCGCTA"


@pytest.fixture(scope="module")
def ctcf_fasta(pronab, tmp_path_factory):
    path = tmp_path_factory.mktemp("ctcf") / "ctcf.fa"
    path.write_text(f">sp|P49711|CTCF_HUMAN Transcriptional repressor CTCF\n{pronab['P49711']['Sequence']}\n")
    return path


def test_all_four_formats_read_the_same_real_matrices():
    [jaspar] = read_matrices(CTCF_JASPAR)
    [pfm] = read_matrices(MOTIFS / "MA0139.1.pfm")
    assert (jaspar.matrix_id, jaspar.name, pfm.matrix_id) == ("MA0139.1", "CTCF", "MA0139.1")
    assert np.array_equal(jaspar.counts, pfm.counts) and jaspar.consensus() == CTCF_CONSENSUS
    [transfac] = read_matrices(MOTIFS / "MA0002.3.transfac")
    meme = read_matrices(MOTIFS / "two.meme")
    assert (transfac.matrix_id, transfac.name) == ("MA0002.3", "Runx1")
    assert [(m.matrix_id, m.name) for m in meme] == [("MA0002.3", "Runx1"), ("MA0139.2", "CTCF")]
    core = {m.matrix_id: m for m in read_matrices(CORE_SAMPLE)}
    assert list(core) == ["MA0002.3", "MA0139.2", "MA0764.4"]
    # MEME stores probabilities × nsites: the same matrix up to rounding
    assert np.allclose(meme[0].counts, core["MA0002.3"].counts, atol=0.01)
    assert np.array_equal(transfac.counts, core["MA0002.3"].counts)


def _consensus_agrees_with_biopython(path, limit=None):
    """Our consensus of the matrices of ``path`` (the first ``limit``) equals Biopython's wherever one base is
    the most frequent; returns the matrices read."""
    from Bio import motifs

    with open(path) as handle:
        biopython = {m.matrix_id: m for m in motifs.parse(handle, "jaspar")}
    ours = read_matrices(path)
    for matrix in ours[:limit]:
        theirs = str(biopython[matrix.matrix_id].consensus)
        unique = [(np.sort(col)[-1] > np.sort(col)[-2]) for col in matrix.counts]
        assert all(a == b for a, b, u in zip(matrix.consensus(), theirs, unique) if u), matrix.matrix_id
    return ours


def test_consensus_is_the_most_frequent_base():
    for path in (CTCF_JASPAR, CORE_SAMPLE):
        assert _consensus_agrees_with_biopython(path)


@pytest.mark.slow
def test_the_whole_core_collection_reads_and_agrees_with_biopython():
    core = _consensus_agrees_with_biopython(shared_file("jaspar2024", "JASPAR2024_CORE.jaspar"), limit=400)
    assert len({m.matrix_id for m in core}) == len(core) == 2346


def test_mutation_rate_statistics():
    rng = np.random.default_rng(0)
    consensus = CTCF_CONSENSUS
    mutants = [mutate(consensus, 0.05, rng) for _ in range(4000)]
    subs = np.array([sum(a != b for a, b in zip(consensus, m)) for m in mutants])
    assert subs.min() >= 1
    expected = len(consensus) * 0.05 / (1 - 0.95 ** len(consensus))  # E[n | n ≥ 1], n ~ Binomial(19, 0.05)
    assert abs(subs.mean() - expected) < 0.05
    replaced = [b for m in mutants for a, b in zip(consensus, m) if a != b and a == "G"]
    counts = {b: replaced.count(b) / len(replaced) for b in "ACT"}
    assert all(abs(v - 1 / 3) < 0.05 for v in counts.values())  # uniform over the other three bases
    assert len(single_substitutions("ACG")) == 9


def test_a_tiny_rate_scans_at_once(ctcf_fasta):
    """#31 §3: `scan-jaspar MA0139.1.jaspar --protein p.fa --rate 1e-12` ran until killed (each mutant was
    redrawn until a substitution happened); now each mutant has its one substitution at once."""
    with within(120):
        result = obte("scan-jaspar", CTCF_JASPAR, "--protein", ctcf_fasta, "--truncate", "--rate", "1e-12")
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()[1:]]
    assert len(rows) == 8 and all(r[5] == "1" for r in rows)  # n_subs


def test_scan_is_seeded_per_matrix(ctcf_fasta, tmp_path):
    args = [CTCF_JASPAR, MOTIFS / "two.meme", "--protein", ctcf_fasta, "--truncate", "--all-matrices"]
    first = obte("scan-jaspar", *args, "--seed", "3")
    assert first.exit_code == 0, first.output
    rows = [line.split("\t") for line in first.stdout.strip().splitlines()]
    assert rows[0][:5] == ["matrix_id", "tf_name", "protein_id", "consensus", "mutant"]
    assert len(rows) == 1 + 3 * 8 and {r[3] for r in rows[1:] if r[0] == "MA0139.1"} == {CTCF_CONSENSUS}
    assert all(int(r[5]) >= 1 and float(r[9]) < 0 for r in rows[1:])  # mutants lose log-odds
    assert all(abs(float(r[8]) - (float(r[7]) - float(r[6]))) < 2e-4 for r in rows[1:])
    assert obte("scan-jaspar", *args, "--seed", "3").stdout == first.stdout
    assert obte("scan-jaspar", *args, "--seed", "4").stdout != first.stdout
    reordered = obte(
        "scan-jaspar",
        MOTIFS / "two.meme",
        CTCF_JASPAR,
        "--protein",
        ctcf_fasta,
        "--truncate",
        "--seed",
        "3",
        "--all-matrices",
    )
    assert sorted(reordered.stdout.splitlines()) == sorted(first.stdout.splitlines())
    assert "mean ΔΔG" in first.stderr and "Spearman" in first.stderr


def test_matrix_without_protein_is_reported_and_skipped(pronab, tmp_path):
    proteins = tmp_path / "tfs.fa"
    proteins.write_text(f">P49711\n{pronab['P49711']['Sequence']}\n>Q99999\nMKVLAAGIVG\n")
    result = obte(
        "scan-jaspar",
        MOTIFS / "two.meme",
        "--protein",
        proteins,
        "--accessions",
        ACCESSIONS,
        "--truncate",
    )
    assert result.exit_code == 0, result.output
    assert "MA0002.3 (Runx1): no matching protein" in result.stderr
    assert {line.split("\t")[0] for line in result.stdout.strip().splitlines()[1:]} == {"MA0139.2"}
    nobody = tmp_path / "nobody.fa"
    nobody.write_text(">A1\nMKV\n>A2\nMRW\n")
    none = obte("scan-jaspar", MOTIFS / "two.meme", "--protein", nobody)
    assert none.exit_code == 1 and "no protein (A1, A2) matches any of the 2 matrices" in none.stderr


def test_one_protein_scores_only_the_matrices_named_for_it(ctcf_fasta):
    """#33 §4: one protein was scored against every matrix without a word (CTCF against Runx1 here); now it is
    matched by name like any other, and --all-matrices asks for every matrix."""
    result = obte("scan-jaspar", MOTIFS / "two.meme", CTCF_JASPAR, "--protein", ctcf_fasta, "--truncate")
    assert result.exit_code == 0, result.output
    assert {line.split("\t")[0] for line in result.stdout.strip().splitlines()[1:]} == {"MA0139.2", "MA0139.1"}
    assert "MA0002.3 (Runx1): no matching protein" in result.stderr
    assert "2 of 3 matrices matched a protein" in result.stderr
    everything = obte("scan-jaspar", MOTIFS / "two.meme", "--protein", ctcf_fasta, "--truncate", "--all-matrices")
    assert everything.exit_code == 0, everything.output
    assert {line.split("\t")[0] for line in everything.stdout.strip().splitlines()[1:]} == {"MA0139.2", "MA0002.3"}
    assert "no matching protein" not in everything.stderr


def test_a_protein_named_for_no_matrix_needs_all_matrices(pronab, tmp_path):
    query = tmp_path / "query.fa"
    query.write_text(f">my_tf\n{pronab['P49711']['Sequence']}\n")
    refused = obte("scan-jaspar", CTCF_JASPAR, "--protein", query, "--truncate")
    assert refused.exit_code == 1 and "no protein (my_tf) matches any of the 1 matrices" in refused.stderr
    assert "--all-matrices" in refused.stderr
    scored = obte("scan-jaspar", CTCF_JASPAR, "--protein", query, "--truncate", "--all-matrices")
    assert scored.exit_code == 0 and len(scored.stdout.strip().splitlines()) == 1 + 8
    two = tmp_path / "two.fa"
    two.write_text(query.read_text() + ">other\nMKV\n")
    several = obte("scan-jaspar", CTCF_JASPAR, "--protein", two, "--all-matrices")
    assert several.exit_code == 1 and "--all-matrices scores one protein" in several.stderr
    assert "the file has 2 records" in several.stderr


def test_one_matrix_summary_has_no_nan(ctcf_fasta):
    """#33 §4: with one matrix the summary said '± nan' and 'p: nan' (a SEM and a t-test over one TF)."""
    result = obte("scan-jaspar", CTCF_JASPAR, "--protein", ctcf_fasta, "--truncate")
    assert result.exit_code == 0, result.output
    summary = result.stderr.strip().splitlines()[-1]
    assert "1 matrix (MA0139.1 CTCF, protein sp|P49711|CTCF_HUMAN), 8 mutants: mean ΔΔG" in summary, summary
    assert "nan" not in summary.lower() and "of 8 mutants > 0" in summary and "± SEM over its mutants" in summary


def test_describe_scan_leaves_out_what_cannot_be_computed():
    from obte_cli.engine.affinity.specificity import ScanRow, describe_scan, summarise_scan

    rows = [ScanRow(m, m, "P1", "ACGT", "ACGA", 1, -9.0, -8.0, 1.0, -1.0) for m in ("A", "B")]
    text = describe_scan(summarise_scan(rows), rows)  # equal per-TF means: no SEM spread, no t-test, no ρ
    assert text.startswith("2 matrices, 2 mutants: mean ΔΔG over TFs 1.000 ± 0.000 kcal/mol, 2 of 2 TFs (100%)")
    assert "nan" not in text and "p for" not in text and "Spearman ρ(ΔΔG, log-odds drop): NA" in text
    one = describe_scan(summarise_scan(rows[:1]), rows[:1])
    assert one.startswith("1 matrix (A A, protein P1), 1 mutants: mean ΔΔG 1.000 kcal/mol") and "nan" not in one


def test_one_tf_against_the_whole_core_collection(tmp_path):
    """#33 §4 on real data: ETS1 (UniProt P14921, its ProNAB sequence) against all 2,346 JASPAR 2024 CORE
    matrices is scored only with MA0098.4 ETS1; the rest is one warning line, not 2,345."""
    import json

    core = shared_file("jaspar2024", "JASPAR2024_CORE.jaspar")
    pronab = json.loads(shared_file("omnibiote-ref", "pronab_dev.json").read_text())
    ets1 = tmp_path / "ets1.fa"
    ets1.write_text(f">sp|P14921|ETS1_HUMAN\n{pronab['P14921']['Sequence']}\n")
    result = obte("scan-jaspar", core, "--protein", ets1)
    assert result.exit_code == 0, result.output
    assert {line.split("\t")[0] for line in result.stdout.strip().splitlines()[1:]} == {"MA0098.4"}
    assert "2345 of 2346 matrices have no matching protein" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 3 and "nan" not in result.stderr


@pytest.mark.parametrize(
    "text, message",
    [
        (">MA9999.1 BAD\nA [ 1 2 ]\nC [ 1 2 ]\nG [ 1 ]\nT [ 1 2 ]\n", "bad.jaspar"),
        (">MA9999.1 EMPTY\nA [ 0 1 ]\nC [ 0 1 ]\nG [ 0 1 ]\nT [ 0 1 ]\n", "column without positive counts"),
        ("hello\n", "bad.jaspar"),
    ],
)
def test_malformed_matrix_is_a_one_line_error(tmp_path, ctcf_fasta, text, message):
    bad = tmp_path / "bad.jaspar"
    bad.write_text(text)
    with pytest.raises(InputError):
        read_matrices(bad)
    result = obte("scan-jaspar", bad, "--protein", ctcf_fasta)
    assert result.exit_code == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and message in line and "Traceback" not in result.stderr


def test_saturation_writes_model_pfm_heatmap_and_table(ctcf_fasta, tmp_path):
    out = tmp_path / "sat"
    result = obte(
        "scan-jaspar",
        CTCF_JASPAR,
        "--protein",
        ctcf_fasta,
        "--truncate",
        "--mutants",
        "2",
        "--saturation",
        out,
        "-o",
        tmp_path / "scan.tsv",
    )
    assert result.exit_code == 0, result.output
    assert (out / "MA0139.1.png").read_bytes()[:4] == b"\x89PNG"
    [model_pfm] = read_matrices(out / "MA0139.1.model.jaspar")
    assert model_pfm.length == 19 and np.allclose(model_pfm.counts.sum(axis=1), 1000, atol=3)
    lines = (out / "saturation.tsv").read_text().strip().splitlines()
    assert len(lines) == 1 + 19 * 4
    zero = [line for line in lines[1:] if line.split("\t")[4] == line.split("\t")[5]]
    assert len(zero) == 19 and all(float(line.split("\t")[6]) == 0 for line in zero)
    assert "mean column Pearson r" in result.stderr


def test_scan_summary_against_a_hand_computation():
    """Per-TF means 0.5, 1.5 and -0.5: mean 0.5, SEM 1/sqrt(3), 2 of 3 > 0, and the one-sided t-test
    t = 0.5 / (1/sqrt(3)) = 0.866 on 2 degrees of freedom (p = 0.2388, from a t table)."""
    from obte_cli.engine.affinity.specificity import ScanRow, summarise_scan

    def row(matrix: str, ddg: float, change: float) -> ScanRow:
        return ScanRow(matrix, matrix, "P1", "ACGT", "ACGA", 1, -9.0, -9.0 + ddg, ddg, change)

    rows = [row("A", 0.0, -1.0), row("A", 1.0, -2.0), row("B", 1.5, -3.0), row("C", -0.5, 0.5)]
    summary = summarise_scan(rows)
    assert summary["matrices"] == 3 and summary["mutants"] == 4
    assert summary["mean_ddG"] == pytest.approx(0.5) and summary["sem_ddG"] == pytest.approx(1 / np.sqrt(3))
    assert summary["fraction_positive"] == pytest.approx(2 / 3)
    assert summary["p_mean_ddG_gt_0"] == pytest.approx(0.2388, abs=1e-4)
    assert summary["spearman_ddG_vs_logodds_drop"] == pytest.approx(1.0)
    assert np.isnan(summarise_scan(rows[:1])["p_mean_ddG_gt_0"])

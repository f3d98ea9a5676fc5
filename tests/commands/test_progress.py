"""Progress of long commands on stderr: a plain line every OBTE_PROGRESS_INTERVAL seconds when stderr is not a
terminal (here: Typer's CliRunner), none with -q, and stdout the same either way."""

from __future__ import annotations

import re

import pytest
from conftest import DATA, obte

from obte_cli.commands.progress import INTERVAL_ENV, duration, progress_interval, progress_line


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny"
    result = obte("model", "init", "--preset", "tiny", "-o", path, "--seed", "1")
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture
def often(monkeypatch):
    """Progress lines every millisecond: any command prints them (and its last line)."""
    monkeypatch.setenv(INTERVAL_ENV, "0.001")


def _progress_lines(stderr: str, label: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"obte: {label}: ")]


def test_progress_line_and_interval(monkeypatch):
    assert progress_line("embed", 312.6, 1000, "sequences", 25) == (
        "embed: 312/1,000 sequences (31%), 25 s, about 55 s left"
    )
    assert progress_line("homology", 5, None, "pairs", 125) == "homology: 5 pairs, 2 min 05 s"
    assert duration(7260) == "2 h 01 min"
    monkeypatch.setenv(INTERVAL_ENV, "0.5")
    assert progress_interval() == 0.5
    for bad in ("", "fast", "0", "-1", "nan", "inf"):
        monkeypatch.setenv(INTERVAL_ENV, bad)
        assert progress_interval() == 10.0


def test_embed_prints_progress_lines_and_quiet_silences_them(tmp_path, tiny_model, often, monkeypatch):
    fasta = DATA / "pronab_ligands.fa"
    n = sum(line.startswith(">") for line in fasta.read_text().splitlines())
    shown = obte("embed", fasta, "-m", tiny_model, "-o", "-")
    assert shown.exit_code == 0, shown.output
    lines = _progress_lines(shown.stderr, "embed")
    assert lines, shown.stderr
    assert all(re.fullmatch(rf"obte: embed: \d+/{n} sequences \(\d+%\), .*", line) for line in lines), lines
    assert lines[-1].startswith(f"obte: embed: {n}/{n} sequences (100%)"), lines
    quiet = obte("-q", "embed", fasta, "-m", tiny_model, "-o", "-")
    assert quiet.exit_code == 0 and not _progress_lines(quiet.stderr, "embed"), quiet.stderr
    monkeypatch.delenv(INTERVAL_ENV)  # every 10 s: this run is over long before
    plain = obte("embed", fasta, "-m", tiny_model, "-o", "-")
    assert not _progress_lines(plain.stderr, "embed"), plain.stderr
    assert shown.stdout == quiet.stdout == plain.stdout and shown.stdout.count("\n") == n + 1


def test_embed_from_stdin_counts_without_a_total(tiny_model, often):
    fasta = DATA / "pronab_ligands.fa"
    result = obte("embed", "-", "-m", tiny_model, "-o", "-", input=fasta.read_text())
    assert result.exit_code == 0, result.output
    lines = _progress_lines(result.stderr, "embed")
    assert lines and all(re.fullmatch(r"obte: embed: \d+ sequences, .*", line) for line in lines), lines


def test_score_prints_progress_lines_and_quiet_silences_them(tiny_model, often):
    fasta = DATA / "pronab_ligands.fa"
    n = sum(line.startswith(">") for line in fasta.read_text().splitlines())
    shown = obte("score", fasta, "-m", tiny_model)
    assert shown.exit_code == 0, shown.output
    lines = _progress_lines(shown.stderr, "score")
    assert lines and lines[-1].startswith(f"obte: score: {n}/{n} sequences (100%)"), shown.stderr
    quiet = obte("-q", "score", fasta, "-m", tiny_model)
    assert quiet.exit_code == 0 and not _progress_lines(quiet.stderr, "score"), quiet.stderr
    assert shown.stdout == quiet.stdout and shown.stdout.count("\n") == n + 1


def test_variant_scoring_prints_progress_of_its_passes(tmp_path, tiny_model, often):
    fasta = tmp_path / "sac7d.fa"
    fasta.write_text(">sac7d\nMVKVKFKYKGEEKEVDTSKIKKVWRVGKMVSFTYDDNGKTGRGAVSEKDAPKELLDMLARAEREKK\n")
    shown = obte("score", fasta, "-m", tiny_model, "--mutations", "V2A,K3R:V4L")
    assert shown.exit_code == 0, shown.output
    marginals = _progress_lines(shown.stderr, "score marginals, forward passes")
    pseudo = _progress_lines(shown.stderr, "score pseudo-perplexity, sequences")
    assert marginals and pseudo, shown.stderr
    assert pseudo[-1].startswith("obte: score pseudo-perplexity, sequences: 3/3 (100%)"), pseudo
    quiet = obte("-q", "score", fasta, "-m", tiny_model, "--mutations", "V2A,K3R:V4L")
    assert quiet.exit_code == 0 and "score " not in quiet.stderr and quiet.stdout == shown.stdout


def test_probe_joint_prints_progress_of_each_stage(tmp_path, often):
    import gzip

    from obte_cli.engine.embedding.joint_probe import pairs_from_genbank

    model = tmp_path / "residue"
    made = obte("model", "init", "--preset", "tiny", "-t", "residue", "--context", "128", "-o", model)
    assert made.exit_code == 0, made.output
    genbank = tmp_path / "NC_000932.gb"  # the Arabidopsis chloroplast genome (Biopython test data)
    genbank.write_bytes(gzip.decompress((DATA / "genbank" / "NC_000932.gb.gz").read_bytes()))
    short = [p for p in pairs_from_genbank(genbank) if len(p.gene) < 400][:20]
    table = tmp_path / "pairs.tsv"
    table.write_text("id\tgene_seq\tprotein_seq\n" + "".join(f"{p.id}\t{p.gene}\t{p.protein}\n" for p in short))
    args = ("embed", "probe-joint", "--pairs", table, "-m", model, "--steps", "20", "--train-frac", "0.2")
    shown = obte(*args)
    assert shown.exit_code == 0, shown.output
    for which in ("model", "control"):
        for stage, total in (("genes embedded", 20), ("proteins embedded", 20), ("map training steps", 20)):
            lines = _progress_lines(shown.stderr, f"probe-joint {which}, {stage}")
            assert lines and lines[-1].startswith(f"obte: probe-joint {which}, {stage}: {total}/{total} (100%)"), (
                which, stage, shown.stderr,
            )  # fmt: skip
    quiet = obte("-q", *args)
    assert quiet.exit_code == 0 and "probe-joint" not in quiet.stderr and quiet.stdout == shown.stdout


def test_bench_tasks_prints_its_runs(tmp_path, tiny_model, often):
    from test_bench_tasks import BUDGET, _write_data_root

    data = _write_data_root(tmp_path / "data")
    args = ["bench", "tasks", "--data", data, "-m", tiny_model, *BUDGET, "--task", "gb1/three_vs_rest"]
    shown = obte(*args, "-o", tmp_path / "shown")
    assert shown.exit_code == 0, shown.output
    lines = _progress_lines(shown.stderr, "bench tasks")
    assert lines and lines[-1].startswith("obte: bench tasks: 2/2 runs (100%)"), shown.stderr  # model, fresh control
    quiet = obte("-q", *args, "-o", tmp_path / "quiet")
    assert quiet.exit_code == 0 and not _progress_lines(quiet.stderr, "bench tasks"), quiet.stderr
    assert shown.stdout.splitlines()[0] == quiet.stdout.splitlines()[0]  # rows hold seconds: compare the header


def test_bench_contacts_prints_its_folds(tmp_path, tiny_model, often):
    from conftest import REPO

    structures = [DATA / "structures" / "1LCD.cif.gz", REPO / "share" / "examples" / "1AZP.pdb.gz",
                  DATA / "structures" / "1W0T.pdb.gz", DATA / "structures" / "3PF4.pdb.gz"]  # fmt: skip
    args = ["bench", "contacts", *structures, "-m", tiny_model, "--methods", "propensity", "--folds", "2"]
    shown = obte(*args, "-o", tmp_path / "shown")
    assert shown.exit_code == 0, shown.output
    lines = _progress_lines(shown.stderr, "bench contacts")
    assert lines and lines[-1].startswith("obte: bench contacts: 2/2 folds (100%)"), shown.stderr
    quiet = obte("-q", *args, "-o", tmp_path / "quiet")
    assert quiet.exit_code == 0 and not _progress_lines(quiet.stderr, "bench contacts"), quiet.stderr
    assert shown.stdout == quiet.stdout


def test_finetune_affinity_prints_the_homology_alignments(tmp_path, pronab_path, often, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # a cold cache: the alignments run
    args = ["finetune", "affinity", "--data", pronab_path, "--method", "composition", "--folds", "2"]
    shown = obte(*args, "-o", tmp_path / "shown")
    assert shown.exit_code == 0, shown.output
    lines = _progress_lines(shown.stderr, "homology guard, alignments")
    n = 69  # distinct proteins of the sample
    assert lines and lines[-1].startswith(f"obte: homology guard, alignments: {n * (n - 1) // 2:,}/"), shown.stderr
    cached = obte(*args, "-o", tmp_path / "cached")  # from the cache: nothing to show
    assert cached.exit_code == 0 and not _progress_lines(cached.stderr, "homology guard, alignments")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cold-again"))
    quiet = obte("-q", *args, "-o", tmp_path / "quiet")
    assert quiet.exit_code == 0 and not _progress_lines(quiet.stderr, "homology guard"), quiet.stderr
    for name in ("folds.tsv", "predictions.tsv"):
        assert (tmp_path / "shown" / name).read_text() == (tmp_path / "quiet" / name).read_text()

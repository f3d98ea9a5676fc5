"""`obte embed/score/predict --regions BED --genome FASTA`: the same results as the same sequences given as FASTA.

The genome is the real *A. thaliana* chloroplast genome NC_000932 (tests/data/genbank) written as FASTA, plus a
short second sequence with unresolved bases (N); the regions are a few of its genes on both strands, and the
FASTA they are compared with holds Biopython's own extraction of those genes."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys

import pytest
from conftest import DATA, obte, one_error_line, unwritable_directory

CHROM = "NC_000932.1"


@pytest.fixture(scope="module")
def chloro(tmp_path_factory):
    """Genome FASTA, a BED of the four shortest genes (two per strand) and one unnamed interval, and the FASTA
    of the same sequences, as Biopython extracts them."""
    from Bio import SeqIO
    from Bio.SeqFeature import CompoundLocation

    from obte_cli.engine.bio.seqio import write_fasta

    with gzip.open(DATA / "genbank" / "NC_000932.gb.gz", "rt") as handle:
        record = SeqIO.read(handle, "genbank")
    genes = [f for f in record.features if f.type == "gene" and not isinstance(f.location, CompoundLocation)]
    shortest = sorted(genes, key=lambda f: len(f.location))
    picked = [f for f in shortest if f.location.strand == 1][:2] + [f for f in shortest if f.location.strand == -1][:2]
    root = tmp_path_factory.mktemp("regions")
    genome = root / "genome" / "chloroplast.fa"
    genome.parent.mkdir()
    unresolved = str(record.seq[5000:5040]) + "N" * 6 + str(record.seq[5040:5074])  # 80 bases, 6 of them N
    with open(genome, "w") as handle:
        write_fasta([(f"{CHROM} {record.description}", str(record.seq)), ("gap", unresolved)], handle, 70)
    rows = [
        (CHROM, int(f.location.start), int(f.location.end), f.qualifiers["gene"][0], "+-"[f.location.strand == -1])
        for f in picked
    ]
    bed = root / "genes.bed"
    bed.write_text(
        "track name=genes\n"
        + "".join(f"{c}\t{s}\t{e}\t{n}\t0\t{strand}\n" for c, s, e, n, strand in rows)
        + f"{CHROM}\t60000\t60090\n"
    )
    expected = [(f.qualifiers["gene"][0], str(f.extract(record.seq))) for f in picked]
    expected.append((f"{CHROM}:60000-60090", str(record.seq[60000:60090])))
    fasta = root / "genes.fa"
    with open(fasta, "w") as handle:
        write_fasta(expected, handle, 0)
    gap = root / "gap.bed"
    gap.write_text("gap\t30\t60\tacross_the_gap\t0\t-\n")
    one, one_fasta = root / "one.bed", root / "one.fa"  # the shortest minus-strand gene alone
    one.write_text(bed.read_text().splitlines()[3] + "\n")
    one_fasta.write_text(f">{expected[2][0]}\n{expected[2][1]}\n")
    return {
        "genome": genome,
        "bed": bed,
        "fasta": fasta,
        "gap": gap,
        "expected": expected,
        "one": one,
        "one.fa": one_fasta,
    }


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _said(result) -> str:
    """stderr as one line of words (a usage error may be drawn in a box)."""
    return " ".join(result.stderr.replace("│", " ").split())


def _regions(chloro, bed=None):
    return ["--regions", bed or chloro["bed"], "--genome", chloro["genome"]]


def test_embed_regions_is_embedding_the_same_sequences_as_fasta(chloro, tmp_path):
    fai = chloro["genome"].parent / "chloroplast.fa.fai"
    fai.unlink(missing_ok=True)
    by_regions = obte("embed", *_regions(chloro), "-o", tmp_path / "regions.tsv")
    assert by_regions.exit_code == 0, by_regions.output
    assert f"building its index (once) → {fai}" in by_regions.stderr and fai.is_file()
    by_fasta = obte("embed", chloro["fasta"], "-o", tmp_path / "fasta.tsv")
    assert by_fasta.exit_code == 0, by_fasta.output
    table = (tmp_path / "regions.tsv").read_text()
    assert table == (tmp_path / "fasta.tsv").read_text()
    assert [line.split("\t")[0] for line in table.splitlines()[1:]] == [name for name, _ in chloro["expected"]]


def test_score_regions_is_scoring_the_same_sequences_as_fasta(chloro):
    by_regions = obte("score", *_regions(chloro))
    assert by_regions.exit_code == 0, by_regions.output
    by_fasta = obte("score", chloro["fasta"])
    assert by_fasta.exit_code == 0, by_fasta.output
    assert by_regions.stdout == by_fasta.stdout
    rows = [line.split("\t") for line in by_regions.stdout.splitlines()[1:]]
    assert [(r[0], r[1], int(r[2])) for r in rows] == [(n, "DNA", len(s)) for n, s in chloro["expected"]]


def test_score_mutations_of_a_region(chloro):
    """Variant scoring reads its one reference record from --regions too (positions within the region)."""
    sequence = chloro["expected"][2][1]  # a minus-strand gene: positions count along the gene
    other = "A" if sequence[9].upper() != "A" else "C"
    mutations = ["--mutations", f"{sequence[9].upper()}10{other}", "--strategy", "wt-marginals"]
    by_regions = obte("score", *_regions(chloro, chloro["one"]), *mutations)
    assert by_regions.exit_code == 0, by_regions.output
    by_fasta = obte("score", chloro["one.fa"], *mutations)
    assert by_fasta.exit_code == 0, by_fasta.output
    assert by_regions.stdout == by_fasta.stdout and len(by_regions.stdout.splitlines()) == 2


def test_regions_read_from_stdin(chloro):
    by_stdin = obte("embed", "--regions", "-", "--genome", chloro["genome"], "-o", "-", input=chloro["bed"].read_text())
    assert by_stdin.exit_code == 0, by_stdin.output
    assert by_stdin.stdout == obte("embed", chloro["fasta"], "-o", "-").stdout


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A micro model fine-tuned one epoch on coding / non-coding windows of this same genome (tests/data/tasks)."""
    root = tmp_path_factory.mktemp("classifier")
    init = obte("model", "init", "--preset", "micro", "-t", "residue", "--context", 64, "-o", root / "bb", "--seed", 1)
    assert init.exit_code == 0, init.output
    splits = []
    for split in ("train", "dev", "test"):
        lines = (DATA / "tasks" / f"coding_{split}.csv").read_text().splitlines()
        (root / f"{split}.csv").write_text("\n".join(lines[:25]) + "\n")  # the header and 24 rows
        splits += [f"--{split}", root / f"{split}.csv"]
    common = ["-m", root / "bb", "--epochs", 1, "--truncate", "--seed", 0, "--batch-size", 8]
    tuned = obte("finetune", "classify", *splits, *common, "-o", root / "cls")
    assert tuned.exit_code == 0, tuned.output
    return root / "cls" / "model"


@pytest.mark.slow
def test_predict_regions_is_predicting_the_same_sequences_as_fasta(chloro, classifier):
    by_regions = obte("predict", classifier, *_regions(chloro))
    assert by_regions.exit_code == 0, by_regions.output
    by_fasta = obte("predict", classifier, chloro["fasta"])
    assert by_fasta.exit_code == 0, by_fasta.output
    assert by_regions.stdout == by_fasta.stdout
    assert [line.split("\t")[0] for line in by_regions.stdout.splitlines()[1:]] == [n for n, _ in chloro["expected"]]


def test_unknown_letters_in_a_region_are_handled_as_in_fasta(chloro):
    counted = obte("score", *_regions(chloro, chloro["gap"]))
    assert counted.exit_code == 0, counted.output
    assert "6 non-standard letters read as <unk>: N ×6" in counted.stderr
    refused = obte("score", *_regions(chloro, chloro["gap"]), "--on-unknown", "error")
    one_error_line(refused, "across_the_gap", "'N'", "--on-unknown unk")


@pytest.mark.parametrize("command", [["embed"], ["score"], ["predict", "MODEL"]])
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["FASTA", "--regions", "BED", "--genome", "GENOME"], "cannot be combined with FASTA arguments"),
        (["--regions", "BED"], "'--regions': needs --genome"),
        (["--genome", "GENOME"], "'--genome': needs --regions"),
        (["--regions", "BED", "--genome", "-"], "'--genome': must be a file"),
        ([], "none given: give FASTA files, or --regions BED --genome FASTA"),
    ],
)
def test_regions_or_fasta_usage_errors(chloro, tmp_path, command, arguments, message):
    model = tmp_path / "model"  # never read: usage is checked first
    places = {"FASTA": chloro["fasta"], "BED": chloro["bed"], "GENOME": chloro["genome"], "MODEL": model}
    args = [*(places.get(a, a) for a in command), *(places.get(a, a) for a in arguments)]
    if command[0] == "embed":
        args += ["-o", tmp_path / "out.tsv"]
    result = obte(*args)
    assert result.exit_code == 2, result.output
    assert message in _said(result), result.stderr


def test_protein_is_not_a_molecule_type_of_regions(chloro):
    result = obte("score", *_regions(chloro), "--molecule-type", "protein")
    assert result.exit_code == 2, result.output
    assert "--regions reads nucleic acids from the genome, not protein" in _said(result)


def test_rna_molecule_type_is_kept(chloro):
    result = obte("score", *_regions(chloro, chloro["one"]), "--molecule-type", "RNA")
    assert result.exit_code == 0, result.output
    assert [line.split("\t")[:2] for line in result.stdout.splitlines()[1:]] == [[chloro["expected"][2][0], "RNA"]]


@pytest.mark.parametrize(
    ("line", "fragments"),
    [
        ("chrX\t0\t10\tx\n", ["line 3: no sequence 'chrX' in", f"(it has {CHROM}, gap)"]),
        (f"{CHROM}\t154400\t154500\tx\n", ["line 3: end 154500 is beyond the end of NC_000932.1 (154,478 bp"]),
        (f"{CHROM}\t20\t10\tx\n", ["line 3: start 20 is after end 10"]),
        (f"{CHROM}\t20\n", ["line 3: not a BED line"]),
    ],
)
def test_bed_mistakes_are_one_error_line_naming_file_and_line(chloro, tmp_path, line, fragments):
    bed = tmp_path / "bad.bed"
    bed.write_text(f"# regions\n{CHROM}\t0\t10\tfine\n{line}")
    result = obte("score", *_regions(chloro, bed))
    one_error_line(result, f"{bed}: line 3: ", *fragments)
    assert result.stdout == ""


def test_a_plain_gzip_genome_is_an_error_saying_to_bgzip_it(chloro, tmp_path):
    packed = tmp_path / "chloroplast.fa.gz"
    packed.write_bytes(gzip.compress(chloro["genome"].read_bytes()))
    result = obte("score", "--regions", chloro["bed"], "--genome", packed)
    one_error_line(result, f"{packed}: compressed with gzip", "compress it with bgzip")


def test_a_genome_in_an_unwritable_directory_is_indexed_in_the_cache_and_the_log_says_so(chloro, tmp_path):
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    genome = shelf / "chloroplast.fa"
    genome.write_bytes(chloro["genome"].read_bytes())
    prefix = unwritable_directory(shelf)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    regions = ["--regions", str(chloro["one"]), "--genome", str(genome)]
    try:
        run = subprocess.run(
            [*prefix, sys.executable, "-m", "obte_cli", "embed", *regions, "-o", "-"],
            capture_output=True,
            text=True,
            env=env,
        )
    finally:
        shelf.chmod(0o755)
    assert run.returncode == 0, run.stderr
    cache = next((tmp_path / "cache" / "obte" / "faidx").glob("*/chloroplast.fa.fai")).parent
    assert f"{genome}: its directory is not writable: building its index in {cache}" in run.stderr
    assert sorted(p.name for p in shelf.iterdir()) == ["chloroplast.fa"]
    assert run.stdout == obte("embed", chloro["one.fa"], "-o", "-").stdout
    again = obte("embed", *regions, "-o", "-")  # as root the directory is writable again: the cache is not looked at
    assert again.exit_code == 0 and again.stdout == run.stdout


def test_a_progress_bar_counts_the_regions_not_the_genomes_records(chloro):
    from obte_cli.commands.common import count_records, fasta_or_regions

    inputs = fasta_or_regions(None, str(chloro["bed"]), str(chloro["genome"]))
    assert list(inputs) == [str(chloro["bed"]), str(chloro["genome"])]  # what the output-is-not-an-input checks see
    assert count_records(inputs) == 5 and count_records([str(chloro["fasta"])]) == 5
    assert count_records(fasta_or_regions(None, str(chloro["one"]), str(chloro["genome"]))) == 1  # the genome has 2


def test_options_before_the_first_fasta_reach_the_default_embed_subcommand(chloro):
    """`obte embed -m MODEL x.fa` (the group used to read `-m` as its own option and refuse it)."""
    from obte_cli.engine.core.resources import default_backbone_dir

    first = obte("embed", "-m", default_backbone_dir(), "--pool", "max", chloro["one.fa"], "-o", "-")
    assert first.exit_code == 0, first.output
    assert first.stdout == obte("embed", chloro["one.fa"], "--pool", "max", "-o", "-").stdout
    group_help = obte("embed", "-h").stdout  # still the group's own help, not the subcommand's
    assert "probe-joint" in group_help and "--pool" not in group_help

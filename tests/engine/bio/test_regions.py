"""Genomic regions (obte_cli.engine.bio.regions): BED intervals read from an indexed genome with pyfaidx.

The genome is the real *A. thaliana* chloroplast genome NC_000932 (tests/data/genbank, Biopython's test file)
written as FASTA, and the BED holds its genes on both strands; every region is checked against Biopython's
own extraction of the gene feature (the slice, reverse-complemented on the minus strand)."""

from __future__ import annotations

import gzip
import lzma
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DATA, unwritable_directory

from obte_cli.engine.bio.regions import GenomeRegions, index_genome, parse_bed, reverse_complement
from obte_cli.engine.core.errors import InputError

GENBANK = DATA / "genbank" / "NC_000932.gb.gz"
CHROM = "NC_000932.1"
LENGTH = 154478


def chloroplast():
    """(Biopython record of NC_000932, its gene features with one contiguous location each)."""
    from Bio import SeqIO
    from Bio.SeqFeature import CompoundLocation

    with gzip.open(GENBANK, "rt") as handle:
        record = SeqIO.read(handle, "genbank")
    genes = [f for f in record.features if f.type == "gene" and not isinstance(f.location, CompoundLocation)]
    return record, genes


def gene_name(feature) -> str:
    return feature.qualifiers.get("gene", feature.qualifiers.get("locus_tag"))[0]


def write_genome(path: Path, record, width: int = 70, extra: str = "") -> Path:
    from obte_cli.engine.bio.seqio import write_fasta

    with open(path, "w") as handle:
        write_fasta([(f"{record.id} {record.description}", str(record.seq))], handle, width)
        handle.write(extra)
    return path


def write_bed(path: Path, genes, header: str = 'track name=genes description="NC_000932 genes"\n') -> Path:
    lines = [
        f"{CHROM}\t{int(f.location.start)}\t{int(f.location.end)}\t{gene_name(f)}\t0\t"
        f"{'+' if f.location.strand == 1 else '-'}\n"
        for f in genes
    ]
    path.write_text(header + "".join(lines))
    return path


@pytest.fixture(scope="module")
def chloro():
    return chloroplast()


@pytest.fixture
def genome(tmp_path, chloro):
    """The chloroplast genome as FASTA (70-letter lines), alone in its directory."""
    (tmp_path / "genome").mkdir()
    return write_genome(tmp_path / "genome" / "NC_000932.fa", chloro[0])


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """No test writes to the real ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_every_gene_is_the_genome_slice_and_minus_strand_genes_the_reverse_complement(tmp_path, chloro, genome):
    record, genes = chloro
    bed = write_bed(tmp_path / "genes.bed", genes)
    regions = list(GenomeRegions(bed, genome))
    strands = [f.location.strand for f in genes]
    assert strands.count(1) > 20 and strands.count(-1) > 20  # both strands, many genes
    assert [r.id for r in regions] == [gene_name(f) for f in genes]  # the name column, in BED order
    assert [r.number for r in regions] == list(range(1, len(genes) + 1))
    for region, feature in zip(regions, genes):
        start, end = int(feature.location.start), int(feature.location.end)
        assert region.sequence == str(feature.extract(record.seq))  # Biopython's own extraction
        piece = record.seq[start:end]
        assert region.sequence == str(piece if feature.location.strand == 1 else piece.reverse_complement())
        strand = "+" if feature.location.strand == 1 else "-"
        assert region.description == f"{region.id} {CHROM}:{start}-{end}({strand})"


def test_records_without_a_name_are_called_chrom_start_end(tmp_path, chloro, genome):
    seq = str(chloro[0].seq)
    bed = tmp_path / "plain.bed"
    bed.write_text(
        f"{CHROM}\t0\t10\n"  # BED3: the first ten bases
        f"{CHROM}\t100\t150\t.\t0\t+\n"  # '.' is no name
        f"{CHROM}\t100\t150\t.\t0\t-\n"  # the other strand of the same interval: a different id
        f"{CHROM}\t{LENGTH - 5}\t{LENGTH}\n"  # the last five bases
    )
    regions = list(GenomeRegions(bed, genome))
    assert [r.id for r in regions] == [
        f"{CHROM}:0-10",
        f"{CHROM}:100-150",
        f"{CHROM}:100-150(-)",
        f"{CHROM}:{LENGTH - 5}-{LENGTH}",
    ]
    assert [r.sequence for r in regions] == [seq[:10], seq[100:150], reverse_complement(seq[100:150]), seq[-5:]]


def test_header_track_browser_comment_and_blank_lines_are_skipped_and_any_layout_read(tmp_path, chloro, genome):
    seq = str(chloro[0].seq)
    bed = tmp_path / "layout.bed"
    bed.write_bytes(
        b"browser position NC_000932.1:1-500\r\n# a comment\r\ntrack name=x\r\n\r\n"
        + f"{CHROM}\t5\t25\tfirst name with spaces\r\n".encode()  # CRLF; tabs keep a name's spaces
        + f"{CHROM}  30 40   second\n".encode()  # a line without tabs is split on whitespace
    )
    regions = list(GenomeRegions(bed, genome))
    assert [(r.id, r.sequence) for r in regions] == [("first name with spaces", seq[5:25]), ("second", seq[30:40])]
    gz = tmp_path / "layout.bed.gz"
    gz.write_bytes(gzip.compress(bed.read_bytes()))  # a compressed BED is read as the FASTA readers read it
    assert list(GenomeRegions(gz, genome)) == regions


def test_the_index_is_built_beside_the_genome_once_and_rebuilt_when_stale(tmp_path, chloro, genome):
    bed = tmp_path / "one.bed"
    bed.write_text(f"{CHROM}\t10\t20\n")
    told = []
    regions = GenomeRegions(bed, genome, on_index=lambda g, index: told.append(index))
    fai = genome.parent / (genome.name + ".fai")
    assert (
        regions.index.fai == fai and regions.index.built and not regions.index.elsewhere and regions.index.gzi is None
    )
    assert told == [regions.index]  # told before the build
    header = f">{CHROM} {chloro[0].description}\n"
    assert fai.read_text() == f"{CHROM}\t{LENGTH}\t{len(header)}\t70\t71\n"  # samtools faidx's five columns
    assert sorted(p.name for p in genome.parent.iterdir()) == [genome.name, fai.name]  # no scratch left behind
    assert regions.lengths() == {CHROM: LENGTH}
    built_at = fai.stat().st_mtime_ns
    again = GenomeRegions(bed, genome, on_index=lambda g, index: told.append(index))
    assert not again.index.built and fai.stat().st_mtime_ns == built_at and len(told) == 1  # reused, silently
    earlier = fai.stat().st_mtime - 60
    os.utime(fai, (earlier, earlier))  # the genome changed after its index was made
    assert GenomeRegions(bed, genome).index.built
    later = time.time() + 3600
    os.utime(genome, (later, later))  # a genome dated ahead (a clock elsewhere): its index is not stale for ever
    assert GenomeRegions(bed, genome).index.built
    assert not GenomeRegions(bed, genome).index.built


def test_several_sequences_and_line_widths(tmp_path, chloro):
    """A genome of two sequences, 60-letter lines, soft-masked (lower-case) and N letters as written."""
    from Bio.Seq import Seq

    seq = str(chloro[0].seq)
    second = seq[1000:1100].lower() + "N" * 7 + seq[2000:2093]
    genome = write_genome(
        tmp_path / "two.fa", chloro[0], width=60, extra=f">chrN other\n{second[:60]}\n{second[60:]}\n"
    )
    bed = tmp_path / "two.bed"
    bed.write_text(f"chrN\t95\t110\tmasked\t0\t-\n{CHROM}\t59\t61\tedge\n")
    regions = list(GenomeRegions(bed, genome))
    assert [r.sequence for r in regions] == [str(Seq(second[95:110]).reverse_complement()), seq[59:61]]
    assert "NNNNNNN" in regions[0].sequence and regions[0].sequence[-5:].islower()  # case kept


def test_reverse_complement_of_iupac_codes_keeps_case():
    from Bio.Seq import reverse_complement as biopython

    letters = "ACGTNRYKMSWBDHVacgtnrykmswbdhv"
    assert reverse_complement(letters) == biopython(letters)
    assert reverse_complement("AUGu") == "aCAT"  # U pairs with A
    assert reverse_complement("AX*") == "*XT"  # other letters stay, for --on-unknown to see


def test_a_bgzip_genome_is_read_through_its_gzi_index(tmp_path, chloro, genome):
    from Bio import bgzf

    _, genes = chloro
    bed = write_bed(tmp_path / "genes.bed", genes)
    packed = tmp_path / "packed" / "NC_000932.fa.gz"
    packed.parent.mkdir()
    with bgzf.BgzfWriter(str(packed), "wb") as handle:  # several 64 KiB blocks: regions cross block boundaries
        handle.write(genome.read_bytes())
    regions = GenomeRegions(bed, packed)
    assert regions.index.gzi == packed.parent / "NC_000932.fa.gz.gzi" and regions.index.gzi.is_file()
    assert list(regions) == list(GenomeRegions(bed, genome))


@pytest.mark.parametrize(
    ("compress", "suffix", "kind"),
    [(gzip.compress, ".fa.gz", "gzip"), (lzma.compress, ".fa.xz", "xz"), (gzip.compress, ".fa", "gzip")],
)
def test_a_genome_compressed_otherwise_than_with_bgzip_is_an_error_saying_what(
    tmp_path, genome, compress, suffix, kind
):
    packed = tmp_path / f"g{suffix}"
    packed.write_bytes(compress(genome.read_bytes()))
    bed = tmp_path / "one.bed"
    bed.write_text(f"{CHROM}\t0\t10\n")
    with pytest.raises(
        InputError, match=rf"^{packed}: compressed with {kind}.*decompress it, or compress it with bgzip"
    ):
        GenomeRegions(bed, packed)
    assert not (tmp_path / f"g{suffix}.fai").exists()


def _bed_error(tmp_path, genome, text: str) -> str:
    bed = tmp_path / "bad.bed"
    bed.write_text(text)
    with pytest.raises(InputError) as info:
        GenomeRegions(bed, genome)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("chr2\t0\t10\tx\n", rf"no sequence 'chr2' in .*NC_000932.fa \(it has {CHROM}\)"),
        (f"{CHROM}\t154400\t{LENGTH + 1}\tx\n", rf"end {LENGTH + 1} is beyond the end of {CHROM} \(154,478 bp"),
        (f"{CHROM}\t500\t400\tx\n", r"start 500 is after end 400"),
        (f"{CHROM}\t500\t500\tx\n", r"is empty \(start = end\)"),
        (f"{CHROM}\t500\n", r"not a BED line \(chrom, start, end, tab-separated\)"),
        (f"{CHROM}\t-5\t10\n", r"start '-5' is not a whole number ≥ 0"),
        (f"{CHROM}\t1.5e3\t2000\n", r"start '1.5e3' is not a whole number"),
        (f"{CHROM}\t0\tten\n", r"end 'ten' is not a whole number"),
        (f"{CHROM}\t0\t10\tx\t0\tW\n", r"strand 'W' is not '\+', '-' or '\.'"),
    ],
)
def test_bed_mistakes_name_the_file_and_line(tmp_path, genome, line, message):
    good = f"{CHROM}\t0\t10\tfine\n"
    text = f"track name=t\n{good}# comment\n{good}{line}{good}"
    found = _bed_error(tmp_path, genome, text)
    assert found.startswith(f"{tmp_path / 'bad.bed'}: line 5: ")
    assert re.search(message, found), found


def test_the_whole_bed_is_checked_before_the_first_region_is_read(tmp_path, genome):
    """A mistake on the last line stops the run before any region is read (no partial output)."""
    lines = "".join(f"{CHROM}\t{i}\t{i + 10}\n" for i in range(0, 5000, 10)) + "chrM\t0\t10\n"
    assert _bed_error(tmp_path, genome, lines).startswith(f"{tmp_path / 'bad.bed'}: line 501: no sequence 'chrM'")


def test_an_empty_bed_and_a_missing_genome_are_errors(tmp_path, genome):
    assert (
        _bed_error(tmp_path, genome, "track name=empty\n# nothing\n")
        == f"{tmp_path / 'bad.bed'}: no intervals (empty BED file?)"
    )
    bed = tmp_path / "bad.bed"
    with pytest.raises(InputError, match=r"missing.fa: no such file"):
        GenomeRegions(bed, tmp_path / "missing.fa")
    with pytest.raises(InputError, match=r"not a regular file"):
        GenomeRegions(bed, tmp_path)


def test_genomes_pyfaidx_cannot_index_are_errors_naming_them(tmp_path, chloro):
    seq = str(chloro[0].seq)
    ragged = tmp_path / "ragged.fa"
    ragged.write_text(f">a\n{seq[:60]}\n{seq[60:100]}\n{seq[100:160]}\n")  # a short line inside the record
    with pytest.raises(InputError, match=rf"^{ragged}: cannot be indexed: .*[Ii]nconsistent"):
        index_genome(ragged)
    twice = tmp_path / "twice.fa"
    twice.write_text(f">a\n{seq[:60]}\n>a second\n{seq[60:120]}\n")
    bed = tmp_path / "a.bed"
    bed.write_text("a\t0\t10\n")
    with pytest.raises(InputError, match=rf"^{twice}: the sequence name \"a\" occurs twice"):
        GenomeRegions(bed, twice)


def test_parse_bed_reads_the_intervals_as_written(tmp_path):
    """parse_bed checks form only (no genome): the intervals as written, 0-based half-open."""
    bed = tmp_path / "r.bed"
    bed.write_text("chr1\t0\t1\ta\t960\t+\textra\tcolumns\nchr1\t5\t9\n")
    regions = list(parse_bed(bed))
    assert [(r.chrom, r.start, r.end, r.strand, r.name, r.line, r.id) for r in regions] == [
        ("chr1", 0, 1, "+", "a", 1, "a"),
        ("chr1", 5, 9, ".", "", 2, "chr1:5-9"),
    ]


# ---- a genome whose directory cannot be written ------------------------------------------------------


SCRIPT = """
import sys
from obte_cli.engine.bio.regions import GenomeRegions
for _ in range(2):
    regions = GenomeRegions(sys.argv[1], sys.argv[2], on_index=lambda g, i: print("index", i.fai, i.built, i.elsewhere))
    for record in regions:
        print(record.id, record.sequence)
"""


def test_a_genome_in_an_unwritable_directory_is_indexed_in_the_cache(tmp_path, chloro):
    record, genes = chloro
    shelf = tmp_path / "readonly"
    shelf.mkdir()
    genome = write_genome(shelf / "NC_000932.fa", record)
    bed = write_bed(tmp_path / "genes.bed", genes[:6])
    prefix = unwritable_directory(shelf)
    try:
        env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
        run = subprocess.run(
            [*prefix, sys.executable, "-c", SCRIPT, str(bed), str(genome)], capture_output=True, text=True, env=env
        )
    finally:
        shelf.chmod(0o755)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    cached = next((tmp_path / "cache" / "obte" / "faidx").glob("*/NC_000932.fa.fai"))
    assert lines[0] == f"index {cached} True True"  # built in the cache, and the caller told so
    assert lines[7] == f"index {cached} False True"  # the second time: found there
    expected = [f"{gene_name(f)} {f.extract(record.seq)}" for f in genes[:6]]
    assert lines[1:7] == expected and lines[8:] == expected
    assert sorted(p.name for p in shelf.iterdir()) == ["NC_000932.fa"]  # nothing written beside the genome

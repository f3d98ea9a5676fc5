"""`obte prep` and the GenBank reader, on real records."""

import gzip
import json
import shutil

import pytest
from conftest import DATA, SHARED_DATA, obte
from hypothesis import given, settings
from hypothesis import strategies as st

from obte_cli.engine.bio.genbank import read_genbank
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.pretraining.prep import (
    PrepSettings,
    clean_record,
    read_shard,
    select_inputs,
)


def test_reader_agrees_with_biopython_on_real_genbank_files():
    from Bio import SeqIO

    folder = SHARED_DATA / "biopython-tests"
    if not folder.is_dir():
        pytest.skip("shared Biopython test files are not available")
    files = [folder / n for n in ("NC_000932.gb", "NC_005816.gb", "arab1.gb", "cor6_6.gb", "gbvrl1_start.seq")]
    files.append(DATA / "chloroplast_rna.gb")
    for path in files:
        ours = [(r.id, r.molecule_type, r.sequence) for r in read_genbank(path)]
        theirs = [(r.name, r.annotations.get("molecule_type", ""), str(r.seq)) for r in SeqIO.parse(path, "genbank")]
        assert len(ours) == len(theirs), path
        for (oid, omol, oseq), (tid, tmol, tseq) in zip(ours, theirs):
            assert oid == tid and oseq.upper() == tseq.upper()
            assert omol == tmol or (omol == "" and tmol in ("", None)), (path, oid, omol, tmol)


def _genbank_text(records):
    out = []
    for name, mol, seq in records:
        out.append(
            f"LOCUS       {name:<16}{len(seq):>11} bp    {mol:<8}linear   SYN 01-JAN-2020\nDEFINITION  test.\nORIGIN\n"
        )
        for i in range(0, len(seq), 60):
            out.append(
                f"{i + 1:>9} " + " ".join(seq[j : j + 10].lower() for j in range(i, min(i + 60, len(seq)), 10)) + "\n"
            )
        out.append("//\n")
    return "".join(out)


record = st.tuples(
    st.from_regex(r"[A-Z]{2}[0-9]{6}", fullmatch=True),
    st.sampled_from(["DNA", "mRNA", "tRNA", "rRNA", "cRNA", "ss-RNA", "RNA"]),
    st.text(alphabet="ACGT", min_size=1, max_size=200),
)


@settings(max_examples=50, deadline=None)
@given(st.lists(record, min_size=1, max_size=5))
def test_genbank_round_trip(tmp_path_factory, records):
    path = tmp_path_factory.mktemp("gb") / "x.gb"
    path.write_text(_genbank_text(records))
    assert [(r.id, r.molecule_type, r.sequence.upper()) for r in read_genbank(path)] == records


@pytest.mark.parametrize(
    "text, message",
    [
        (_genbank_text([("AB000001", "DNA", "ACGT")])[:-3], "record 1 ('AB000001') is truncated"),
        (
            _genbank_text([("AB000001", "DNA", "ACGT")]).replace("4 bp", "5 bp"),
            "record 1 ('AB000001'): sequence has 4 letters, LOCUS says 5",
        ),
        ("LOCUS       AB000001  4 units\n//\n", "record 1: malformed LOCUS line"),
        ("just text\n", "no GenBank records"),
        (
            _genbank_text([("AB000001", "DNA", "ACGT")]) * 2 + "LOCUS       AB000003   4 bp DNA\nORIGIN\n//\n",
            "record 3 ('AB000003'): sequence has 0 letters",
        ),
    ],
)
def test_genbank_errors_name_file_and_record(tmp_path, text, message):
    path = tmp_path / "bad.gb"
    path.write_text(text)
    with pytest.raises(InputError, match="bad.gb: ") as error:
        list(read_genbank(path))
    assert message in str(error.value)


def test_clean_record_applies_the_papers_filters():
    s = PrepSettings(min_length=3, max_length=10)
    assert clean_record("tRNA", "gcuaGC", s) == ("tRNA", "GCTAGC")
    assert clean_record("DNA", "ACNGT", s) == "nonstandard_nucleic_acid"
    assert clean_record("protein", "MKXV", s) == "nonstandard_protein"
    assert clean_record("", "ACGT", s) == "unknown_molecule_type"
    assert clean_record("DNA", "AC", s) == "too_short"
    assert clean_record("DNA", "A" * 11, s) == "too_long"


def _inputs(tmp_path):
    """Real fixtures, one gzip-compressed, plus the shared UniProt FASTA when present."""
    gz = tmp_path / "ligands.fa.gz"
    with gzip.open(gz, "wb") as handle:
        handle.write((DATA / "pronab_ligands.fa").read_bytes())
    return [DATA / "chloroplast_rna.gb", gz]


def test_prep_counts_molecule_types_and_drops(tmp_path):
    out = tmp_path / "corpus"
    result = obte("prep", *_inputs(tmp_path), "-o", out, "--dedup")
    assert result.exit_code == 0, result.output
    table = dict(line.split("\t", 1) for line in result.stdout.strip().splitlines()[1:])
    assert {k: v.split("\t")[0] for k, v in table.items()} == {"tRNA": "3", "rRNA": "2", "RNA": "3", "DNA": "2"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dropped"] == {"duplicate": 1, "nonstandard_nucleic_acid": 1, "unknown_molecule_type": 1}
    assert manifest["records_read"] == 7 + 6 and manifest["records_kept"] == 10
    assert manifest["kept_by_type"]["rRNA"]["residues"] == 1491 + 103
    assert all(len(entry["sha256"]) == 64 for entry in manifest["inputs"])
    lines = [line for shard in (out / "shards").glob("*.tsv.gz") for line in read_shard(shard)]
    assert ("RNA", "GTTGCAAGGGATTGAGCCCAGTAATGGGAT") in lines  # U stored as T, the type says RNA
    assert all(set(seq) <= set("ACGT") for mol, seq in lines)


def test_rerun_skips_finished_shards(tmp_path):
    out = tmp_path / "corpus"
    inputs = _inputs(tmp_path)
    assert obte("prep", *inputs, "-o", out).exit_code == 0
    shards = sorted((out / "shards").iterdir())
    stamps = [p.stat().st_mtime_ns for p in shards]
    again = obte("prep", *inputs, "-o", out)
    assert again.exit_code == 0 and again.stderr.count("already done") == 2
    assert [p.stat().st_mtime_ns for p in sorted((out / "shards").iterdir())] == stamps
    changed = obte("prep", *inputs, "-o", out, "--min-length", "20")  # other settings: redone
    assert changed.exit_code == 0 and "already done" not in changed.stderr


def test_shards_split_the_inputs_disjointly(tmp_path):
    inputs = _inputs(tmp_path) + [tmp_path / "more.fa"]
    shutil.copy(DATA / "pronab_ligands.fa", inputs[-1])
    whole, part0, part1 = tmp_path / "whole", tmp_path / "p0", tmp_path / "p1"
    assert obte("prep", *inputs, "-o", whole).exit_code == 0
    assert obte("prep", *inputs, "-o", part0, "--shard", "0/2", "--workers", "2").exit_code == 0
    assert obte("prep", *inputs, "-o", part1, "--shard", "1/2").exit_code == 0
    names = {d: {p.name for p in (d / "shards").glob("*.tsv.gz")} for d in (whole, part0, part1)}
    assert names[part0] and names[part1] and not names[part0] & names[part1]
    assert names[part0] | names[part1] == names[whole]
    m0 = json.loads((part0 / "manifest-0-of-2.json").read_text())
    m1 = json.loads((part1 / "manifest-1-of-2.json").read_text())
    total = json.loads((whole / "manifest.json").read_text())
    assert m0["records_kept"] + m1["records_kept"] == total["records_kept"]
    assert select_inputs(inputs, 1, 2) == sorted(inputs, key=str)[1::2]


def test_corrupt_gzip_fails_cleanly_and_leaves_no_partial_shard(tmp_path):
    good = gzip.compress((DATA / "chloroplast_rna.gb").read_bytes())
    bad = tmp_path / "broken.gb.gz"
    bad.write_bytes(good[: len(good) // 2])
    out = tmp_path / "corpus"
    result = obte("prep", bad, "-o", out)
    assert result.exit_code == 1
    line = result.stderr.strip().splitlines()[-1]
    assert (
        line.startswith("error: ") and "broken.gb.gz" in line and "record" in line and "Traceback" not in result.stderr
    )
    assert list((out / "shards").iterdir()) == []


def test_prep_usage_errors(tmp_path):
    assert (
        "--shard must look like I/N" in obte("prep", DATA / "chloroplast_rna.gb", "-o", tmp_path, "--shard", "x").stderr
    )
    assert "0 ≤ I < N" in obte("prep", DATA / "chloroplast_rna.gb", "-o", tmp_path, "--shard", "2/2").stderr
    assert "no such file" in obte("prep", tmp_path / "nope.fa", "-o", tmp_path).stderr


def test_bench_prep_reports_every_method(tmp_path):
    result = obte("bench", "prep", DATA / "chloroplast_rna.gb", "--workers", "2", "--repeats", "1", "-o", tmp_path)
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert rows[0][:3] == ["method", "workers", "megabytes"]
    assert [(r[0], r[1]) for r in rows[1:]] == [("biopython SeqIO.parse", "1"), ("obte prep", "1"), ("obte prep", "2")]
    assert all(float(r[4]) > 0 for r in rows[1:])
    assert (tmp_path / "bench-prep.png").is_file() and (tmp_path / "bench-prep.tsv").is_file()

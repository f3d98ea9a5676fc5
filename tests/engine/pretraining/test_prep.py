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
    """Biopython's own test files (tests/data/genbank, gzip-compressed; arab1.gb too when ../shared has it):
    a chloroplast genome, a plasmid, several mRNA and gene records, the start of a release division file."""
    from Bio import SeqIO

    files = sorted((DATA / "genbank").iterdir()) + [DATA / "chloroplast_rna.gb"]
    if (SHARED_DATA / "biopython-tests" / "arab1.gb").is_file():
        files.append(SHARED_DATA / "biopython-tests" / "arab1.gb")
    for path in files:
        ours = [(r.id, r.molecule_type, r.sequence) for r in read_genbank(path)]
        with gzip.open(path, "rt") if path.suffix == ".gz" else open(path) as handle:
            theirs = [
                (r.name, r.annotations.get("molecule_type", ""), str(r.seq)) for r in SeqIO.parse(handle, "genbank")
            ]
        assert len(ours) == len(theirs) > 0, path
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
    for shard, message in (("x", "'--shard': must look like I/N"), ("2/2", "0 ≤ I < N")):
        result = obte("prep", DATA / "chloroplast_rna.gb", "-o", tmp_path / "out", "--shard", shard)
        assert result.exit_code == 2 and message in result.stderr
    assert not (tmp_path / "out").exists()
    assert "no such file" in obte("prep", tmp_path / "nope.fa", "-o", tmp_path).stderr


def test_bench_prep_reports_every_method(tmp_path):
    result = obte("bench", "prep", DATA / "chloroplast_rna.gb", "--workers", "2", "--repeats", "1", "-o", tmp_path)
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert rows[0][:3] == ["method", "workers", "megabytes"]
    assert [(r[0], r[1]) for r in rows[1:]] == [("biopython SeqIO.parse", "1"), ("obte prep", "1"), ("obte prep", "2")]
    assert all(float(r[4]) > 0 for r in rows[1:])
    assert (tmp_path / "bench-prep.png").is_file() and (tmp_path / "bench-prep.tsv").is_file()


# ---- one bad record does not stop a run (#20 item 10) -------------------------------------------------
GOOD = _genbank_text([("AB000001", "DNA", "ACGTACGT")])
BAD_GENBANK = [  # (record text, the reason it is dropped under)
    ("LOCUS       AB000002   0 bp    DNA     linear   SYN 01-JAN-2020\nORIGIN\n//\n", "empty_sequence"),
    ("LOCUS       AB000003   4 bp    DNA     linear   SYN 01-JAN-2020\nORIGIN\n//\n", "empty_sequence"),
    ("LOCUS       AB000004   5 bp    DNA\nORIGIN\n        1 acgt\n//\n", "length_mismatch"),
    ("LOCUS       AB000005 DNA linear\nORIGIN\n        1 acgt\n//\n", "malformed_locus"),
    ("LOCUS       AB000006   4 bp    DNA\nCONTIG      join(AB000001.1:1..4)\n//\n", "no_sequence"),
    ("ORIGIN\n", "stray_line"),
    ("//\n", "stray_line"),
    ("LOCUS       AB000007   4 bp    DNA\nORIGIN\n        1 acgt\n", "truncated_record"),  # next LOCUS before //
]


def test_malformed_genbank_records_are_dropped_and_counted_each_under_its_reason(tmp_path):
    path = tmp_path / "mixed.gb"
    path.write_text(GOOD + "".join(text for text, _ in BAD_GENBANK) + GOOD.replace("AB000001", "AB000009"))
    out = tmp_path / "corpus"
    result = obte("prep", path, "-o", out)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    expected = {}
    for _, reason in BAD_GENBANK:
        expected[reason] = expected.get(reason, 0) + 1
    assert manifest["dropped"] == expected
    assert manifest["records_kept"] == 2 and manifest["records_read"] == 2 + len(BAD_GENBANK)
    stats = json.loads(next((out / "shards").glob("*.json")).read_text())
    assert stats["examples"]["length_mismatch"] == (
        f"{path}: record 4 ('AB000004'): sequence has 4 letters, LOCUS says 5"
    )
    assert "length_mismatch, first: " in result.stderr  # and the log shows where to look


def test_a_truncated_last_record_and_binary_data_inside_records_are_drops(tmp_path):
    path = tmp_path / "tail.gb"
    binary = GOOD.replace("AB000001", "AB000002").replace("ORIGIN", "ORIGIN\n\x00\xff\xfe junk").encode("latin-1")
    path.write_bytes(GOOD.encode() + binary + b"\x00\x01\x02 between records\n" + GOOD[:-10].encode())
    result = obte("prep", path, "-o", tmp_path / "corpus")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "corpus" / "manifest.json").read_text())
    assert manifest["dropped"] == {"binary_data": 2, "truncated_record": 1} and manifest["records_kept"] == 1


def test_empty_and_malformed_fasta_records_are_dropped_and_counted(tmp_path):
    path = tmp_path / "seqs.fa"
    path.write_bytes(b">a\n\n>b\nMKVLA\n>\nACGT\n>c\nMK\xffVL\n>d\nACGT\n")
    result = obte("prep", path, "-o", tmp_path / "corpus")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "corpus" / "manifest.json").read_text())
    assert manifest["dropped"] == {"binary_data": 1, "empty_header": 1, "empty_sequence": 1}
    assert manifest["kept_by_type"] == {"DNA": {"records": 1, "residues": 4}, "protein": {"records": 1, "residues": 5}}


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("data.bin", b"\xff\xfe\x00garbage\x80\x81", "data.bin: binary data near the start of the file"),
        ("notes.txt", b"hello\n", "notes.txt: neither FASTA nor GenBank"),
        ("x.fa", b"\x89PNG\r\n\x1a\n\x00\x00", "x.fa: binary data near the start of the file"),
        ("x.gb", b"\x00\x01LOCUS", "x.gb: binary data near the start of the file, not a GenBank file"),
        ("x.gb", b"just text\n", "x.gb: no GenBank records"),
        ("x.fa", b"", "x.fa: no FASTA records"),
    ],
)
def test_a_file_that_is_not_sequence_data_is_one_line_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    result = obte("prep", path, "-o", tmp_path / "corpus")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.startswith(f"error: {tmp_path}/") and message in result.stderr
    assert result.stderr.strip().count("\n") == 0


@pytest.mark.parametrize(
    "given, message",
    [("-", "prep reads files, not standard input ('-')"), ("adir", "adir: is a directory, expected a file")],
)
def test_standard_input_and_directories_are_refused_as_what_they_are(tmp_path, monkeypatch, given, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    result = obte("prep", given, "-o", tmp_path / "corpus", input=">a\nMKV\n")
    assert result.exit_code == 1 and result.stderr.startswith(f"error: {message}") and result.stderr.count("\n") == 1
    assert not (tmp_path / "corpus").exists()


def test_out_that_is_a_file_is_one_line_error(tmp_path):
    out = tmp_path / "corpus.txt"
    out.write_text("keep me")
    result = obte("prep", DATA / "chloroplast_rna.gb", "-o", out)
    assert result.exit_code == 1 and result.stderr.strip() == (
        f"error: {out}: not a directory (--out names a directory to write files into)"
    )
    assert out.read_text() == "keep me"


# Random files, GenBank-ish and FASTA-ish: every record ends in the shard or in a counted drop; the only
# error is the one-line InputError of a file that is not sequence data at all.
_GENBANK_LINES = st.sampled_from(
    [
        "LOCUS       AB000001   8 bp    DNA     linear   SYN 01-JAN-2020\n",
        "LOCUS       AB000002   4 aa            linear   SYN 01-JAN-2020\n",
        "LOCUS       AB000003 mRNA\n",
        "LOCUS       AB000004   0 bp    RNA\n",
        "DEFINITION  something.\n",
        "FEATURES             Location/Qualifiers\n",
        "ORIGIN\n",
        "        1 acgtacgt\n",
        "        1 mkvl\n",
        "        1 acgnnxyz 12\n",
        "//\n",
        "\n",
        "CONTIG      join(A:1..4)\n",
    ]
)
_FASTA_LINES = st.sampled_from(
    [">a desc\n", ">\n", "> \n", ">b\n", "ACGT\n", "mkvlaw\n", "AC GT\n", "\n", "XB*-\n", "ACGU\n", "\r\n"]
)
_BINARY = st.binary(min_size=1, max_size=12).map(lambda b: b + b"\n")


def _prep_outcome(tmp_path, name: str, content: bytes):
    from obte_cli.engine.pretraining.prep import prep_file

    folder = tmp_path / "shards"
    folder.mkdir(exist_ok=True)
    path = tmp_path / name
    path.write_bytes(content)
    try:
        stats = prep_file(path, folder, PrepSettings())
    except InputError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return None
    assert stats.records_read == stats.records_kept + sum(stats.dropped.values())
    assert set(stats.examples) <= set(stats.dropped)
    return stats


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["x.gb", "x.fa", "x.dat", "x.fa.gz"]))
def test_random_bytes_are_a_one_line_error_or_counted_records(tmp_path_factory, content, name):
    _prep_outcome(tmp_path_factory.mktemp("prep"), name, content)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_GENBANK_LINES, _BINARY.map(lambda b: b.decode("latin-1"))), max_size=25))
def test_genbank_ish_files_after_a_good_record_never_stop_the_run(tmp_path_factory, lines):
    content = (GOOD + "".join(lines)).encode("latin-1")
    stats = _prep_outcome(tmp_path_factory.mktemp("prep"), "x.gb", content)
    assert stats is not None and stats.records_kept >= 1  # sequence data: never an error


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_FASTA_LINES, _BINARY.map(lambda b: b.decode("latin-1"))), max_size=25))
def test_fasta_ish_files_after_a_good_record_never_stop_the_run(tmp_path_factory, lines):
    content = (">first\nACGTACGT\n" + "".join(lines)).encode("latin-1")
    stats = _prep_outcome(tmp_path_factory.mktemp("prep"), "x.fa", content)
    assert stats is not None and stats.records_read >= 1

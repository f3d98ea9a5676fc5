import gzip
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from obte_cli.engine.bio.seqio import read_fasta, write_fasta
from obte_cli.engine.core.errors import InputError


def test_reads_real_protein_file(protein_fasta):
    records = list(read_fasta(protein_fasta))
    assert len(records) == 305
    assert records[0].id == "cog-myva.2430"
    assert records[0].sequence.startswith("KKGSFLVLGN")
    assert records[-1].id == "mmseqs2-db.13868"
    assert [r.number for r in records[:3]] == [1, 2, 3]


def test_gzip_is_detected_by_content_not_name(tmp_path, protein_fasta):
    packed = tmp_path / "seqs.txt"  # no .gz suffix on purpose
    packed.write_bytes(gzip.compress(protein_fasta.read_bytes()))
    assert [r.sequence for r in read_fasta(packed)] == [r.sequence for r in read_fasta(protein_fasta)]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "no FASTA records"),
        (b"ACGT\n>x\nACGT\n", "before the first '>' header"),
        (b">a\nACGT\n>b\n>c\nAC\n", "record 2 \\('b'\\) has no sequence"),
        (b">\nACGT\n", "record 1 has an empty header"),
        (b">a\nAC\x00\xffGT\n", "binary data"),
    ],
)
def test_malformed_input_gives_one_line_error(tmp_path, content, message):
    path = tmp_path / "bad.fa"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        list(read_fasta(path))
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_gzip(tmp_path, protein_fasta):
    path = tmp_path / "cut.fa.gz"
    path.write_bytes(gzip.compress(protein_fasta.read_bytes())[:5000])
    with pytest.raises(InputError, match="truncated gzip"):
        list(read_fasta(path))


def test_missing_file():
    with pytest.raises(InputError, match="no such file"):
        list(read_fasta("/nonexistent/seqs.fa"))


headers = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=30
).filter(lambda h: h.split() and not h.startswith(">"))
sequences = st.text(alphabet="ACDEFGHIKLMNPQRSTVWYacgtu*-", min_size=1, max_size=200)


@given(st.lists(st.tuples(headers, sequences), min_size=1, max_size=20), st.integers(0, 80))
def test_write_then_read_round_trip(tmp_path_factory, records, width):
    path = tmp_path_factory.mktemp("fa") / "x.fa"
    buffer = io.StringIO()
    write_fasta(iter(records), buffer, width=width)
    path.write_text(buffer.getvalue())
    back = list(read_fasta(path))
    assert [(r.description, r.sequence) for r in back] == [(h.strip(), s) for h, s in records]
    assert [r.id for r in back] == [h.split()[0] for h, _ in records]


def test_xz_is_read_and_a_truncated_xz_is_one_error(tmp_path, protein_fasta):
    import lzma

    path = tmp_path / "seqs.fna.xz"  # the suffix does not matter: the magic bytes do
    path.write_bytes(lzma.compress(protein_fasta.read_bytes()))
    assert [r.sequence for r in read_fasta(path)] == [r.sequence for r in read_fasta(protein_fasta)]
    path.write_bytes(lzma.compress(protein_fasta.read_bytes())[:5000])
    with pytest.raises(InputError, match="truncated xz"):
        list(read_fasta(path))


# ---- malformed records: counted drops for `obte prep`, one-line errors for every other reader ----------
def test_scan_returns_malformed_records_and_read_stops_at_the_first(tmp_path):
    from obte_cli.engine.bio.seqio import FastaRecord, Malformed, scan_fasta

    path = tmp_path / "mixed.fa"
    path.write_bytes(b">a\nACGT\n>b\n>\nMKV\n>c \xff\xfe\nAC\n>d\nAC\x00GT\n>e\nMK\nVL\n")
    items = list(scan_fasta(path))
    assert [(i.reason, i.number) if isinstance(i, Malformed) else (i.id, i.sequence) for i in items] == [
        ("a", "ACGT"),
        ("empty_sequence", 2),
        ("empty_header", 3),
        ("binary_data", 4),
        ("binary_data", 5),
        ("e", "MKVL"),
    ]
    assert all(str(path) in i.message and "\n" not in i.message for i in items if isinstance(i, Malformed))
    assert isinstance(items[-1], FastaRecord) and items[-1].number == 6
    with pytest.raises(InputError, match=r"record 2 \('b'\) has no sequence"):
        list(read_fasta(path))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\xff\xfe\x00\x01binary\n>a\nACGT\n", "binary data near the start of the file"),
        (b">\xff\xfe\nACGT\n", r"x.fa: not UTF-8 text \(byte 0xff at line 1\)"),
        (b"text\n>a\nACGT\n", "comes before the first '>' header"),
        (b"\n\n", "no FASTA records"),
    ],
)
def test_a_file_that_is_not_fasta_is_an_error_even_when_scanning(tmp_path, content, message):
    from obte_cli.engine.bio.seqio import scan_fasta

    path = tmp_path / "x.fa"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        list(scan_fasta(path))


def test_standard_input_can_be_read_once(monkeypatch):
    import sys

    from obte_cli.engine.bio.seqio import stdin_once

    stdin_once(["a.fa", "-", "b.fa"])
    with pytest.raises(InputError, match="more than once"):
        stdin_once(["-", "a.fa", "-"])
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b">a\nACGT\n")))
    assert [r.sequence for r in read_fasta("-")] == ["ACGT"]
    with pytest.raises(InputError, match="<stdin>: already read"):  # the first reader closed it
        list(read_fasta("-"))


def test_a_utf8_byte_order_mark_at_the_start_is_skipped(tmp_path):
    path = tmp_path / "bom.fa"  # as Windows Notepad saves UTF-8
    path.write_bytes(b"\xef\xbb\xbf>p1 first\nMKV\n>p2\nACGT\n")
    assert [(r.id, r.sequence) for r in read_fasta(path)] == [("p1", "MKV"), ("p2", "ACGT")]
    packed = tmp_path / "bom.fa.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    assert [r.id for r in read_fasta(packed)] == ["p1", "p2"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("\n>caf\xe9\nMKV\n".encode("latin-1"), r"x.fa: not UTF-8 text \(byte 0xe9 at line 2\)"),
        (b">a\nMKV\n>b r\xe9sum\xe9\nMKV\n", r"x.fa: record 2 is not UTF-8 text \(byte 0xe9 at line 3\)"),
        (b">a\nMK\xe9V\n", r"x.fa: record 1 is not UTF-8 text \(byte 0xe9 at line 2\)"),
        # real binary data keeps its message, even when its first line would pass for Latin-1 text
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "x.fa: binary data near the start of the file"),
        (b">a\nMK\x00V\n", "x.fa: binary data near record 1"),
    ],
    ids=["latin1-first-header", "latin1-header", "latin1-sequence", "png", "nul"],
)
def test_text_that_is_not_utf8_is_told_apart_from_binary_data(tmp_path, content, message):
    path = tmp_path / "x.fa"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        list(read_fasta(path))
    assert str(path) in str(info.value) and "\n" not in str(info.value)

"""read_table: every way a user's table can fail is one InputError naming the file; good files read alike,
plain or compressed."""

import gzip

import pandas as pd
import pytest

from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.tables import read_table, write_tsv

TABLE = b"protein\tnucleic_acid\tdG\nMKV\tACGT\t-9.5\n"


def test_plain_and_gzip_tables_read_alike(tmp_path):
    (tmp_path / "a.tsv").write_bytes(TABLE)
    (tmp_path / "a.tsv.gz").write_bytes(gzip.compress(TABLE))
    plain, packed = read_table(tmp_path / "a.tsv"), read_table(tmp_path / "a.tsv.gz")
    pd.testing.assert_frame_equal(plain, packed)
    assert plain.to_dict("records") == [{"protein": "MKV", "nucleic_acid": "ACGT", "dG": -9.5}]


def test_csv_kind_reads_commas(tmp_path):
    (tmp_path / "a.csv").write_text("sequence,label\nACGT,1\n")
    assert read_table(tmp_path / "a.csv", "CSV", dtype=str).to_dict("records") == [{"sequence": "ACGT", "label": "1"}]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.tsv", None, "no such file"),
        ("folder", "dir", "is a directory, expected a file"),
        ("cut.tsv.gz", gzip.compress(TABLE)[:20], "corrupt or truncated compressed file"),
        ("fake.tsv.gz", b"not gzip at all\n", "corrupt or truncated compressed file"),
        ("latin1.tsv", b"protein\tnucleic_acid\n\xe9\tACGT\n", "not a readable TSV"),
        ("empty.tsv", b"", "not a readable TSV (No columns to parse from file)"),
        ("ragged.tsv", b"a\tb\n1\t2\n1\t2\t3\t4\n", "not a readable TSV"),
    ],
)
def test_each_failure_is_one_input_error_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        read_table(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_what_write_tsv_writes_read_table_reads_back(tmp_path):
    table = pd.DataFrame({"id": ["a", "b"], "score": [1.5, float("nan")]})
    write_tsv(table, tmp_path / "t.tsv")
    back = read_table(tmp_path / "t.tsv")
    assert back["id"].tolist() == ["a", "b"] and back["score"].iloc[0] == 1.5 and back["score"].isna().iloc[1]

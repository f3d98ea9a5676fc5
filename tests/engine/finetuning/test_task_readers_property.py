"""Property tests of the task readers of `obte finetune classify|residues` (issue #20): a generated GUE-style
CSV or per-residue TSV reads back equal (ids, sequences, labels), and a malformed one either reads
consistently or is one InputError line naming the file — never another exception, never a hang."""

import csv
import io
import math

import pytest
from conftest import read_or_refused, refused_in_one_line
from hypothesis import given, settings
from hypothesis import strategies as st

from obte_cli.engine.core.errors import InputError
from obte_cli.engine.finetuning.tasks import read_residue_split, read_sequence_split

FAST = settings(max_examples=40, deadline=None)
TASKS = ["classification", "regression"]


def read_or_refuse(read, path, task):
    split = read_or_refused(lambda: read(path, "train", task), path)
    if split is None:
        return None
    assert split.ids and len(split.ids) == len(split.sequences) == len(split.labels)
    for sequence, labels in zip(split.sequences, split.labels):
        values = labels if read is read_residue_split else [labels]
        if read is read_residue_split:
            assert len(values) == len(sequence)
        if task == "regression":
            assert all(isinstance(v, float) and math.isfinite(v) for v in values)
        else:
            assert all(isinstance(v, str) and v.strip() for v in values)
    return split


# ---- generated tables ---------------------------------------------------------------------------------
sequences = st.text(alphabet="ACGTUNacgtMKLVWYRHDE", min_size=1, max_size=40)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
classes = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,9}", fullmatch=True)
# CSV ids may hold anything the csv module quotes (commas, quotes, spaces); not line breaks.
csv_ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\x85"),
    min_size=1,
    max_size=20,
).filter(lambda s: s == s.strip())


def csv_text(rows, header) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


@FAST
@given(
    task=st.sampled_from(TASKS),
    with_ids=st.booleans(),
    extra_column=st.booleans(),
    data=st.data(),
)
def test_sequence_csv_round_trip(tmp_path_factory, task, with_ids, extra_column, data):
    n = data.draw(st.integers(1, 12))
    ids = data.draw(st.lists(csv_ids, min_size=n, max_size=n))
    seqs = data.draw(st.lists(sequences, min_size=n, max_size=n))
    labels = data.draw(st.lists(finite if task == "regression" else classes, min_size=n, max_size=n))
    header = (["id"] if with_ids else []) + ["sequence", "label"] + (["note"] if extra_column else [])
    rows = [
        ([i] if with_ids else []) + [s, repr(v) if task == "regression" else v] + (["x, y"] if extra_column else [])
        for i, s, v in zip(ids, seqs, labels)
    ]
    path = tmp_path_factory.mktemp("csv") / "train.csv"
    path.write_text(csv_text(rows, header))
    split = read_or_refuse(read_sequence_split, path, task)
    assert split.ids == (ids if with_ids else [f"train{k + 1}" for k in range(n)])
    assert split.sequences == seqs and split.labels == labels


# TSV fields are written as they are (pandas still reads a leading '"' as a quote: ids do not start with one)
tsv_ids = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_:|.,;/ -]{0,15}", fullmatch=True).filter(lambda s: s == s.strip())


@st.composite
def residue_records(draw, task):
    sequence = draw(sequences)
    n = len(sequence)
    if task == "regression":
        values = draw(st.lists(finite, min_size=n, max_size=n))
        return sequence, values, " ".join(repr(v) for v in values)
    if n == 1 or draw(st.booleans()):  # one character per residue: HHHEEC... (one label alone is one character)
        values = draw(st.lists(st.sampled_from("HECPTGB"), min_size=n, max_size=n))
        return sequence, values, "".join(values)
    values = draw(st.lists(classes, min_size=n, max_size=n))
    return sequence, values, draw(st.sampled_from([" ", "  ", "\t "])).join(values).replace("\t", " ")


@FAST
@given(task=st.sampled_from(TASKS), data=st.data())
def test_residue_tsv_round_trip(tmp_path_factory, task, data):
    records = data.draw(st.lists(st.tuples(tsv_ids, residue_records(task)), min_size=1, max_size=8))
    lines = ["id\tsequence\tlabels"] + [f"{i}\t{s}\t{text}" for i, (s, _, text) in records]
    path = tmp_path_factory.mktemp("tsv") / "train.tsv"
    path.write_text("\n".join(lines) + "\n")
    split = read_or_refuse(read_residue_split, path, task)
    assert split.ids == [i for i, _ in records]
    assert split.sequences == [s for _, (s, _, _) in records]
    assert split.labels == [values for _, (_, values, _) in records]


# ---- malformed tables -----------------------------------------------------------------------------------
cells = st.sampled_from(
    ["ACGT", "MKV", "", " ", "a", "H", "HE", "H E", "0.5", "-1", "nan", "inf", "1e999", "NA", "x y"]
    + ['"', "'", ",", "\t", "\n", "\r", "\x00", "é", "id", "label", "labels", "sequence"]
)
tables = st.lists(st.lists(cells, max_size=6), max_size=6)


def table_text(rows, sep) -> str:
    return "".join(sep.join(row) + "\n" for row in rows)


@settings(max_examples=80, deadline=None)
@given(
    task=st.sampled_from(TASKS),
    header=st.sampled_from([["id", "sequence", "label"], ["sequence", "label"]]),
    rows=tables,
)
def test_a_malformed_sequence_csv_reads_or_is_one_input_error(tmp_path_factory, task, header, rows):
    path = tmp_path_factory.mktemp("bad") / "train.csv"
    path.write_text(table_text([header, *rows], ","))
    read_or_refuse(read_sequence_split, path, task)


@settings(max_examples=80, deadline=None)
@given(task=st.sampled_from(TASKS), rows=tables)
def test_a_malformed_residue_tsv_reads_or_is_one_input_error(tmp_path_factory, task, rows):
    path = tmp_path_factory.mktemp("bad") / "train.tsv"
    path.write_text(table_text([["id", "sequence", "labels"], *rows], "\t"))
    read_or_refuse(read_residue_split, path, task)


@settings(max_examples=40, deadline=None)
@given(
    reader=st.sampled_from([read_sequence_split, read_residue_split]),
    task=st.sampled_from(TASKS),
    data=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass"))),
)
def test_any_bytes_read_or_are_one_input_error(tmp_path_factory, reader, task, data):
    path = tmp_path_factory.mktemp("bytes") / "train.txt"
    path.write_bytes(data)
    read_or_refuse(reader, path, task)


@pytest.mark.parametrize("reader", [read_sequence_split, read_residue_split])
@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_a_path_that_is_not_a_file_is_one_input_error(tmp_path, reader, kind):
    path = tmp_path / "train.csv"
    if kind == "directory":
        path.mkdir()
    with pytest.raises(InputError) as info:
        reader(path, "train", "classification")
    refused_in_one_line(info.value, path)


@pytest.mark.parametrize(
    "reader, text",
    [
        (read_sequence_split, "id,sequence,label\nextra,r1,ACGT,a\nextra,r2,ACGA,b\n"),
        (read_residue_split, "id\tsequence\tlabels\nextra\tr1\tACGT\t0.1 0.2 x 0.4\n"),
    ],
    ids=["csv", "tsv"],
)
def test_rows_with_one_field_more_than_the_header_are_refused(tmp_path, reader, text):
    path = tmp_path / "train.txt"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        reader(path, "train", "regression" if reader is read_residue_split else "classification")
    refused_in_one_line(info.value, path)


def test_a_quote_in_a_residue_tsv_does_not_make_a_two_line_error(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text('id\tsequence\tlabels\n"\n"\tACGT\n')
    with pytest.raises(InputError) as info:
        read_residue_split(path, "train", "classification")
    refused_in_one_line(info.value, path)

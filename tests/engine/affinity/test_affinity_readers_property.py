"""Property tests of the ΔG data readers (obte_cli/engine/affinity/data.py; issue #20): generated measurements
written as a pairs TSV or as ProNAB JSON read back equal, and any bytes, text or JSON value either read as valid
measurements (finite, non-zero ΔG; DNA or RNA; standard letters) or are one InputError line naming the file —
never another exception, never a hang."""

import json
import math
import string

from conftest import read_or_refused
from hypothesis import given, settings
from hypothesis import strategies as st

from obte_cli.engine.affinity.data import (
    COLUMNS,
    load_affinity_data,
    load_pairs_tsv,
    load_pronab_json,
    read_complexes_tsv,
)

FAST = settings(max_examples=40, deadline=None)
READERS = [load_pairs_tsv, load_pronab_json, load_affinity_data, read_complexes_tsv]


def read_or_refuse(read, path):
    """What ``read(path)`` returns, checked to be valid, or None when refused with one InputError line."""
    result = read_or_refused(lambda: read(path), path)
    if result is None:
        return None
    if read is read_complexes_tsv:  # no filters: every row is a complex of standard letters
        assert result and all(c.protein.sequence and c.nucleic_acid.sequence for c in result)
        assert all(c.nucleic_acid.na_type in ("DNA", "RNA") for c in result)
        return result
    table, dropped = result
    assert list(table.columns) == COLUMNS and len(table) > 0
    assert all(isinstance(v, float) and math.isfinite(v) and v != 0 for v in table["dG"])
    assert set(table["na_type"]) <= {"DNA", "RNA"}
    assert all(set(p) <= set("ACDEFGHIKLMNPQRSTVWY") and p for p in table["protein"])
    assert all(set(n) <= set("ACGT") and n for n in table["nucleic_acid"])
    assert all(set(c) <= set("ACGT") for c in table["complement"])
    assert not table.duplicated(["protein", "nucleic_acid", "complement", "na_type", "dG"]).any()
    assert all(isinstance(n, int) and n > 0 for n in dropped.values())
    return result


# ---- generated measurements ---------------------------------------------------------------------------
# a protein has a letter outside A, C, G, T and N: one of only those letters reads as a nucleic acid, refused as the
# protein of a complex (#31 §4)
proteins = st.text(alphabet="ACDEFGHIKLMNPQRSTVWY", min_size=1, max_size=60).filter(lambda p: set(p) - set("ACGTN"))
strands = st.text(alphabet="ACGT", min_size=1, max_size=40)
energies = st.floats(min_value=-25, max_value=-0.01, allow_nan=False).map(lambda v: round(v, 3))
accessions = st.from_regex(r"[A-Z][0-9][A-Z0-9]{3}[0-9]", fullmatch=True)


@st.composite
def measurements(draw):
    """Rows of (protein_id, protein, nucleic_acid, complement, na_type, dG), each row unique."""
    rows = draw(
        st.lists(
            st.tuples(accessions, proteins, strands, st.one_of(st.just(""), strands), st.sampled_from(["DNA", "RNA"])),
            min_size=1,
            max_size=12,
        )
    )
    seen, out = set(), []
    for accession, protein, strand, complement, na_type in rows:
        dg = draw(energies)
        if (protein, strand, complement, na_type, dg) not in seen:
            seen.add((protein, strand, complement, na_type, dg))
            out.append((accession, protein, strand, complement, na_type, dg))
    return out


def _as_written(strand, na_type, lower):
    """How a lab writes the strand: RNA with U (the reader stores T), in either case."""
    text = strand.replace("T", "U") if na_type == "RNA" else strand
    return text.lower() if lower else text


@FAST
@given(measurements(), st.booleans())
def test_a_generated_pairs_tsv_reads_back_equal(tmp_path_factory, rows, lower):
    path = tmp_path_factory.mktemp("pairs") / "pairs.tsv"
    lines = [
        f"{a}\t{p.lower() if lower else p}\t{_as_written(n, t, lower)}\t{_as_written(c, t, lower)}\t{t}\t{dg!r}\n"
        for a, p, n, c, t, dg in rows
    ]
    path.write_text("\t".join(COLUMNS) + "\n" + "".join(lines))
    for read in (load_pairs_tsv, load_affinity_data):
        table, dropped = read_or_refuse(read, path)
        assert [tuple(r) for r in table.itertuples(index=False)] == rows and not dropped
    complexes = read_or_refuse(read_complexes_tsv, path)
    assert [(c.protein.id, c.nucleic_acid.na_type, c.complement) for c in complexes] == [
        (a, t, c) for a, _, _, c, t, _ in rows
    ]


@FAST
@given(measurements(), st.booleans())
def test_a_generated_pronab_json_reads_back_equal(tmp_path_factory, rows, lower):
    data: dict = {}
    for accession, protein, strand, complement, na_type, dg in rows:
        entry = data.setdefault(accession, {"Sequence": protein.lower() if lower else protein, "binding data": []})
        kd = math.exp(dg / 0.5925)
        entry["binding data"].append([_as_written(strand, na_type, lower), na_type, kd, dg, complement])
    path = tmp_path_factory.mktemp("pronab") / "pronab.json"
    path.write_text(json.dumps(data))
    # read entry by entry, each with one sequence (the first written under it); rows that became equal kept once
    expected, seen = [], set()
    for accession, entry in data.items():
        protein = entry["Sequence"].upper()
        for _, _, strand, complement, na_type, dg in (r for r in rows if r[0] == accession):
            if (protein, strand, complement, na_type, dg) not in seen:
                seen.add((protein, strand, complement, na_type, dg))
                expected.append((accession, protein, strand, complement, na_type, dg))
    for read in (load_pronab_json, load_affinity_data):
        table, dropped = read_or_refuse(read, path)
        assert [tuple(r) for r in table.itertuples(index=False)] == expected
        assert dropped == ({"duplicate": len(rows) - len(expected)} if len(expected) < len(rows) else {})


# ---- arbitrary and garbled input ----------------------------------------------------------------------
cells = st.one_of(
    st.sampled_from(["", "ACGT", "acgu", "MKV", "DNA", "RNA", "Other", "-9.1", "0", "nan", "inf", "1e999", '"']),
    st.text(alphabet=string.printable.replace("\n", "").replace("\t", ""), max_size=12),
)
headers = st.lists(st.sampled_from([*COLUMNS, "na_id", "dG", "protein", "x", ""]), min_size=1, max_size=8).map(
    lambda names: "\t".join(names)
)


@FAST
@given(headers, st.lists(st.lists(cells, max_size=9).map("\t".join), max_size=8))
def test_a_garbled_pairs_tsv_reads_consistently_or_is_refused_in_one_line(tmp_path_factory, header, lines):
    path = tmp_path_factory.mktemp("pairs") / "pairs.tsv"
    path.write_text("\n".join([header, *lines]) + "\n")
    for read in READERS:
        read_or_refuse(read, path)


@FAST
@given(st.binary(max_size=400), st.sampled_from([b"", b"{", b"protein\tnucleic_acid\tdG\n", b"\x1f\x8b"]))
def test_arbitrary_bytes_are_read_or_refused_in_one_line(tmp_path_factory, content, prefix):
    path = tmp_path_factory.mktemp("bytes") / "data"
    path.write_bytes(prefix + content)
    for read in READERS:
        read_or_refuse(read, path)


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**400), max_value=10**400),
        st.floats(),
        st.sampled_from(["", "ACGT", "MKV", "DNA", "RNA", "Other", "-8.5", "1e-9", "nan"]),
        st.text(max_size=8),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=30,
)


@st.composite
def pronab_shaped(draw):
    """ProNAB-like JSON: entries whose fields and rows hold arbitrary JSON values in the right places."""
    entries = {}
    for accession in draw(st.lists(accessions, min_size=1, max_size=4, unique=True)):
        rows = draw(st.lists(st.one_of(json_values, st.lists(json_values, min_size=5, max_size=5)), max_size=5))
        entry = {"Sequence": draw(st.one_of(proteins, json_values)), "binding data": rows}
        if draw(st.booleans()):
            entry = draw(st.one_of(json_values, st.just({"Sequence": entry["Sequence"]})))
        entries[accession] = entry
    return entries


@FAST
@given(st.one_of(json_values, pronab_shaped()))
def test_any_json_value_is_read_or_refused_in_one_line(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("json") / "pronab.json"
    path.write_text(json.dumps(value))
    for read in (load_pronab_json, load_affinity_data):
        read_or_refuse(read, path)


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(["[", '{"P1": ', '{"P1": {"Sequence": ']), st.integers(5_000, 200_000))
def test_deeply_nested_or_huge_json_is_refused_in_one_line(tmp_path_factory, opening, depth):
    path = tmp_path_factory.mktemp("json") / "pronab.json"
    path.write_text(opening + "[" * depth + "]" * depth + ("}" * opening.count("{")))
    assert read_or_refuse(load_pronab_json, path) is None


def test_huge_numbers_are_one_line_errors(tmp_path):
    path = tmp_path / "pronab.json"
    good = ["ACGT", "DNA", 1e-9, -9.0, ""]
    for kd in (10**400, -(10**400)):
        path.write_text(json.dumps({"P1": {"Sequence": "MKV", "binding data": [good, ["ACGA", "DNA", kd, -8.0, ""]]}}))
        assert read_or_refuse(load_pronab_json, path) is None
    path.write_text('{"P1": {"Sequence": "MKV", "binding data": [["ACGT", "DNA", 1' + "0" * 5000 + ", -8, null]]}}")
    assert read_or_refuse(load_pronab_json, path) is None


def test_a_directory_or_unreadable_path_is_one_line(tmp_path):
    for read in READERS:
        assert read_or_refuse(read, tmp_path) is None

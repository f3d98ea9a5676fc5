"""Property tests of the contact readers (issue #20): sites from damaged structures, and the labels TSV of
`obte contacts labels`. A generated table reads back equal; structures and tables that are cut short,
damaged or arbitrary either read consistently or are one InputError line naming the file."""

import gzip
from functools import cache

import numpy as np
import pytest
from conftest import obte, read_or_refused, refused_in_one_line, within
from hypothesis import given, settings
from hypothesis import strategies as st

from obte_cli.engine.contacts.io import labelled_sites, sites_from_structure
from obte_cli.engine.contacts.sites import REQUIRED_COLUMNS, read_contact_labels
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.resources import example_file

FUZZ = settings(max_examples=40, deadline=None)


def check_site(site, n_cutoffs: int) -> None:
    assert len(site.protein) == len(site.residue_ids) == site.labels.shape[0] > 0
    assert site.labels.shape[1] == n_cutoffs and set(np.unique(site.labels)) <= {0, 1}
    assert (np.diff(site.labels, axis=1) >= 0).all()  # a contact at a short cutoff is one at every longer one
    assert len(site.na_sequences) == len(site.na_types) >= 1 and all(site.na_sequences)


# ---- sites from structures --------------------------------------------------------------------------
@cache
def pdb_lines() -> list[bytes]:
    return gzip.decompress(example_file("1AZP.pdb.gz").read_bytes()).splitlines(keepends=True)


line_edits = st.lists(
    st.tuples(
        st.sampled_from(["drop", "duplicate", "blank-columns"]),
        st.floats(0, 1, exclude_max=True),
        st.integers(1, 80),
    ),
    max_size=8,
)


def damaged_pdb(keep: float, edits) -> bytes:
    """The first ``keep`` of 1AZP's lines, with lines dropped, repeated, or with a column range blanked."""
    lines = list(pdb_lines()[: int(keep * len(pdb_lines()))])
    for kind, where, width in edits:
        if not lines:
            break
        at = int(where * len(lines))
        if kind == "drop":
            del lines[at]
        elif kind == "duplicate":
            lines.insert(at, lines[at])
        else:
            start = width % 60
            lines[at] = lines[at][:start] + b" " * 8 + lines[at][start + 8 :]
    return b"".join(lines)


@FUZZ
@given(keep=st.floats(0, 1), edits=line_edits)
def test_sites_from_a_damaged_structure_are_consistent_or_one_input_error(tmp_path_factory, keep, edits):
    path = tmp_path_factory.mktemp("pdb") / "s.pdb"
    path.write_bytes(damaged_pdb(keep, edits))
    sites = read_or_refused(lambda: sites_from_structure(path), path, seconds=20)
    if sites is None:
        return
    for site in sites:
        check_site(site, 3)


@settings(max_examples=15, deadline=None)
@given(files=st.lists(st.tuples(st.floats(0, 1), line_edits), min_size=1, max_size=4))
def test_labelled_sites_skip_what_cannot_be_read_with_a_reason(tmp_path_factory, files):
    """`finetune contacts` and `bench contacts` read many structures: each one gives its sites or one skip."""
    root = tmp_path_factory.mktemp("many")
    paths = []
    for k, (keep, edits) in enumerate(files):
        paths.append(root / f"s{k}.pdb")
        paths[-1].write_bytes(damaged_pdb(keep, edits))
    with within(30):
        sites, skipped = labelled_sites(paths)
    assert all(reason and "\n" not in reason for _, reason in skipped)
    assert len(sites) + len(skipped) >= len(paths)
    for site in sites:
        check_site(site, 3)


# ---- the labels TSV ---------------------------------------------------------------------------------
def test_what_contacts_labels_writes_reads_back_as_the_structures_sites(tmp_path):
    result = obte("contacts", "labels", example_file("1AZP.pdb.gz"), "-o", tmp_path / "labels.tsv")
    assert result.exit_code == 0, result.output
    [site], cutoffs = read_contact_labels(tmp_path / "labels.tsv")
    [direct] = sites_from_structure(example_file("1AZP.pdb.gz"))
    assert cutoffs == (4.0, 6.0, 8.0) and site.name == direct.name
    assert (site.protein, site.na_sequences, site.na_types, site.residue_ids) == (
        direct.protein,
        direct.na_sequences,
        direct.na_types,
        direct.residue_ids,
    )
    np.testing.assert_array_equal(site.labels, direct.labels)


words = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_]{0,5}", fullmatch=True)
na_strands = st.lists(
    st.tuples(st.sampled_from(["DNA", "RNA"]), st.text(alphabet="ACGTUN", min_size=1, max_size=12)),
    min_size=1,
    max_size=2,
)


@st.composite
def sites(draw, n_cutoffs: int):
    n = draw(st.integers(1, 12))
    columns = draw(st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=n_cutoffs, max_size=n_cutoffs))
    labels = np.array(columns, dtype=int).T
    labels = np.maximum.accumulate(labels, axis=1)  # as `contacts labels` writes them: monotone in the cutoff
    return {
        "pdb_id": draw(words),
        "chain": draw(words),
        "aa": draw(st.text(alphabet="ACDEFGHIKLMNPQRSTVWYX", min_size=n, max_size=n)),
        "resnum": draw(st.lists(st.integers(-999, 9999), min_size=n, max_size=n)),
        "icode": draw(st.lists(st.sampled_from(["", "A", "B"]), min_size=n, max_size=n)),
        "na": draw(na_strands),
        "labels": labels,
    }


def write_labels(sites_, cutoffs, extra_columns: bool) -> str:
    columns = ["pdb_id", "chain", "resnum", "icode", "aa"]
    columns += ["modified", "min_distance"] if extra_columns else []
    columns += [f"contact_{c:g}" for c in cutoffs]
    columns += ["na_chains", "na_types", "na_sequences"] if extra_columns else ["na_types", "na_sequences"]
    lines = ["\t".join(columns)]
    for s in sites_:
        na_types, na_sequences = ",".join(t for t, _ in s["na"]), ",".join(q for _, q in s["na"])
        for k in range(len(s["aa"])):
            row = [s["pdb_id"], s["chain"], str(s["resnum"][k]), s["icode"][k], s["aa"][k]]
            row += ["0", "NA"] if extra_columns else []
            row += [str(v) for v in s["labels"][k]]
            row += ["B,C"[: 2 * len(s["na"]) - 1]] if extra_columns else []
            row += [na_types, na_sequences]
            lines.append("\t".join(row))
    return "\n".join(lines) + "\n"


cutoff_sets = st.lists(st.sampled_from([2.5, 4.0, 5.0, 6.0, 6.5, 8.0, 10.0, 12.0]), min_size=1, max_size=4, unique=True)


@FUZZ
@given(
    cutoffs=cutoff_sets,
    data=st.data(),
    extra_columns=st.booleans(),
    packed=st.booleans(),
)
def test_labels_round_trip(tmp_path_factory, cutoffs, data, extra_columns, packed):
    drawn = data.draw(
        st.lists(sites(len(cutoffs)), min_size=1, max_size=4, unique_by=lambda s: (s["pdb_id"], s["chain"]))
    )
    text = write_labels(drawn, cutoffs, extra_columns)
    path = tmp_path_factory.mktemp("labels") / ("l.tsv.gz" if packed else "l.tsv")
    path.write_bytes(gzip.compress(text.encode()) if packed else text.encode())
    back, read_cutoffs = read_contact_labels(path)
    assert read_cutoffs == tuple(sorted(cutoffs))
    order = np.argsort(cutoffs)
    assert [b.name for b in back] == [f"{s['pdb_id']}:{s['chain']}" for s in drawn]
    for b, s in zip(back, drawn):
        assert b.protein == s["aa"]
        assert b.residue_ids == [f"{r}{i}" for r, i in zip(s["resnum"], s["icode"])]
        assert b.na_types == [t for t, _ in s["na"]] and b.na_sequences == [q for _, q in s["na"]]
        np.testing.assert_array_equal(b.labels, s["labels"][:, order])


# What the reader keys on: separators, 0/1 cells, numbers that do not fit, quotes.
cells = st.sampled_from(
    ["0", "1", "2", "-1", "1.0", "", " ", "NA", "nan", "x", "AA", "99999999999999999999999", '"', ",", "\t", "\n"]
)


def bad_labels_table(rows) -> str:
    header = "\t".join([*REQUIRED_COLUMNS, "contact_4", "contact_8"])
    return header + "\n" + "".join("\t".join(row) + "\n" for row in rows)


@settings(max_examples=80, deadline=None)
@given(rows=st.lists(st.lists(cells, min_size=0, max_size=10), min_size=0, max_size=6))
def test_a_malformed_labels_table_reads_or_is_one_input_error(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("bad") / "labels.tsv"
    path.write_text(bad_labels_table(rows))
    read_labels_or_refuse(path)


@settings(max_examples=60, deadline=None)
@given(text=st.one_of(st.text(max_size=300), st.lists(cells, max_size=60).map("".join)), raw=st.booleans())
def test_any_text_or_bytes_as_a_labels_table_is_read_or_refused(tmp_path_factory, text, raw):
    path = tmp_path_factory.mktemp("any") / "labels.tsv"
    if raw:
        path.write_bytes(text.encode("utf-8", errors="surrogatepass")[::-1])
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    read_labels_or_refuse(path)


def read_labels_or_refuse(path):
    result = read_or_refused(lambda: read_contact_labels(path), path)
    if result is None:
        return
    found, cutoffs = result
    assert found and cutoffs == tuple(sorted(cutoffs))
    for site in found:
        assert len(site.protein) == len(site.residue_ids) == site.labels.shape[0] > 0
        assert site.labels.shape[1] == len(cutoffs) and set(np.unique(site.labels)) <= {0, 1}


@pytest.mark.parametrize("cell", ["2", "yes", "99999999999999999999999"])
def test_a_bad_contact_cell_names_the_file_and_site(tmp_path, cell):
    """A number too large for an integer was an OverflowError."""
    path = tmp_path / "labels.tsv"
    path.write_text(bad_labels_table([["1ABC", "A", "1", "M", "DNA", "ACGT", "0", cell]]))
    with pytest.raises(InputError, match="site 1ABC:A: contact columns must be 0 or 1") as info:
        read_contact_labels(path)
    refused_in_one_line(info.value, path)


def test_rows_with_one_field_more_than_the_header_are_refused(tmp_path):
    """pandas takes the extra first field as an index, shifting every column: refused, not a TypeError."""
    path = tmp_path / "labels.tsv"
    path.write_text(bad_labels_table([["extra", "1ABC", "A", "1", "MK", "DNA", "ACGT", "0", "1"]]))
    with pytest.raises(InputError, match="the rows have more fields than the header") as info:
        read_contact_labels(path)
    refused_in_one_line(info.value, path)


def test_a_quote_is_a_character_so_no_field_spans_lines(tmp_path):
    """The writer never quotes: a '"' used to open a quoted field with a line break in it, and the site name
    in the error then spanned two lines."""
    path = tmp_path / "labels.tsv"
    path.write_text(bad_labels_table([['"'], ['"']]))
    with pytest.raises(InputError) as info:
        read_contact_labels(path)
    refused_in_one_line(info.value, path)
    path.write_text(bad_labels_table([['"1ABC', "A", "1", "M", "DNA", "ACGT", "0", "1"]]))
    [site], _ = read_contact_labels(path)
    assert site.name == '"1ABC:A'


@pytest.mark.parametrize(
    "types, strands, message",
    [
        ("DNA", "ACXT", r"nucleic acid 1: 'X' at position 3 is not a nucleotide"),
        ("DNA,RNA", "ACGT,ACGQ", r"nucleic acid 2: 'Q' at position 4 is not a nucleotide"),
        ("protein", "ACGT", r"nucleic acid 1 has type 'protein', not DNA or RNA"),
    ],
)
def test_a_nucleic_acid_that_is_not_one_is_refused_naming_site_and_strand(tmp_path, types, strands, message):
    """Issue #31 §4: labels whose nucleic acid held X or Q trained (as <unk>s)."""
    path = tmp_path / "labels.tsv"
    path.write_text(bad_labels_table([["1ABC", "A", "1", "M", types, strands, "0", "1"]]))
    with pytest.raises(InputError, match=rf"site 1ABC:A: {message}") as info:
        read_contact_labels(path)
    refused_in_one_line(info.value, path)
    path.write_text(bad_labels_table([["1ABC", "A", "1", "M", "RNA", "ACGUN", "0", "1"]]))  # N: a modified one
    assert read_contact_labels(path)[0][0].na_sequences == ["ACGUN"]

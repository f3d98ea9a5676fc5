"""Property tests of structure reading (issue #20): PDB and mmCIF files cut short, damaged or replaced by
arbitrary bytes either read (and give consistent contact labels) or are one InputError line naming the
file — never another exception, never a hang. The real structure is the bundled 1AZP example."""

import gzip
import math
from functools import cache

import pytest
from conftest import refused_in_one_line, within
from hypothesis import given, settings
from hypothesis import strategies as st

from obte_cli.engine.bio.structures import contact_sites, read_structure
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.resources import example_file

FUZZ = settings(max_examples=40, deadline=None)
CUTOFFS = (4.0, 6.0, 8.0)


@cache
def real_text(fmt: str) -> bytes:
    """The bundled 1AZP as PDB, or converted to mmCIF. A function, not a fixture, so that Hypothesis does
    not print 100 kB with every failing example."""
    if fmt == "pdb":
        return gzip.decompress(example_file("1AZP.pdb.gz").read_bytes())
    return read_structure(example_file("1AZP.pdb.gz")).make_mmcif_document().as_string().encode()


def labels_or_refusal(path) -> None:
    """Read ``path`` and label its contacts both ways; each step succeeds consistently or is an InputError."""
    with within(20):
        try:
            structure = read_structure(path)
        except InputError as exc:
            refused_in_one_line(exc, path)
            return
        assert len(structure) > 0
        for per_chain in (False, True):
            try:
                sites, skipped = contact_sites(path, CUTOFFS, per_chain=per_chain)
            except InputError as exc:
                refused_in_one_line(exc, path)
                continue
            assert bool(sites) != bool(skipped) and all(s.reason for s in skipped)
            for site in sites:
                assert len(site.na_chains) == len(site.na_types) == len(site.na_sequences) >= 1
                assert set(site.na_types) <= {"DNA", "RNA"}
                for residue in site.residues:
                    assert len(residue.aa) == 1 and residue.aa.isupper()
                    near = [residue.contacts[c] for c in CUTOFFS]
                    assert near == sorted(near)  # in contact at 4 Å means in contact at 6 and 8 Å
                    assert math.isnan(residue.min_distance) == (not near[-1])


def test_the_example_labels_one_site(tmp_path):
    for fmt in ("pdb", "cif"):
        name = f"1AZP.{fmt}"
        (tmp_path / name).write_bytes(real_text(fmt))
        sites, skipped = contact_sites(tmp_path / name)
        assert not skipped and len(sites) == 1 and sites[0].sequence.startswith("MVKVKFKYKGEEKEVDTSKIKKVWRVGKMVSFTYD")


SUFFIXES = [".pdb", ".ent", ".cif", ".mmcif", ""]


@FUZZ
@given(
    fmt=st.sampled_from(["pdb", "cif"]), cut=st.floats(0, 1), at_line=st.booleans(), suffix=st.sampled_from(SUFFIXES)
)
def test_a_file_cut_short_reads_or_is_one_input_error(tmp_path_factory, fmt, cut, at_line, suffix):
    """The real file cut at any byte or line, saved under a matching, a mismatched or no extension."""
    text = real_text(fmt)
    end = int(cut * len(text))
    if at_line:
        end = text.rfind(b"\n", 0, end) + 1
    path = tmp_path_factory.mktemp("cut") / f"s{suffix}"
    path.write_bytes(text[:end])
    labels_or_refusal(path)


# What the readers key on: record names, mmCIF syntax, numbers in odd spellings.
tokens = st.sampled_from(
    ["ATOM  ", "HETATM", "MODEL ", "ENDMDL", "TER", "END", "SEQRES", "loop_", "_atom_site.", "data_", "'", '"', ";"]
    + ["?", ".", " ", "\n", "\t", "nan", "inf", "-", "1e99", "9999", "0", "A", "DA", "DG", "U", "MSE", "\x00", "é"]
)
edits = st.lists(
    st.tuples(
        st.sampled_from(["delete", "insert", "overwrite"]),
        st.floats(0, 1),
        st.lists(tokens, min_size=1, max_size=6).map("".join),
    ),
    min_size=1,
    max_size=6,
)


def damage(text: bytes, changes) -> bytes:
    out = bytearray(text)
    for kind, where, payload in changes:
        at = int(where * len(out))
        data = payload.encode()
        if kind == "delete":
            del out[at : at + len(data) * 7]
        elif kind == "insert":
            out[at:at] = data
        else:
            out[at : at + len(data)] = data
    return bytes(out)


@FUZZ
@given(fmt=st.sampled_from(["pdb", "cif"]), changes=edits, packed=st.booleans())
def test_a_damaged_file_reads_or_is_one_input_error(tmp_path_factory, fmt, changes, packed):
    text = damage(real_text(fmt), changes)
    name = f"s.{fmt}.gz" if packed else f"s.{fmt}"
    path = tmp_path_factory.mktemp("damaged") / name
    path.write_bytes(gzip.compress(text) if packed else text)
    labels_or_refusal(path)


@FUZZ
@given(
    raw=st.binary(max_size=500),
    wrap=st.sampled_from(["plain", "gzip", "cut-real-gzip", "gzip-magic"]),
    suffix=st.sampled_from([".pdb", ".cif", ".pdb.gz", ".cif.gz", ".ent.gz", ""]),
)
def test_arbitrary_bytes_read_or_are_one_input_error(tmp_path_factory, raw, wrap, suffix):
    real = example_file("1AZP.pdb.gz").read_bytes()
    data = {
        "plain": raw,
        "gzip": gzip.compress(raw),
        "cut-real-gzip": real[: len(raw) * len(real) // 501],
        "gzip-magic": b"\x1f\x8b" + raw,
    }[wrap]
    path = tmp_path_factory.mktemp("bytes") / f"b{suffix}"
    path.write_bytes(data)
    labels_or_refusal(path)


@pytest.mark.parametrize("chain", ["A", "B"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_non_finite_coordinate_is_one_input_error_naming_the_atom(tmp_path, value, chain):
    """gemmi reads "nan" in a coordinate field, and any non-number in an mmCIF one as NaN: in a nucleic acid its
    neighbour search failed with a RuntimeError, in a protein no distance reached the atom (#31 §4)."""
    import gemmi

    structure = read_structure(example_file("1AZP.pdb.gz"))
    atom = structure[0][chain][0][0]
    atom.pos = gemmi.Position(value, 0, 0)
    path = tmp_path / "nan.cif"
    structure.make_mmcif_document().write_file(str(path))
    residue = structure[0][chain][0]
    where = f"atom {atom.name} of residue {residue.name} {residue.seqid.num} in chain {chain}"
    with pytest.raises(InputError, match=f"^{path}: {where}: a coordinate is not a number$") as info:
        contact_sites(path)
    refused_in_one_line(info.value, path)


@pytest.mark.parametrize("field", ["     abc", "        ", " 1.2.3.4", "    1_00"])
def test_a_pdb_coordinate_that_is_not_a_number_names_file_and_line(tmp_path, field):
    """gemmi reads a PDB coordinate field it cannot parse as 0 (1AZP's first atom moved to the origin gave
    contacts at 0.18 Å): an error naming the line instead (#31 §4)."""
    lines = real_text("pdb").decode().splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines) if line.startswith("ATOM"))
    lines[number] = lines[number][:38] + field + lines[number][46:]  # the y field
    path = tmp_path / "bad.pdb"
    path.write_text("".join(lines))
    with pytest.raises(
        InputError, match=rf"^{path}: line {number + 1}: coordinate y '{field.strip()}' is not a number$"
    ):
        contact_sites(path)
    gzipped = tmp_path / "bad.pdb.gz"
    gzipped.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(InputError, match=rf"line {number + 1}: coordinate y"):
        read_structure(gzipped)


@pytest.mark.parametrize(
    "name, data",
    [("s.cif.gz", gzip.compress(b"")), ("s.cif.gz", b"\x00"), ("s.cif", b"data_x\n_cell.length_a 1\n")],
    ids=["empty-gzip", "not-gzip", "no-atoms"],
)
def test_what_gemmi_refuses_in_other_ways_is_one_input_error(tmp_path, name, data):
    """gemmi's IndexError (an mmCIF with no block) and OSError (a .gz that is not gzip) are input errors too."""
    path = tmp_path / name
    path.write_bytes(data)
    labels_or_refusal(path)


@pytest.mark.parametrize("kind", ["missing", "directory", "empty"])
def test_what_is_not_a_file_is_one_input_error(tmp_path, kind):
    path = tmp_path / "s.pdb"
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    with pytest.raises(InputError) as info:
        read_structure(path)
    refused_in_one_line(info.value, path)

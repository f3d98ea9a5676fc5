"""Property tests of the motif readers (JASPAR, PFM, MEME, TRANSFAC; issue #20): a generated matrix written
in each format reads back equal, and any text or bytes either read as valid matrices or are one InputError
line naming the file — never another exception, never a hang."""

import gzip
import io
import lzma

import numpy as np
from conftest import read_or_refused
from hypothesis import given, settings
from hypothesis import strategies as st

from obte_cli.engine.bio.motifs import BASES, read_matrices

FAST = settings(max_examples=40, deadline=None)


def read_or_refuse(path):
    """The matrices of ``path`` (each a valid count matrix), or None when refused with one InputError line."""
    matrices = read_or_refused(lambda: read_matrices(path), path)
    if matrices is None:
        return None
    assert matrices
    for m in matrices:
        assert m.counts.ndim == 2 and m.counts.shape[1] == 4 and m.length > 0
        assert np.isfinite(m.counts).all() and (m.counts >= 0).all() and (m.counts.sum(axis=1) > 0).all()
        assert np.allclose(m.probabilities.sum(axis=1), 1.0)
        assert len(m.consensus()) == m.length and set(m.consensus()) <= set(BASES)
        assert m.matrix_id and m.name and m.source == str(path)
    return matrices


# ---- generated matrices and their writers ---------------------------------------------------------
identifiers = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,7}(\.[0-9]{1,2})?", fullmatch=True)
names = st.from_regex(r"[A-Za-z][A-Za-z0-9_:-]{0,11}", fullmatch=True)


@st.composite
def count_columns(draw, total=None):
    """One column of counts (A, C, G, T), not all zero; summing to ``total`` when given (MEME's nsites)."""
    if total is None:
        column = draw(st.lists(st.integers(0, 1000), min_size=4, max_size=4).filter(any))
    else:
        cuts = sorted(draw(st.lists(st.integers(0, total), min_size=3, max_size=3)))
        column = [b - a for a, b in zip([0, *cuts], [*cuts, total])]
    return column


@st.composite
def matrices(draw, total=None):
    length = draw(st.integers(1, 25))
    counts = np.array(draw(st.lists(count_columns(total), min_size=length, max_size=length)), dtype=float)
    return draw(identifiers), draw(names), counts


def _numbers(row) -> str:
    return " ".join(f"{v:g}" for v in row)


def write_jaspar(motifs) -> str:
    return "".join(
        f">{i} {n}\n" + "".join(f"{b}  [ {_numbers(c[:, k])} ]\n" for k, b in enumerate(BASES)) for i, n, c in motifs
    )


def write_pfm(counts) -> str:
    return "".join(_numbers(counts[:, k]) + "\n" for k in range(4))


def write_meme(motifs, nsites) -> str:
    text = "MEME version 4\n\nALPHABET= ACGT\n\nstrands: + -\n\nBackground letter frequencies\n"
    text += "A 0.25 C 0.25 G 0.25 T 0.25\n\n"
    for i, n, c in motifs:
        text += f"MOTIF {i} {n}\nletter-probability matrix: alength= 4 w= {len(c)} nsites= {nsites} E= 0\n"
        text += "".join(" ".join(f"{v / nsites:.6f}" for v in row) + "\n" for row in c) + "\n"
    return text


def write_transfac(motifs) -> str:
    text = ""
    for i, n, c in motifs:
        text += f"AC  {i}\nXX\nID  {n}\nXX\nNA  {n}\nXX\nP0      A      C      G      T\n"
        text += "".join(f"{p:02d} " + " ".join(f"{v:6g}" for v in row) + "      N\n" for p, row in enumerate(c, 1))
        text += "XX\n//\n"
    return text


def unique_ids(motifs):
    return len({i for i, _, _ in motifs}) == len(motifs)


# ---- round trips ----------------------------------------------------------------------------------
@FAST
@given(motifs=st.lists(matrices(), min_size=1, max_size=4).filter(unique_ids), packed=st.booleans())
def test_jaspar_round_trip(tmp_path_factory, motifs, packed):
    path = tmp_path_factory.mktemp("jaspar") / ("m.jaspar.gz" if packed else "m.jaspar")
    text = write_jaspar(motifs)
    path.write_bytes(gzip.compress(text.encode()) if packed else text.encode())
    back = read_or_refuse(path)
    assert [(m.matrix_id, m.name) for m in back] == [(i, n) for i, n, _ in motifs]
    for m, (_, _, counts) in zip(back, motifs):
        np.testing.assert_array_equal(m.counts, counts)


@FAST
@given(motif=matrices(), scale=st.sampled_from([1, 1000]))
def test_pfm_round_trip_takes_the_id_from_the_file_name(tmp_path_factory, motif, scale):
    """A bare 4-row matrix; counts may also be frequencies (``scale`` 1000 writes 0.087 for 87)."""
    matrix_id, _, counts = motif
    path = tmp_path_factory.mktemp("pfm") / f"{matrix_id}.pfm"
    path.write_text(write_pfm(counts / scale))
    [back] = read_or_refuse(path)
    assert back.matrix_id == matrix_id and back.name == matrix_id
    np.testing.assert_allclose(back.counts, counts / scale, rtol=1e-9)
    assert back.consensus() == "".join(BASES[k] for k in counts.argmax(axis=1))


@FAST
@given(nsites=st.integers(1, 5000), data=st.data())
def test_meme_round_trip_gives_counts_as_probability_times_nsites(tmp_path_factory, nsites, data):
    """MEME stores probabilities; the reader promises counts = probability × nsites, so counts with column
    sums nsites come back exactly, and the probabilities within the six decimals written."""
    motifs = data.draw(st.lists(matrices(total=nsites), min_size=1, max_size=3).filter(unique_ids))
    path = tmp_path_factory.mktemp("meme") / data.draw(st.sampled_from(["m.meme", "m.txt", "m"]))
    path.write_text(write_meme(motifs, nsites))
    back = read_or_refuse(path)
    assert [(m.matrix_id, m.name) for m in back] == [(i, n) for i, n, _ in motifs]
    for m, (_, _, counts) in zip(back, motifs):
        np.testing.assert_array_equal(m.counts, counts)
        np.testing.assert_allclose(m.counts / m.counts.sum(axis=1, keepdims=True), counts / nsites, atol=1e-6)


@st.composite
def probability_row(draw):
    """Four six-decimal probabilities (in millionths) as MEME writes them; the largest at least 0.6, so that no row
    rounds to zero counts (which the reader refuses) even for one site."""
    row = draw(st.lists(st.integers(0, 10**6), min_size=3, max_size=3))
    row.insert(draw(st.integers(0, 3)), draw(st.integers(600_000, 10**6)))
    return row


@st.composite
def meme_texts(draw):
    """A MEME file with the background block, ``nsites=`` and ``w=`` given or left to their defaults."""
    text = "MEME version 4\n\nALPHABET= ACGT\n\nstrands: + -\n\nBackground letter frequencies\n"
    text += "A 0.3 C 0.2 G 0.2 T 0.3\n\n"
    ids = draw(st.lists(identifiers, min_size=1, max_size=3, unique=True))
    for motif_id in ids:
        rows = draw(st.lists(probability_row(), min_size=1, max_size=12))
        header = "letter-probability matrix: alength= 4"
        header += draw(st.sampled_from(["", f" w= {len(rows)}"]))
        header += draw(st.sampled_from(["", f" nsites= {draw(st.integers(1, 5000))}"])) + " E= 1.2e-003"
        name = draw(st.sampled_from(["", " " + draw(names)]))
        text += f"MOTIF {motif_id}{name}\n{header}\n"
        text += "".join(" ".join(f"{v / 10**6:.6f}" for v in row) + "\n" for row in rows) + "\n"
    return text


@FAST
@given(text=meme_texts())
def test_meme_reads_as_biopython_and_the_background_block_is_optional(tmp_path_factory, text):
    """Biopython's MEME reader, which needs the background block, gives the same ids and counts (round(p ×
    nsites), nsites 20 when not given); without the block the file reads the same."""
    from Bio import motifs

    folder = tmp_path_factory.mktemp("meme")
    (folder / "with.meme").write_text(text)
    (folder / "without.meme").write_text(text.replace("Background letter frequencies\nA 0.3 C 0.2 G 0.2 T 0.3\n", ""))
    ours, without = read_or_refuse(folder / "with.meme"), read_or_refuse(folder / "without.meme")
    theirs = list(motifs.parse(io.StringIO(text), "minimal"))
    assert [m.matrix_id for m in ours] == [m.matrix_id for m in without] == [m.name for m in theirs]
    assert [m.name for m in ours] == [m.name for m in without]
    for m, bare, motif in zip(ours, without, theirs):
        expected = np.array([[motif.counts[b][i] for b in BASES] for i in range(motif.length)], dtype=float)
        np.testing.assert_array_equal(m.counts, expected)
        np.testing.assert_array_equal(bare.counts, expected)


@FAST
@given(
    motifs=st.lists(matrices(), min_size=1, max_size=3).filter(unique_ids),
    suffix=st.sampled_from([".transfac", ".dat", ".txt"]),
)
def test_transfac_round_trip(tmp_path_factory, motifs, suffix):
    path = tmp_path_factory.mktemp("transfac") / f"m{suffix}"
    path.write_text(write_transfac(motifs))
    back = read_or_refuse(path)
    assert [(m.matrix_id, m.name) for m in back] == [(i, n) for i, n, _ in motifs]
    for m, (_, _, counts) in zip(back, motifs):
        np.testing.assert_array_equal(m.counts, counts)


# ---- garbage ----------------------------------------------------------------------------------------
ALL_SUFFIXES = [".jaspar", ".pfm", ".meme", ".transfac", ".dat", ".txt", ""]
# What the parsers key on: brackets, headers, numbers in odd spellings, field separators.
tricky = st.lists(
    st.sampled_from(list("ACGTN[]>-+.,:=eE0123456789 \t\n") + ["nan", "inf", "MOTIF ", "P0", "//", "XX", "w= "]),
    max_size=150,
).map("".join)


@settings(max_examples=80, deadline=None)
@given(text=st.one_of(st.text(max_size=300), tricky), suffix=st.sampled_from(ALL_SUFFIXES))
def test_any_text_reads_or_is_one_input_error(tmp_path_factory, text, suffix):
    path = tmp_path_factory.mktemp("garbage") / f"g{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    read_or_refuse(path)


def _damage(text: str, edits) -> str:
    out = list(text)
    for kind, at, payload in edits:
        at = at % (len(out) + 1)
        if kind == "truncate":
            del out[at:]
        elif kind == "delete":
            del out[at : at + len(payload)]
        else:
            out[at:at] = payload
    return "".join(out)


edits = st.lists(
    st.tuples(st.sampled_from(["truncate", "delete", "insert"]), st.integers(0, 10**6), tricky.filter(bool)),
    min_size=1,
    max_size=4,
)


@settings(max_examples=100, deadline=None)
@given(
    fmt=st.sampled_from(["jaspar", "pfm", "meme", "transfac"]),
    motifs=st.lists(matrices(total=100), min_size=1, max_size=2).filter(unique_ids),
    damage=edits,
    named=st.booleans(),
)
def test_damaged_valid_files_read_or_are_one_input_error(tmp_path_factory, fmt, motifs, damage, named):
    """A valid file truncated, with characters deleted or inserted; with the format's extension, or a
    neutral one so the format is guessed from the (damaged) content."""
    text = {
        "jaspar": lambda: write_jaspar(motifs),
        "pfm": lambda: write_pfm(motifs[0][2]),
        "meme": lambda: write_meme(motifs, 100),
        "transfac": lambda: write_transfac(motifs),
    }[fmt]()
    path = tmp_path_factory.mktemp("damaged") / (f"d.{fmt}" if named else "d.txt")
    path.write_text(_damage(text, damage))
    read_or_refuse(path)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


@settings(max_examples=40, deadline=None)
@given(
    raw=st.binary(max_size=400),
    wrap=st.sampled_from(["plain", "gzip", "cut-gzip", "damaged-gzip", "xz-magic", "gzip-magic"]),
    suffix=st.sampled_from([".jaspar", ".meme", ".pfm.gz", ".transfac"]),
)
def test_any_bytes_read_or_are_one_input_error(tmp_path_factory, raw, wrap, suffix):
    """Binary data, compressed or not, a cut or damaged gzip stream, and bytes that only start like gzip or xz."""
    data = {
        "plain": raw,
        "gzip": gzip.compress(raw),
        "cut-gzip": gzip.compress(raw)[: max(2, len(raw) // 2)],
        "damaged-gzip": _flip(gzip.compress(raw), 12),
        "xz-magic": lzma.compress(raw)[:6] + raw,
        "gzip-magic": b"\x1f\x8b" + raw,
    }[wrap]
    path = tmp_path_factory.mktemp("bytes") / f"b{suffix}"
    path.write_bytes(data)
    read_or_refuse(path)

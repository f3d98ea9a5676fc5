"""Position frequency matrices (JASPAR, PFM, MEME, TRANSFAC) and what `obte scan-jaspar` does with them.

The format comes from the extension — ``.jaspar`` (one or many ``>ID NAME`` matrices), ``.pfm``
(JASPAR's bare 4-row count matrix; the id is the file name), ``.meme`` (MEME minimal format),
``.transfac``/``.dat`` (TRANSFAC) — or, failing that (``.txt``, standard input), from the content. JASPAR
and MEME are read here, to name the matrix and row at fault; PFM and TRANSFAC by Biopython's ``Bio.motifs``.
Counts become an (L, 4) array in A, C, G, T order.

* consensus: the most frequent base at each position (ties: the first of A, C, G, T);
* mutants: each base substituted with probability ``rate`` by one of the three other bases, chosen
  uniformly; a draw with no substitution is redrawn, so every mutant differs from the consensus;
* log-odds of a sequence: Σ log2(p(base)/0.25) with p from counts plus a pseudocount of 0.25 per base
  (a frequency matrix has no pseudocounts of its own); the PFM's opinion of a mutation is
  ``log_odds(mutant) − log_odds(consensus)`` (≤ 0 for a consensus).
"""

from __future__ import annotations

import io
import lzma
import math
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from obte_cli.engine.bio.seqio import display_name, open_text
from obte_cli.engine.core.errors import InputError

BASES = "ACGT"
PSEUDOCOUNT = 0.25
FORMATS = {".jaspar": "jaspar", ".pfm": "pfm", ".meme": "meme", ".transfac": "transfac", ".dat": "transfac"}


@dataclass(frozen=True)
class Matrix:
    matrix_id: str
    name: str
    counts: np.ndarray  # (length, 4) in A, C, G, T order
    source: str

    @property
    def length(self) -> int:
        return len(self.counts)

    @property
    def probabilities(self) -> np.ndarray:
        smoothed = self.counts + PSEUDOCOUNT
        return smoothed / smoothed.sum(axis=1, keepdims=True)

    def consensus(self) -> str:
        return "".join(BASES[i] for i in self.counts.argmax(axis=1))

    def log_odds(self, sequence: str) -> float:
        index = np.array([BASES.index(b) for b in sequence])
        return float(np.log2(self.probabilities[np.arange(len(index)), index] / 0.25).sum())


def _stem(path: Path) -> str:
    """File name without ``.gz`` and the format extension: ``MA0139.1.pfm.gz`` → ``MA0139.1``."""
    name = path.name.removesuffix(".gz")
    suffix = Path(name).suffix.lower()
    return name[: -len(suffix)] if suffix in FORMATS or suffix == ".txt" else name


def _guess_format(path: Path, text: str) -> str:
    suffix = path.suffix.lower() if path.suffix.lower() != ".gz" else Path(path.stem).suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    head = text.lstrip()[:2000]
    if head.startswith("MEME version"):
        return "meme"
    if head.startswith(">"):
        return "jaspar"
    if "\nP0" in "\n" + head or head.startswith(("AC ", "ID ")):
        return "transfac"
    return "pfm"


class _Found(NamedTuple):
    """A matrix as its file gives it: id and name where the file has them (None: named after the file)."""

    matrix_id: str | None
    name: str | None
    counts: np.ndarray  # (length, 4) in A, C, G, T order


def read_matrices(path: str | Path) -> list[Matrix]:
    """Every matrix in a JASPAR / PFM / MEME / TRANSFAC file (plain or .gz); one-line errors."""
    path = Path(path)
    name = display_name(path)
    text = _read_text(path, name)
    if not text.strip():
        # Otherwise the PFM reader (the guess for content without a header) fails with a bare KeyError: 'A'.
        raise InputError(f"{name}: no motif matrices found (empty file?)")
    fmt = _guess_format(path, text)
    if fmt == "jaspar":
        found = _parse_jaspar(text, name)
    elif fmt == "meme":
        found = _parse_meme(text, name)
    else:
        found = _parse_with_biopython(text, fmt, name)
    if not found:
        raise InputError(f"{name}: no motif matrices found")
    stem = _stem(path)
    matrices = []
    for k, matrix in enumerate(found, start=1):
        counts = matrix.counts
        if len(counts) == 0 or (counts < 0).any() or not np.isfinite(counts).all() or (counts.sum(axis=1) <= 0).any():
            raise InputError(f"{name}: matrix {matrix.matrix_id or k} is empty or has a column without positive counts")
        matrix_id = matrix.matrix_id or (stem if len(found) == 1 else f"{stem}_{k}")
        matrices.append(Matrix(matrix_id, matrix.name or matrix_id, counts, name))
    return matrices


def _read_text(path: Path, name: str) -> str:
    with open_text(path) as handle:
        try:
            return handle.read()
        except (UnicodeDecodeError, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
            raise InputError(f"{name}: unreadable ({exc})") from None


# ---- JASPAR -----------------------------------------------------------------------------------------
# "A [ 1 2 3 ]". The letter may be lowercase: some tools write JASPAR files that way.
_LETTERED_ROW = re.compile(r"([ACGT])\s*\[(.*)\]", re.IGNORECASE)


def _parse_jaspar(text: str, name: str) -> list[_Found]:
    """``>ID NAME`` headers, each followed by four rows: ``A [ 1 2 3 ]`` (the letter in either case) or bare
    numbers in A, C, G, T order (JASPAR 2010–2014). Our own reader rather than Biopython's, which drops a
    matrix with a row missing without a word and refuses lowercase letters."""
    records: list[tuple[list[str], dict[str, list[float]]]] = []  # (header words, rows by letter)
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(">"):
            records.append((line[1:].split(), {}))
        elif line:
            if not records:
                records.append(([], {}))  # rows before any header: a bare matrix, named after the file
            words, rows = records[-1]
            _add_jaspar_row(line, rows, _jaspar_where(name, words, len(records)))
    return [_jaspar_matrix(words, rows, _jaspar_where(name, words, k)) for k, (words, rows) in enumerate(records, 1)]


def _jaspar_where(name: str, words: list[str], k: int) -> str:
    """How errors name a matrix: by its id, or by its place in the file when it has none."""
    return f"{name}: matrix {words[0] if words else k}"


def _add_jaspar_row(line: str, rows: dict[str, list[float]], where: str) -> None:
    lettered = _LETTERED_ROW.fullmatch(line)
    if lettered:
        letter, numbers = lettered[1].upper(), lettered[2]
    elif len(rows) < len(BASES):
        letter, numbers = BASES[len(rows)], line  # a bare row: the next of A, C, G, T
    else:
        raise InputError(f"{where}: more than four rows (at {line[:40]!r})")
    if letter in rows:
        raise InputError(f"{where}: two {letter} rows")
    rows[letter] = _numbers(numbers.split(), f"{where}: {letter} row")


def _jaspar_matrix(words: list[str], rows: dict[str, list[float]], where: str) -> _Found:
    missing = [b for b in BASES if b not in rows]
    if missing:
        raise InputError(f"{where}: missing row{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    lengths = {b: len(rows[b]) for b in BASES}
    if len(set(lengths.values())) > 1:
        raise InputError(f"{where}: rows of different lengths ({', '.join(f'{b} {n}' for b, n in lengths.items())})")
    matrix_id = words[0] if words else None
    tf_name = words[1] if len(words) > 1 else matrix_id  # the first word only, as Biopython reads it
    return _Found(matrix_id, tf_name, np.array([rows[b] for b in BASES], dtype=float).T)


def _numbers(words: list[str], where: str) -> list[float]:
    try:
        return [float(w) for w in words]
    except ValueError:
        bad = next(w for w in words if not _is_number(w))
        raise InputError(f"{where}: {bad[:20]!r} is not a number") from None


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


# ---- MEME ---------------------------------------------------------------------------------------------
MEME_NSITES = 20  # MEME's (and Biopython's) default when a matrix does not say how many sites it came from
_MEME_FIELD = re.compile(r"(\w+)=\s*(\S+)")  # "alength= 4 w= 19 nsites= 17 E= 4.1e-009"


def _parse_meme(text: str, name: str) -> list[_Found]:
    """MEME minimal format: a ``MEME version`` line, ``MOTIF id [name]`` blocks, each with a ``letter-probability
    matrix:`` line and one row of A, C, G, T probabilities per position; counts are round(p × nsites), as
    Biopython gives them. Our own reader because Biopython's requires the optional background block, stops
    silently at a short row and ignores a ``w=`` that disagrees with the rows."""
    lines = text.splitlines()
    if not any(line.startswith("MEME version") for line in lines):
        raise InputError(f"{name}: not a MEME file (no 'MEME version' line)")
    _check_meme_alphabet(lines, name)
    starts = [i for i, line in enumerate(lines) if line.startswith("MOTIF")]
    return [_meme_motif(lines[i:j], name) for i, j in zip(starts, [*starts[1:], len(lines)])]


def _check_meme_alphabet(lines: list[str], name: str) -> None:
    """The alphabet, where declared, must be DNA or RNA (four letters in the order of ``BASES``)."""
    declared = next((line for line in lines if line.startswith("ALPHABET")), None)
    if declared is None:
        return  # optional in the format; the rows are checked for four values each
    alphabet = declared.removeprefix("ALPHABET").strip(" =")
    if alphabet not in ("ACGT", "ACGU"):
        raise InputError(f"{name}: only DNA (ACGT) or RNA (ACGU) motifs can be read, not ALPHABET= {alphabet[:30]}")


def _meme_motif(block: list[str], name: str) -> _Found:
    """One ``MOTIF`` line and the lines up to the next: its matrix, checked against the declared width."""
    words = block[0].split()
    if len(words) < 2:
        raise InputError(f"{name}: a MOTIF line without a motif id")
    motif_id, tf_name = words[1], words[2] if len(words) > 2 else words[1]
    where = f"{name}: motif {motif_id}"
    header = next((i for i, line in enumerate(block) if line.startswith("letter-probability matrix:")), None)
    if header is None:
        raise InputError(f"{where}: no 'letter-probability matrix:' line")
    fields = dict(_MEME_FIELD.findall(block[header]))
    [nsites] = _numbers([fields.get("nsites", str(MEME_NSITES))], f"{where}: nsites=")
    rows = _numeric_rows(block[header + 1 :])
    for r, row in enumerate(rows, start=1):
        if len(row) != len(BASES):
            raise InputError(f"{where}: row {r} has {len(row)} values where 4 are expected (A, C, G, T)")
    if "w" in fields and _numbers([fields["w"]], f"{where}: w=") != [len(rows)]:
        found = f"{len(rows)} row" + ("" if len(rows) == 1 else "s")
        raise InputError(f"{where}: declares width w= {fields['w'][:20]} but has {found}")
    probabilities = np.array([_numbers(row, f"{where}: row {r}") for r, row in enumerate(rows, start=1)])
    with np.errstate(over="ignore", invalid="ignore"):  # no warning: an absurd count is refused as not finite
        counts = np.round(probabilities.reshape(-1, 4) * nsites)  # half to even, as Biopython's round()
    return _Found(motif_id, tf_name, counts)


def _numeric_rows(lines: list[str]) -> list[list[str]]:
    """The words of the lines up to the first that does not start with a number: a MEME matrix ends at a blank
    line, a ``URL`` line or the next ``MOTIF``. A short or long row is kept, for the caller to name."""
    rows = []
    for line in lines:
        words = line.split()
        if not words or not _is_number(words[0]):
            break
        rows.append(words)
    return rows


# ---- PFM and TRANSFAC, read by Biopython --------------------------------------------------------------
def _parse_with_biopython(text: str, fmt: str, name: str) -> list[_Found]:
    from Bio import motifs

    try:
        parsed = list(motifs.parse(io.StringIO(text), fmt)) if fmt != "pfm" else [motifs.read(io.StringIO(text), "pfm")]
    except Exception as exc:  # Biopython raises ValueError, KeyError, IndexError... for malformed files
        raise InputError(
            f"{name}: not a valid {fmt.upper()} matrix file ({type(exc).__name__}: {str(exc)[:100]})"
        ) from None
    found = []
    for k, motif in enumerate(parsed, start=1):
        try:
            counts = np.array([[float(motif.counts[b][i]) for b in BASES] for i in range(motif.length)])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{name}: matrix {k} has no A/C/G/T rows ({exc})") from None
        if fmt == "transfac":
            found.append(_Found(motif.get("AC") or motif.get("ID"), motif.get("NA") or motif.get("ID"), counts))
        else:  # a .pfm holds one matrix and no id: named after the file
            found.append(_Found(None, None, counts))
    return found


# Bernoulli rounds tried before drawing the substituted positions directly (see :func:`mutate`).
_MUTATION_ROUNDS = 100


def substituted_positions(length: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Positions to substitute, drawn directly from their distribution: each of ``length`` positions
    independently with probability ``rate``, given that at least one is. The count k follows the binomial
    distribution without its zero (P(k) ∝ C(n, k) rateᵏ (1 − rate)ⁿ⁻ᵏ, k ≥ 1), and given k every set of k
    positions is equally likely. One draw each, however small the rate."""
    if length < 1:
        raise ValueError("nothing to substitute in an empty sequence")
    k = np.arange(1, length + 1)
    if rate >= 1:
        count = length
    else:
        log_p = (
            np.array([math.lgamma(length + 1) - math.lgamma(i + 1) - math.lgamma(length - i + 1) for i in k])
            + k * math.log(rate)
            + (length - k) * math.log1p(-rate)
        )
        p = np.exp(log_p - log_p.max())
        count = int(rng.choice(k, p=p / p.sum()))
    return np.sort(rng.choice(length, size=count, replace=False))


def mutate(consensus: str, rate: float, rng: np.random.Generator) -> str:
    """A copy of ``consensus`` with each base substituted with probability ``rate`` (at least one).

    Up to a hundred rounds of per-base draws are tried first (at the usual rates one succeeds at once, so a
    seed gives the mutants it always gave); if none substitutes anything, :func:`substituted_positions`
    draws from the same distribution directly. A tiny rate (1e-12) so ends at once instead of redrawing
    for ever."""
    if not 0 < rate <= 1:
        raise ValueError("rate must be in (0, 1]")
    letters = np.array(list(consensus))
    for _ in range(_MUTATION_ROUNDS):
        hit = rng.random(len(letters)) < rate
        if hit.any():
            break
    else:
        hit = np.zeros(len(letters), dtype=bool)
        hit[substituted_positions(len(letters), rate, rng)] = True
    mutant = letters.copy()
    for i in np.flatnonzero(hit):
        mutant[i] = rng.choice([b for b in BASES if b != letters[i]])
    return "".join(mutant)


def single_substitutions(consensus: str) -> list[tuple[int, str, str]]:
    """(position, base, sequence) for every single-base substitution of ``consensus``."""
    out = []
    for i, original in enumerate(consensus):
        for base in BASES:
            if base != original:
                out.append((i, base, consensus[:i] + base + consensus[i + 1 :]))
    return out

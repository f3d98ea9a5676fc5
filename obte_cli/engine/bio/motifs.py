"""Position frequency matrices (JASPAR, PFM, MEME, TRANSFAC) and what `obte scan-jaspar` does with them.

Reading uses Biopython's ``Bio.motifs`` parsers. The format comes from the extension — ``.jaspar``
(one or many ``>ID NAME`` matrices), ``.pfm`` (JASPAR's bare 4-row count matrix; the id is the file
name), ``.meme``/``.txt`` (MEME minimal format), ``.transfac``/``.dat`` (TRANSFAC) — or, failing that,
from the content. Counts become an (L, 4) array in A, C, G, T order.

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
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from obte_cli.engine.bio.seqio import display_name, open_text
from obte_cli.engine.core.errors import InputError

BASES = "ACGT"
PSEUDOCOUNT = 0.25
FORMATS = {".jaspar": "jaspar", ".pfm": "pfm", ".meme": "minimal", ".transfac": "transfac", ".dat": "transfac"}


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
        return "minimal"  # Biopython's name for the MEME (minimal) text format
    if head.startswith(">"):
        return "jaspar"
    if "\nP0" in "\n" + head or head.startswith(("AC ", "ID ")):
        return "transfac"
    return "pfm"


def read_matrices(path: str | Path) -> list[Matrix]:
    """Every matrix in a JASPAR / PFM / MEME / TRANSFAC file (plain or .gz); one-line errors."""
    from Bio import motifs

    path = Path(path)
    name = display_name(path)
    with open_text(path) as handle:
        try:
            text = handle.read()
        except (UnicodeDecodeError, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
            raise InputError(f"{name}: unreadable ({exc})") from None
    fmt = _guess_format(path, text)
    try:
        parsed = list(motifs.parse(io.StringIO(text), fmt)) if fmt != "pfm" else [motifs.read(io.StringIO(text), "pfm")]
    except Exception as exc:  # Biopython raises ValueError, KeyError, IndexError... for malformed files
        raise InputError(
            f"{name}: not a valid {fmt.upper()} matrix file ({type(exc).__name__}: {str(exc)[:100]})"
        ) from None
    meme_names = {
        w[1]: w[2] for w in (line.split() for line in text.splitlines() if line.startswith("MOTIF")) if len(w) > 2
    }
    matrices = []
    for k, motif in enumerate(parsed, start=1):
        try:
            counts = np.array([[float(motif.counts[b][i]) for b in BASES] for i in range(motif.length)])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{name}: matrix {k} has no A/C/G/T rows ({exc})") from None
        if motif.length == 0 or (counts < 0).any() or not np.isfinite(counts).all() or (counts.sum(axis=1) <= 0).any():
            raise InputError(f"{name}: matrix {k} is empty or has a column without positive counts")
        stem = _stem(path)
        matrix_id = (
            getattr(motif, "matrix_id", None)
            or getattr(motif, "id", None)
            or (stem if len(parsed) == 1 else f"{stem}_{k}")
        )
        tf_name = motif.name or matrix_id
        if fmt == "minimal":  # MEME: "MOTIF id [name]"; Biopython keeps only the id (as .name)
            matrix_id, tf_name = motif.name, meme_names.get(motif.name, motif.name)
        elif fmt == "transfac":
            matrix_id = motif.get("AC") or motif.get("ID") or matrix_id
            tf_name = motif.get("NA") or motif.get("ID") or matrix_id
        matrices.append(Matrix(str(matrix_id), str(tf_name), counts, name))
    if not matrices:
        raise InputError(f"{name}: no matrices")
    return matrices


def mutate(consensus: str, rate: float, rng: np.random.Generator) -> str:
    """A copy of ``consensus`` with each base substituted with probability ``rate`` (at least one)."""
    if not 0 < rate <= 1:
        raise ValueError("rate must be in (0, 1]")
    letters = np.array(list(consensus))
    while True:
        hit = rng.random(len(letters)) < rate
        if hit.any():
            break
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

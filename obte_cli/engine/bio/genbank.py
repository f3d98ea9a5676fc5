"""Streaming reader for GenBank flat files that keeps only what pretraining uses: id, molecule type, sequence.

Everything between the LOCUS line and ORIGIN (definition, references, features) is skipped without
being parsed, which is why this is several times faster than a full parser such as Biopython's
``SeqIO.parse(..., "genbank")`` on the same file (measured by ``obte bench prep``).

Molecule type: the LOCUS line's type field — the word after the length unit ``bp`` (``DNA``, ``mRNA``,
``ss-RNA``, ``cRNA`` ...; GenBank release files and the older column layout both put it there); a
``/mol_type`` qualifier is not needed. A length unit of ``aa`` (GenPept) means protein. A blank or
unknown type field gives ``""``, which `obte prep` drops and counts. Files may start
with a release header (``GBVRL1.SEQ ...``) before the first LOCUS line; it is skipped.

Errors name the file and the record: a LOCUS line without a length unit, sequence lines outside ORIGIN,
a file that ends inside a record (no ``//``), and the sequence length disagreeing with the LOCUS length.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from obte_cli.engine.bio.molecules import molecule_type
from obte_cli.engine.bio.seqio import _lines, display_name, open_text
from obte_cli.engine.core.errors import InputError

_STRIP_ORIGIN = str.maketrans("", "", "0123456789 \t\r\n")


@dataclass(frozen=True)
class SequenceRecord:
    id: str
    molecule_type: str  # as written (``DNA``, ``mRNA``, ``ss-RNA``; ``protein`` for aa; "" if blank or unknown)
    sequence: str  # letters as written, case kept
    number: int  # 1-based position in its file


def _is_molecule_type(word: str) -> bool:
    try:
        molecule_type(word)
    except KeyError:
        return False
    return True


def parse_locus(line: str, where: str) -> tuple[str, int, str]:
    """(name, length, molecule type) from a LOCUS line; the type is "" when the field is blank or unknown."""
    words = line.split()
    for i, word in enumerate(words[2:], start=2):
        if word in ("bp", "aa") and words[i - 1].isdigit():
            length = int(words[i - 1])
            if word == "aa":
                return words[1], length, "protein"
            following = words[i + 1] if i + 1 < len(words) else ""
            return words[1], length, following if _is_molecule_type(following) else ""
    raise InputError(f"{where}: malformed LOCUS line (no 'N bp' or 'N aa'): {line.strip()[:80]!r}")


def read_genbank(path: str | Path) -> Iterator[SequenceRecord]:
    """Stream the records of a GenBank flat file (plain, .gz, or ``-`` for stdin)."""
    name = display_name(path)
    number = 0
    locus: tuple[str, int, str] | None = None
    in_origin = False
    chunks: list[str] = []

    def hint() -> str:
        return f"record {number}" if number else "the start of the file"

    with open_text(path) as handle:
        for line in _lines(handle, name, hint):
            if in_origin:
                if line.startswith("//"):
                    sequence = "".join(chunks)
                    record_id, length, mol = locus
                    where = f"{name}: record {number} ('{record_id}')"
                    if len(sequence) != length:
                        raise InputError(f"{where}: sequence has {len(sequence)} letters, LOCUS says {length}")
                    if not sequence:
                        raise InputError(f"{where}: no sequence after ORIGIN")
                    yield SequenceRecord(record_id, mol, sequence, number)
                    locus, in_origin, chunks = None, False, []
                else:
                    chunks.append(line.translate(_STRIP_ORIGIN))
            elif line.startswith("LOCUS"):
                if locus is not None:
                    raise InputError(f"{name}: record {number} ('{locus[0]}') has no ORIGIN/'//' before the next LOCUS")
                number += 1
                locus = parse_locus(line, f"{name}: record {number}")
            elif line.startswith("ORIGIN"):
                if locus is None:
                    raise InputError(f"{name}: ORIGIN outside a record near {hint()}")
                in_origin = True
            elif line.startswith("//"):
                where = f"{name}: record {number}" + (f" ('{locus[0]}')" if locus else "")
                raise InputError(f"{where}: record ends without an ORIGIN sequence")
    if locus is not None:
        raise InputError(f"{name}: record {number} ('{locus[0]}') is truncated (file ends before '//')")
    if number == 0:
        raise InputError(f"{name}: no GenBank records (no LOCUS line)")

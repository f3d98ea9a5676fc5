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
:func:`scan_genbank` returns such records as :class:`~obte_cli.engine.bio.seqio.Malformed` items instead (a
reason and that message), so `obte prep` drops and counts them; a file with no LOCUS line, or binary data
before the first, is not GenBank at all and always an error. Reasons: ``malformed_locus``,
``no_sequence`` (no ORIGIN: CONTIG and WGS master records), ``empty_sequence``, ``length_mismatch``,
``truncated_record`` (the next LOCUS or the end of the file comes before ``//``), ``binary_data`` and
``stray_line`` (ORIGIN or ``//`` outside a record).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from obte_cli.engine.bio.molecules import molecule_type
from obte_cli.engine.bio.seqio import Malformed, _lines, display_name, is_binary, open_text
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


def scan_genbank(path: str | Path) -> Iterator[SequenceRecord | Malformed]:
    """Stream the records of a GenBank flat file (plain, .gz, .xz, or ``-`` for stdin), malformed ones as
    :class:`Malformed` items (see the module docstring)."""
    name = display_name(path)
    number = 0
    open_record = False  # between a LOCUS line and its '//'
    locus: tuple[str, int, str] = ("", 0, "")
    problem: Malformed | None = None  # what is wrong with the open record, found before its end
    in_origin = False
    chunks: list[str] = []
    junk = False  # inside a stretch of binary data outside any record (reported once)

    def hint() -> str:
        return f"record {number}" if number else "the start of the file"

    def where() -> str:
        return f"{name}: record {number}" + (f" ('{locus[0]}')" if locus[0] else "")

    def close() -> SequenceRecord | Malformed:
        if problem is not None:
            return problem
        if not in_origin:
            return Malformed("no_sequence", f"{where()}: record ends without an ORIGIN sequence", number)
        sequence = "".join(chunks)
        record_id, length, mol = locus
        if not sequence:
            said = f"sequence has 0 letters, LOCUS says {length}" if length else "no sequence after ORIGIN"
            return Malformed("empty_sequence", f"{where()}: {said}", number)
        if len(sequence) != length:
            return Malformed(
                "length_mismatch", f"{where()}: sequence has {len(sequence)} letters, LOCUS says {length}", number
            )
        return SequenceRecord(record_id, mol, sequence, number)

    with open_text(path, errors="surrogateescape") as handle:
        for line in _lines(handle, name, hint, nul_is_error=False):
            # the hot path, most lines of a file: sequence inside ORIGIN (plain ASCII, no NUL)
            if in_origin and line.isascii() and "\x00" not in line and not line.startswith(("//", "LOCUS")):
                chunks.append(line.translate(_STRIP_ORIGIN))
                continue
            if "\x00" in line or (not line.isascii() and is_binary(line)):
                if number == 0:
                    raise InputError(f"{name}: binary data near the start of the file, not a GenBank file")
                if open_record:
                    problem = problem or Malformed(
                        "binary_data", f"{where()}: binary data, not a text sequence file", number
                    )
                elif not junk:
                    junk = True
                    yield Malformed(
                        "binary_data", f"{name}: binary data after {hint()}, not a text sequence file", number
                    )
                continue
            if in_origin and not line.startswith(("//", "LOCUS")):  # sequence with non-ASCII text: not standard
                chunks.append(line.translate(_STRIP_ORIGIN))
            elif line.startswith("LOCUS"):
                if open_record:
                    yield problem or Malformed(
                        "truncated_record", f"{where()} has no ORIGIN/'//' before the next LOCUS", number
                    )
                number += 1
                open_record, in_origin, chunks, problem, junk = True, False, [], None, False
                try:
                    locus = parse_locus(line, f"{name}: record {number}")
                except InputError as exc:
                    locus, problem = ("", 0, ""), Malformed("malformed_locus", str(exc), number)
            elif line.startswith("//"):
                if open_record:
                    yield close()
                    open_record = in_origin = False
                else:
                    yield Malformed("stray_line", f"{name}: '//' outside a record near {hint()}", number)
            elif line.startswith("ORIGIN"):
                if open_record:
                    in_origin = True
                else:
                    yield Malformed("stray_line", f"{name}: ORIGIN outside a record near {hint()}", number)
    if open_record:
        yield problem or Malformed("truncated_record", f"{where()} is truncated (file ends before '//')", number)
    if number == 0:
        raise InputError(f"{name}: no GenBank records (no LOCUS line)")


def read_genbank(path: str | Path) -> Iterator[SequenceRecord]:
    """Stream the records of a GenBank flat file (plain, .gz, .xz, or ``-`` for stdin); a malformed record
    is an :class:`InputError` naming file and record."""
    for item in scan_genbank(path):
        if isinstance(item, Malformed):
            raise InputError(item.message)
        yield item

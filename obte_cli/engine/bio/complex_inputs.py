"""Protein–nucleic-acid complexes from FASTA files: what `obte affinity` predicts for.

* proteins: every record must use the 20 standard amino acids (an error names the file, record and
  position otherwise; with ``on_unknown="unk"`` other letters are let through, for the tokenizer to read
  as ``<unk>``); a file whose records all look like nucleic acid is refused, as the arguments were most
  likely swapped;
* nucleic acids: A/C/G/T/U only (or, with ``on_unknown="unk"``, any letters); a record is RNA if it has U
  and no T, else DNA (or fixed by the caller);
* pairing: ``all`` (every protein with every nucleic acid) or ``zip`` (the i-th with the i-th);
* complementary strand: ``auto`` adds the reverse complement to DNA (a double-stranded site, as most of
  ProNAB's DNA measurements) and leaves RNA single-stranded; ``none`` never adds one; or a FASTA file
  with one complement per nucleic-acid record, in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from obte_cli.engine.bio.molecules import AMINO_ACIDS, detect_molecule_type
from obte_cli.engine.bio.seqio import display_name, read_fasta
from obte_cli.engine.core.errors import InputError, UnknownResidueError

PAIRING_CHOICES = ("all", "zip")
_AMINO = frozenset(AMINO_ACIDS)
_NUCLEIC = frozenset("ACGTU")
_COMPLEMENT = str.maketrans("ACGTU", "TGCAA")


@dataclass(frozen=True)
class NamedSequence:
    id: str
    sequence: str  # upper case; nucleic acids with U written as T
    source: str  # "file: record N ('id')", for error messages
    na_type: str = ""  # DNA or RNA for nucleic acids


@dataclass(frozen=True)
class Complex:
    protein: NamedSequence
    nucleic_acid: NamedSequence
    complement: str  # "" when single-stranded


def _where(path: str | Path, number: int, record_id: str) -> str:
    return f"{display_name(path)}: record {number} ('{record_id}')"


def _first_bad_letter(sequence: str, alphabet: frozenset) -> tuple[int, str] | None:
    for i, letter in enumerate(sequence):
        if letter not in alphabet:
            return i + 1, letter
    return None


def read_proteins(path: str | Path, on_unknown: str = "error") -> list[NamedSequence]:
    proteins = []
    for record in read_fasta(path):
        sequence = record.sequence.upper()
        where = _where(path, record.number, record.id)
        bad = _first_bad_letter(sequence, _AMINO) if on_unknown == "error" else None
        if bad:
            position, letter = bad
            raise UnknownResidueError(
                record.id,
                position,
                letter,
                "protein",
                f"{where}: non-standard amino acid {letter!r} at position {position}, not one of the 20 standard ones",
            )
        proteins.append(NamedSequence(record.id, sequence, where))
    if all(detect_molecule_type(p.sequence).modality == "nucleic" for p in proteins):
        raise InputError(
            f"{display_name(path)}: every record looks like a nucleic acid, not a protein (arguments swapped?)"
        )
    return proteins


def read_nucleic_acids(path: str | Path, na_type: str = "auto", on_unknown: str = "error") -> list[NamedSequence]:
    if na_type not in ("auto", "DNA", "RNA"):
        raise InputError(f"--na-type must be auto, DNA or RNA (got {na_type!r})")
    acids = []
    for record in read_fasta(path):
        sequence = record.sequence.upper()
        where = _where(path, record.number, record.id)
        bad = _first_bad_letter(sequence, _NUCLEIC) if on_unknown == "error" else None
        if bad:
            position, letter = bad
            raise UnknownResidueError(
                record.id,
                position,
                letter,
                "nucleic acid",
                f"{where}: {letter!r} at position {position} is not a nucleotide A, C, G, T or U",
            )
        kind = na_type if na_type != "auto" else ("RNA" if "U" in sequence and "T" not in sequence else "DNA")
        acids.append(NamedSequence(record.id, sequence.replace("U", "T"), where, kind))
    return acids


def reverse_complement(sequence: str) -> str:
    return sequence.translate(_COMPLEMENT)[::-1]


def complements_for(acids: list[NamedSequence], complement: str, on_unknown: str = "error") -> list[str]:
    """One complementary strand (or "") per nucleic acid, following the ``complement`` policy."""
    if complement == "none":
        return [""] * len(acids)
    if complement == "auto":
        return [reverse_complement(a.sequence) if a.na_type == "DNA" else "" for a in acids]
    strands = read_nucleic_acids(complement, on_unknown=on_unknown)
    if len(strands) != len(acids):
        raise InputError(
            f"{display_name(complement)}: {len(strands)} complementary strands for {len(acids)} nucleic acids "
            "(give one per nucleic-acid record, in the same order)"
        )
    return [s.sequence for s in strands]


def pair_complexes(
    proteins: list[NamedSequence], acids: list[NamedSequence], complements: list[str], pairing: str
) -> Iterator[Complex]:
    """The complexes to predict, lazily (``all`` can be large); the pairing is checked right away."""
    if pairing not in PAIRING_CHOICES:
        raise InputError(f"--pairs must be one of {', '.join(PAIRING_CHOICES)} (got {pairing!r})")
    if pairing == "zip" and len(proteins) != len(acids):
        raise InputError(f"--pairs zip needs as many proteins as nucleic acids ({len(proteins)} vs {len(acids)})")
    if pairing == "zip":
        return (Complex(p, a, c) for p, a, c in zip(proteins, acids, complements))
    return (Complex(p, a, c) for p in proteins for a, c in zip(acids, complements))

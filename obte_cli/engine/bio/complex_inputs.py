"""Protein–nucleic-acid complexes from FASTA files: what `obte affinity` predicts for.

* proteins: every record must use the 20 standard amino acids (an error names the file, record and
  position otherwise; with ``on_unknown="unk"`` other letters are let through, for the tokenizer to read
  as ``<unk>``); a file whose records all look like nucleic acid is refused, as the arguments were most
  likely swapped;
* nucleic acids: A/C/G/T/U only (or, with ``on_unknown="unk"``, other letters too, but not mostly: a strand
  of mostly letters other than A/C/G/T/U/N is a protein in the wrong place), stored with U written as T;
  the molecule type is fixed by the caller (``DNA``/``RNA``) or, with ``auto``, RNA if the strand has a U
  and otherwise DNA. The latter is only a guess: ProNAB and many labs write RNA with T, so a strand of
  A/C/G/T alone is marked :attr:`NamedSequence.na_type_assumed` for the caller to say so;
* pairing: ``all`` (every protein with every nucleic acid) or ``zip`` (the i-th with the i-th);
* complementary strand, never invented: ``none`` leaves every strand single-stranded, ``revcomp`` adds
  the reverse complement of every strand (a double-stranded site), and a FASTA file gives one complement
  per nucleic-acid record, in the same order, where an empty record leaves that strand single-stranded.
  The former ``auto`` (the reverse complement for every DNA, so single-stranded DNA became a duplex) is
  refused with a message naming what replaced it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from obte_cli.engine.bio.molecules import AMINO_ACIDS, detect_molecule_type
from obte_cli.engine.bio.seqio import Malformed, display_name, read_fasta, scan_fasta
from obte_cli.engine.core.errors import InputError, UnknownResidueError

PAIRING_CHOICES = ("all", "zip")
NA_TYPE_CHOICES = ("auto", "DNA", "RNA")
COMPLEMENT_CHOICES = ("none", "revcomp")  # or the path of a FASTA file of complements
_AMINO = frozenset(AMINO_ACIDS)
_NUCLEIC = frozenset("ACGTU")
_NUCLEIC_OR_ANY = frozenset("ACGTUN")  # N: any nucleotide, the commonest letter beyond A/C/G/T/U
_COMPLEMENT = str.maketrans("ACGTU", "TGCAA")


@dataclass(frozen=True)
class NamedSequence:
    id: str
    sequence: str  # upper case; nucleic acids with U written as T
    source: str  # "file: record N ('id')", for error messages
    na_type: str = ""  # DNA or RNA for nucleic acids
    na_type_assumed: bool = False  # DNA only because the strand has no U (--na-type auto): a guess


@dataclass(frozen=True)
class Complex:
    protein: NamedSequence
    nucleic_acid: NamedSequence
    complement: str  # "" when single-stranded


def _where(path: str | Path, number: int, record_id: str) -> str:
    return f"{display_name(path)}: record {number} ('{record_id}')"


def _refuse_unknown(record_id: str, sequence: str, alphabet: frozenset, kind: str, message: str, where: str) -> None:
    """UnknownResidueError at the first letter outside ``alphabet``; ``message`` is formatted with
    ``letter`` and ``position`` (1-based) and prefixed with ``where``."""
    for i, letter in enumerate(sequence):
        if letter not in alphabet:
            position = i + 1
            text = message.format(letter=letter, position=position)
            raise UnknownResidueError(record_id, position, letter, kind, f"{where}: {text}")


def protein_record(record_id: str, sequence: str, where: str, on_unknown: str = "error") -> NamedSequence:
    """One protein, upper case, its letters checked (``where`` names it in errors)."""
    sequence = sequence.upper()
    if not sequence:
        raise InputError(f"{where}: no protein sequence")
    if detect_molecule_type(sequence).modality == "nucleic":  # as a nucleic acid of amino acids is refused
        raise InputError(
            f"{where}: looks like a nucleic acid, not a protein (only A, C, G, T, U and N; arguments swapped?)"
        )
    if on_unknown == "error":
        _refuse_unknown(
            record_id,
            sequence,
            _AMINO,
            "protein",
            "non-standard amino acid {letter!r} at position {position}, not one of the 20 standard ones",
            where,
        )
    return NamedSequence(record_id, sequence, where)


def _refuse_protein_as_nucleic_acid(sequence: str, where: str) -> None:
    """Unknown letters let through (``on_unknown="unk"``) are a few in a strand; a strand of mostly other
    letters is a protein given as the nucleic acid, whose ΔG would be a number about nothing."""
    others = sum(letter not in _NUCLEIC_OR_ANY for letter in sequence)
    if others > len(sequence) / 2:
        raise InputError(
            f"{where}: looks like a protein, not a nucleic acid ({others} of {len(sequence)} letters are not "
            "A, C, G, T, U or N)"
        )


def nucleic_acid_record(
    record_id: str, sequence: str, where: str, na_type: str = "auto", on_unknown: str = "error"
) -> NamedSequence:
    """One nucleic-acid strand, upper case with U written as T, its letters checked and its type fixed:
    ``na_type`` DNA or RNA, or ``auto`` (RNA if it has a U, else DNA, marked as assumed)."""
    if na_type not in NA_TYPE_CHOICES:
        raise InputError(f"{where}: molecule type must be auto, DNA or RNA (got {na_type!r})")
    sequence = sequence.upper()
    if not sequence:
        raise InputError(f"{where}: no nucleic-acid sequence")
    if on_unknown == "error":
        _refuse_unknown(
            record_id,
            sequence,
            _NUCLEIC,
            "nucleic acid",
            "{letter!r} at position {position} is not a nucleotide A, C, G, T or U",
            where,
        )
    else:
        _refuse_protein_as_nucleic_acid(sequence, where)
    assumed = na_type == "auto" and "U" not in sequence
    kind = na_type if na_type != "auto" else ("DNA" if assumed else "RNA")
    return NamedSequence(record_id, sequence.replace("U", "T"), where, kind, assumed)


def read_proteins(path: str | Path, on_unknown: str = "error") -> list[NamedSequence]:
    return [
        protein_record(record.id, record.sequence, _where(path, record.number, record.id), on_unknown)
        for record in read_fasta(path)
    ]


def read_nucleic_acids(path: str | Path, na_type: str = "auto", on_unknown: str = "error") -> list[NamedSequence]:
    if na_type not in NA_TYPE_CHOICES:
        raise InputError(f"--na-type must be auto, DNA or RNA (got {na_type!r})")
    return [
        nucleic_acid_record(record.id, record.sequence, _where(path, record.number, record.id), na_type, on_unknown)
        for record in read_fasta(path)
    ]


def reverse_complement(sequence: str) -> str:
    return sequence.translate(_COMPLEMENT)[::-1]


def _read_complements(path: str | Path, on_unknown: str) -> list[str]:
    """The strands of a complements FASTA, "" for an empty record (that nucleic acid stays single-stranded)."""
    strands = []
    for item in scan_fasta(path):
        if isinstance(item, Malformed):
            if item.reason != "empty_sequence":
                raise InputError(item.message)
            strands.append("")
        else:
            where = _where(path, item.number, item.id)
            strands.append(nucleic_acid_record(item.id, item.sequence, where, "DNA", on_unknown).sequence)
    return strands


def complements_for(acids: list[NamedSequence], complement: str, on_unknown: str = "error") -> list[str]:
    """One complementary strand (or "" for none) per nucleic acid: ``none``, ``revcomp`` or a FASTA file
    (see the module docstring). Nothing is added that the caller did not ask for."""
    if complement == "none":
        return [""] * len(acids)
    if complement == "revcomp":
        return [reverse_complement(a.sequence) for a in acids]
    if complement == "auto":
        raise InputError(
            "--complement auto is no more: it added a reverse complement to every DNA, making single-stranded "
            "DNA a duplex; use 'revcomp' for double-stranded sites, 'none' (the default) for single strands, "
            "or a FASTA of complements"
        )
    strands = _read_complements(complement, on_unknown)
    if len(strands) != len(acids):
        raise InputError(
            f"{display_name(complement)}: {len(strands)} complementary strands for {len(acids)} nucleic acids "
            "(give one per nucleic-acid record, in the same order; an empty record for a single strand)"
        )
    return strands


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


def read_fasta_complexes(
    proteins: str | Path,
    nucleic_acids: str | Path,
    complement: str = "none",
    na_type: str = "auto",
    on_unknown: str = "error",
    pairing: str = "all",
) -> tuple[Iterator[Complex], int]:
    """The complexes of a protein FASTA and a nucleic-acid FASTA (``obte affinity PROTEINS NUCLEIC_ACIDS``): each
    strand with its ``complement`` (:func:`complements_for`), paired with the proteins by ``pairing``
    (:func:`pair_complexes`, lazily); and how many nucleic acids ``na_type`` auto took as DNA for want of a U."""
    protein_records = read_proteins(proteins, on_unknown)
    acids = read_nucleic_acids(nucleic_acids, na_type, on_unknown)
    strands = complements_for(acids, complement, on_unknown)
    return pair_complexes(protein_records, acids, strands, pairing), sum(a.na_type_assumed for a in acids)

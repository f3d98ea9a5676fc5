"""Records → :class:`~obte_cli.engine.tokenizers.base.Segment`\\ s: what `obte embed`, `obte score` and `obte predict`
read, from FASTA files or from (id, sequence) pairs held in memory (the Python API, :mod:`obte_cli.api`).

Each record's molecule type is the one given (``fixed``) or, with None, detected from its letters
(:func:`~obte_cli.engine.bio.molecules.detect_molecule_type`: only A/C/G/T/U/N is nucleic, anything else protein).
A pair in memory is read as a FASTA record would be: whitespace inside the sequence is dropped and case kept; an
empty id or an empty sequence is an :class:`InputError` naming the record.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from obte_cli.engine.bio.molecules import MoleculeType, detect_molecule_type
from obte_cli.engine.bio.seqio import display_name, read_fasta
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.tokenizers.base import Segment


def source_segments(
    sources: Iterable[tuple[str, Iterable]], fixed: MoleculeType | None, rank: int = 0, world_size: int = 1
) -> Iterator[Segment]:
    """Segments of the records of ``sources``, (name, records) pairs: a file's name for error messages and its
    records (anything with ``id`` and ``sequence``: FASTA records, a BED file's regions), in order; of molecule
    type ``fixed`` or detected per record; under torchrun only this ``rank``'s share (every ``world_size``-th
    record of them all)."""
    index = 0
    for name, records in sources:
        for record in records:
            if index % world_size == rank:
                mol = fixed or detect_molecule_type(record.sequence)
                yield Segment(record.sequence, mol.name, record.id, name)
            index += 1


def fasta_segments(
    paths: Iterable[str | Path], fixed: MoleculeType | None, rank: int = 0, world_size: int = 1
) -> Iterator[Segment]:
    """The records of the FASTA files ``paths`` as segments (see :func:`source_segments`)."""
    return source_segments(((display_name(p), read_fasta(p)) for p in paths), fixed, rank, world_size)


def checked_pairs(records: Iterable[tuple[str, str]]) -> Iterator[tuple[int, str, str]]:
    """(number, id, sequence) of each (id, sequence) pair, numbered from 1, its sequence without whitespace;
    an id that is not a non-empty string, a sequence that is not a string or is empty, or an item that is not a
    pair is an :class:`InputError` naming the record."""
    for number, pair in enumerate(records, start=1):
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise InputError(f"record {number}: expected an (id, sequence) pair, got {type(pair).__name__}")
        record_id, sequence = pair
        if not isinstance(record_id, str) or not record_id.strip():
            raise InputError(f"record {number}: the id must be a non-empty string (got {record_id!r})")
        if not isinstance(sequence, str):
            kind = type(sequence).__name__
            raise InputError(f"record {number} ('{record_id}'): the sequence must be a string, not {kind}")
        sequence = "".join(sequence.split())
        if not sequence:
            raise InputError(f"record {number} ('{record_id}') has no sequence")
        yield number, record_id, sequence


def pair_segments(records: Iterable[tuple[str, str]], fixed: MoleculeType | None) -> Iterator[Segment]:
    """(id, sequence) pairs as segments, in order, as :func:`fasta_segments` reads a FASTA record."""
    for _, record_id, sequence in checked_pairs(records):
        mol = fixed or detect_molecule_type(sequence)
        yield Segment(sequence, mol.name, record_id)

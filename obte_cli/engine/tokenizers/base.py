"""Tokenizers: sequences of molecules → token ids, with the residues each token covers.

Two kinds share one API:

* :class:`ResidueTokenizer` — one token per amino acid or nucleotide. Protein letters and nucleotide
  letters have disjoint ids (protein ``A`` is not adenine ``A``).
* :class:`SentencePieceTokenizer` — byte-pair pieces from one or more sentencepiece models. With one
  model serving both modalities it reproduces the OmniBioTE reference layout exactly (the 65,536-piece
  ``mixed_bpe.model``, where protein and nucleic pieces *do* share ids and only the tag tells them
  apart); with one model per modality, the protein model's ids are offset past the nucleic model's so
  the two never collide (the paper's 2^11 + 2^11 design).

Input layout (the reference's): every sequence is ``<tag> residues... <EOS>``, and an input built from
several molecules (protein, DNA, complementary strand) is their concatenation::

    <protein> M K V ... <EOS> <DNA> A C G ... <EOS> <DNA> T G C ... <EOS>

``encode(records)`` takes records — each a list of :class:`Segment` — and returns one
:class:`Encoding` per record: the ids, and for every token the segment it belongs to and the residue
range ``[start, end)`` it covers (``-1`` for tags and ``<EOS>``). Per-residue tasks use those spans to
map residues to tokens and back.

Residues are upper-cased; nucleic U is read as T (one token for both, the tag says RNA) and written
back as U when decoding an RNA type. Letters outside the standard alphabets (20 amino acids; A/C/G/T/U)
raise :class:`UnknownResidueError` naming record and 1-based position, or with ``on_unknown="unk"``
become one ``<unk>`` token each (BPE never merges across them). Every tokenizer has a ``<unk>`` id
(``unk_id``, one for both modalities), so a model fine-tuned on such inputs reads them the same way later.
"""

from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from obte_cli.engine.bio.molecules import (
    AMINO_ACIDS,
    MOLECULE_TYPES,
    NUCLEIC,
    NUCLEOTIDES,
    PROTEIN,
    MoleculeType,
    molecule_type,
)
from obte_cli.engine.core.errors import (
    InputError,
    ModelFormatError,
    UnknownResidueError,
)

TOKENIZER_FILE = "tokenizer.json"
ON_UNKNOWN_CHOICES = ("error", "unk")
_STANDARD = {PROTEIN: frozenset(AMINO_ACIDS), NUCLEIC: frozenset(NUCLEOTIDES)}


@dataclass(frozen=True)
class Segment:
    """One molecule of an input: its residues, its molecule type and a name for error messages."""

    sequence: str
    molecule: str = "protein"
    name: str = ""
    source: str = ""  # the file it was read from, for engines that read several (see naming_source)


@contextlib.contextmanager
def naming_source(segment: Segment) -> Iterator[None]:
    """An :class:`InputError` about ``segment`` raised in the block also names the file it came from:
    records of several files reach the engine as one stream, so only the segment knows its file."""
    try:
        yield
    except InputError as exc:
        if not segment.source:
            raise
        raise exc.within(segment.source) from None


@dataclass
class Encoding:
    """Token ids of one record and, per token, the residues it covers.

    ``segment[t]`` is the index of the segment token ``t`` belongs to (its tag and ``<EOS>`` included);
    ``start[t]:end[t]`` is the half-open residue range it covers within that segment, ``-1:-1`` for
    tags and ``<EOS>``.
    """

    ids: np.ndarray  # (T,) int64
    segment: np.ndarray  # (T,) int32
    start: np.ndarray  # (T,) int32
    end: np.ndarray  # (T,) int32

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def is_residue(self) -> np.ndarray:
        """Boolean mask of tokens that cover residues (not tags, not <EOS>)."""
        return self.start >= 0

    def residue_to_token(self, segment: int) -> np.ndarray:
        """For each residue of ``segment``, the index of the token that covers it."""
        rows = np.flatnonzero((self.segment == segment) & self.is_residue)
        lengths = self.end[rows] - self.start[rows]
        return np.repeat(rows, lengths)


@dataclass
class _Prepared:
    mol: MoleculeType
    text: str  # canonical letters: upper case, nucleic U → T
    unknown: np.ndarray  # sorted 0-based positions of non-standard letters


def canonical_sequence(sequence: str, mol: MoleculeType) -> str:
    """Upper-case, and for nucleic acids write U as T (the storage alphabet)."""
    text = sequence.upper()
    if mol.modality == NUCLEIC:
        text = text.replace("U", "T")
    return text


def display_sequence(text: str, mol: MoleculeType) -> str:
    """Inverse of :func:`canonical_sequence` for display: RNA types are written with U."""
    return text.replace("T", "U") if mol.is_rna else text


def _prepare(segment: Segment, on_unknown: str) -> _Prepared:
    try:
        mol = molecule_type(segment.molecule)
    except KeyError as exc:
        raise InputError(f"record '{segment.name}': {exc.args[0]}") from None
    text = canonical_sequence(segment.sequence, mol)
    standard = _STANDARD[mol.modality]
    if set(text) <= standard:  # the common case, checked at C speed
        unknown = np.zeros(0, dtype=np.int64)
    else:
        unknown = np.array([i for i, c in enumerate(text) if c not in standard], dtype=np.int64)
    if unknown.size and on_unknown == "error":
        pos = int(unknown[0])
        raise UnknownResidueError(segment.name, pos + 1, segment.sequence[pos], mol.name)
    if not text:
        raise InputError(f"record '{segment.name}': empty {mol.name} sequence")
    return _Prepared(mol, text, unknown)


def check_standard(segments: Iterable[Segment]) -> None:
    """Raise what ``on_unknown="error"`` raises (:class:`UnknownResidueError` for the first letter outside
    the standard alphabets, :class:`InputError` for an empty sequence or unknown type) without encoding:
    for inputs that are encoded later with ``on_unknown="unk"`` whatever the user chose."""
    for segment in segments:
        _prepare(segment, "error")


def unknown_letters(segment: Segment) -> Counter:
    """How often each letter outside the standard alphabet of ``segment``'s modality occurs in it (after
    the canonical upper-casing): what ``on_unknown="unk"`` turns into ``<unk>``, for reporting."""
    try:
        mol = molecule_type(segment.molecule)
    except KeyError:
        return Counter()
    text = canonical_sequence(segment.sequence, mol)
    standard = _STANDARD[mol.modality]
    return Counter() if set(text) <= standard else Counter(c for c in text if c not in standard)


def _runs(text: str, unknown: np.ndarray) -> list[tuple[int, int]]:
    """Half-open ranges of standard letters between the unknown positions."""
    runs, start = [], 0
    for pos in unknown.tolist():
        if pos > start:
            runs.append((start, pos))
        start = pos + 1
    if start < len(text):
        runs.append((start, len(text)))
    return runs


class Tokenizer(ABC):
    """Common interface of all tokenizers (see module docstring)."""

    kind: str
    pad_id: int
    mask_id: int
    unk_id: int

    # ---- vocabulary -------------------------------------------------------------------------
    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @abstractmethod
    def special_ids(self) -> np.ndarray:
        """Ids that never stand for residues: pad, mask, unk, every <EOS> and every tag."""

    @abstractmethod
    def residue_ids(self, modality: str) -> np.ndarray:
        """Ids that can stand for residues of ``modality`` (``protein`` or ``nucleic``)."""

    def residue_length(self, token_id: int) -> int:
        """How many residues a residue token stands for (1 for a per-residue tokenizer; a BPE piece's length)."""
        for modality, mol in ((PROTEIN, MOLECULE_TYPES["protein"]), (NUCLEIC, MOLECULE_TYPES["DNA"])):
            if token_id in self._residue_id_set(modality):
                return len(self._residue_text(token_id, mol))
        return 0

    def _residue_id_set(self, modality: str) -> frozenset[int]:
        cache = self.__dict__.setdefault("_residue_id_sets", {})
        if modality not in cache:
            cache[modality] = frozenset(int(i) for i in self.residue_ids(modality))
        return cache[modality]

    @abstractmethod
    def token_text(self, token_id: int) -> str:
        """Human-readable text of one id (a piece, a letter or a special token)."""

    # ---- encoding ---------------------------------------------------------------------------
    @abstractmethod
    def _tag_id(self, mol: MoleculeType) -> int: ...

    @abstractmethod
    def _eos_id(self, mol: MoleculeType) -> int: ...

    @abstractmethod
    def _encode_body(self, prepared: _Prepared) -> tuple[list[int], list[int]]:
        """Ids and residue lengths of the tokens that cover ``prepared.text``."""

    def encode_one(self, segments: Sequence[Segment], on_unknown: str = "error") -> Encoding:
        if on_unknown not in ON_UNKNOWN_CHOICES:
            raise ValueError(f"on_unknown must be one of {ON_UNKNOWN_CHOICES}")
        if not segments:
            raise InputError("a record needs at least one sequence")
        ids: list[int] = []
        seg: list[int] = []
        start: list[int] = []
        end: list[int] = []
        for index, segment in enumerate(segments):
            prepared = _prepare(segment, on_unknown)
            body_ids, lengths = self._encode_body(prepared)
            ends = np.cumsum(lengths, dtype=np.int64)
            if len(body_ids) != len(lengths) or (ends[-1] if len(ends) else 0) != len(prepared.text):
                raise ModelFormatError(f"{self.kind} tokenizer: pieces do not cover record '{segment.name}' exactly")
            ids += [self._tag_id(prepared.mol), *body_ids, self._eos_id(prepared.mol)]
            seg += [index] * (len(body_ids) + 2)
            start += [-1, *(ends - np.asarray(lengths)).tolist(), -1]
            end += [-1, *ends.tolist(), -1]
        return Encoding(
            np.asarray(ids, dtype=np.int64),
            np.asarray(seg, dtype=np.int32),
            np.asarray(start, dtype=np.int32),
            np.asarray(end, dtype=np.int32),
        )

    def encode(self, records: Iterable[Sequence[Segment]], on_unknown: str = "error") -> list[Encoding]:
        """Encode records (each a list of segments) into one :class:`Encoding` each."""
        return [self.encode_one(segments, on_unknown) for segments in records]

    # ---- decoding ---------------------------------------------------------------------------
    @abstractmethod
    def _tag_molecule(self, token_id: int) -> MoleculeType | None:
        """The molecule type a tag id stands for, or None if the id is no tag."""

    @abstractmethod
    def _is_eos(self, token_id: int) -> bool: ...

    def end_ids(self) -> frozenset[int]:
        """Every id that ends a segment (``<EOS>``; some tokenizers have one per modality)."""
        return frozenset(i for i in range(self.vocab_size) if self._is_eos(i))

    @abstractmethod
    def _residue_text(self, token_id: int, mol: MoleculeType) -> str: ...

    def decode(self, ids: Iterable[int]) -> list[Segment]:
        """Turn ids back into segments (tags give molecule types; pad tokens between sequences are skipped, a
        pad inside one is an error: decoding would drop it and shorten the sequence without a word)."""
        segments: list[Segment] = []
        mol: MoleculeType | None = None
        letters: list[str] = []
        for position, token_id in enumerate((int(i) for i in ids), start=1):
            if token_id == self.pad_id:
                if mol is not None:
                    raise InputError(f"token ids: <pad> (id {token_id}) at position {position}, inside a sequence")
                continue
            tag = self._tag_molecule(token_id)
            if tag is not None:
                if mol is not None:
                    raise InputError("token ids: a tag starts a new sequence before the previous one ended")
                mol, letters = tag, []
            elif self._is_eos(token_id):
                if mol is None:
                    raise InputError("token ids: <EOS> without a preceding tag")
                segments.append(Segment(display_sequence("".join(letters), mol), mol.name))
                mol = None
            else:
                if mol is None:
                    raise InputError(f"token ids: id {token_id} outside a tagged sequence")
                letters.append(self._residue_text(token_id, mol))
        if mol is not None:
            raise InputError("token ids: the last sequence has no <EOS>")
        return segments

    # ---- persistence ------------------------------------------------------------------------
    @abstractmethod
    def to_config(self) -> dict: ...

    @abstractmethod
    def save(self, directory: Path) -> list[str]:
        """Write tokenizer.json and any model files into ``directory``; return the file names."""


def encode_prefix_to_fit(
    tokenizer: Tokenizer,
    segments: Sequence[Segment],
    context: int,
    empty_message: str | None = None,
    on_unknown: str = "error",
) -> Encoding:
    """Encode ``segments`` with the *first* one cut to its longest prefix that lets the whole encoding
    (tags and ``<EOS>`` included) fit in ``context`` tokens — the ``--truncate`` behaviour (cuts at the
    C-/3'-terminal end; later segments, e.g. a complex's nucleic acids, stay whole). Each step cuts as
    many residues as the excess tokens cover at the first segment's current residues-per-token rate,
    so BPE inputs converge in a few encodes. ``empty_message`` is the error when no residue fits."""
    first = segments[0]
    encoding = tokenizer.encode_one(segments, on_unknown=on_unknown)
    keep = len(first.sequence)
    while len(encoding) > context:
        first_tokens = int((encoding.segment == 0).sum()) - 2  # without its tag and <EOS>
        residues_per_token = keep / max(first_tokens, 1)
        keep -= max(1, math.ceil((len(encoding) - context) * residues_per_token))
        if keep < 1:
            raise InputError(empty_message or f"record '{first.name}': a context of {context} tokens holds no residue")
        encoding = tokenizer.encode_one(
            [Segment(first.sequence[:keep], first.molecule, first.name), *segments[1:]], on_unknown=on_unknown
        )
    return encoding

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
become one ``<unk>`` token each (BPE never merges across them).
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from obte_cli.engine.bio.molecules import (
    AMINO_ACIDS,
    MOLECULE_TYPES,
    NUCLEIC,
    NUCLEOTIDES,
    PROTEIN,
    RESIDUE_LAYOUT_TYPES,
    MoleculeType,
    molecule_type,
    tag_chain,
)
from obte_cli.engine.core.errors import (
    InputError,
    ModelFormatError,
    UnknownResidueError,
)
from obte_cli.engine.core.jsonfiles import read_json_file

TOKENIZER_FILE = "tokenizer.json"
ON_UNKNOWN_CHOICES = ("error", "unk")
_STANDARD = {PROTEIN: frozenset(AMINO_ACIDS), NUCLEIC: frozenset(NUCLEOTIDES)}


@dataclass(frozen=True)
class Segment:
    """One molecule of an input: its residues, its molecule type and a name for error messages."""

    sequence: str
    molecule: str = "protein"
    name: str = ""


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

    @abstractmethod
    def _residue_text(self, token_id: int, mol: MoleculeType) -> str: ...

    def decode(self, ids: Iterable[int]) -> list[Segment]:
        """Turn ids back into segments (tags give molecule types; pad tokens are skipped)."""
        segments: list[Segment] = []
        mol: MoleculeType | None = None
        letters: list[str] = []
        for token_id in (int(i) for i in ids):
            if token_id == self.pad_id:
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


# =============================================================================================
# Per-residue tokenizer
# =============================================================================================
def default_residue_vocabulary() -> dict:
    """The default per-residue layout: specials, one tag per molecule type, A C G T, 20 amino acids."""
    ids = iter(range(10_000))
    specials = {name: next(ids) for name in ("pad", "mask", "eos", "unk")}
    tags = {name: next(ids) for name in RESIDUE_LAYOUT_TYPES}
    nucleic = {letter: next(ids) for letter in NUCLEOTIDES}
    protein = {letter: next(ids) for letter in AMINO_ACIDS}
    return {"kind": "residue", "specials": specials, "tags": tags, "nucleic": nucleic, "protein": protein}


class ResidueTokenizer(Tokenizer):
    """One token per residue; the id table is data (``tokenizer.json``), so other layouts load too."""

    kind = "residue"

    def __init__(self, vocabulary: dict | None = None):
        vocab = vocabulary or default_residue_vocabulary()
        try:
            self.specials = {k: int(v) for k, v in vocab["specials"].items()}
            self.tags = {molecule_type(k).name: int(v) for k, v in vocab["tags"].items()}
            self.letters = {
                PROTEIN: {k.upper(): int(v) for k, v in vocab["protein"].items()},
                NUCLEIC: {k.upper(): int(v) for k, v in vocab["nucleic"].items()},
            }
            self.pad_id = self.specials["pad"]
            self.mask_id = self.specials["mask"]
            self.unk_id = self.specials["unk"]
            self.eos_id = self.specials["eos"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFormatError(f"residue tokenizer: malformed vocabulary ({exc})") from None
        for modality, table in self.letters.items():
            if not set(table) >= _STANDARD[modality]:
                missing = "".join(sorted(_STANDARD[modality] - set(table)))
                raise ModelFormatError(f"residue tokenizer: no {modality} ids for letters {missing}")
        all_ids = [*self.specials.values(), *self.tags.values(), *self.letters[PROTEIN].values(), *self.letters[NUCLEIC].values()]
        if len(set(all_ids)) != len(all_ids):
            raise ModelFormatError("residue tokenizer: two entries share an id")
        self._size = max(all_ids) + 1
        self._tag_of_id = {i: MOLECULE_TYPES[name] for name, i in self.tags.items()}
        self._text_of_id = {i: f"<{name}>" for name, i in self.tags.items()}
        self._text_of_id.update({i: f"<{name}>" for name, i in self.specials.items()})
        self._letter_of_id = {}
        for table in self.letters.values():
            for letter, i in table.items():
                self._letter_of_id[i] = letter
                self._text_of_id[i] = letter
        # Byte → id lookup tables: encoding a sequence is one numpy gather.
        self._lut = {}
        for modality, table in self.letters.items():
            lut = np.full(256, -1, dtype=np.int64)
            for letter in _STANDARD[modality]:
                lut[ord(letter)] = table[letter]
            self._lut[modality] = lut

    @property
    def vocab_size(self) -> int:
        return self._size

    def special_ids(self) -> np.ndarray:
        return np.array(sorted({*self.specials.values(), *self.tags.values()}), dtype=np.int64)

    def residue_ids(self, modality: str) -> np.ndarray:
        return np.array(sorted(self.letters[modality].values()), dtype=np.int64)

    def token_text(self, token_id: int) -> str:
        return self._text_of_id.get(int(token_id), f"<id {token_id}>")

    def _tag_id(self, mol: MoleculeType) -> int:
        for name in tag_chain(mol):
            if name in self.tags:
                return self.tags[name]
        raise InputError(f"this tokenizer has no tag for molecule type {mol.name}")

    def _eos_id(self, mol: MoleculeType) -> int:
        return self.eos_id

    def _encode_body(self, prepared: _Prepared) -> tuple[list[int], list[int]]:
        raw = np.frombuffer(prepared.text.encode("ascii", errors="replace"), dtype=np.uint8)
        ids = self._lut[prepared.mol.modality][raw]
        ids[ids < 0] = self.unk_id  # only reached with on_unknown="unk"
        return ids.tolist(), [1] * len(ids)

    def _tag_molecule(self, token_id: int) -> MoleculeType | None:
        return self._tag_of_id.get(token_id)

    def _is_eos(self, token_id: int) -> bool:
        return token_id == self.eos_id

    def _residue_text(self, token_id: int, mol: MoleculeType) -> str:
        if token_id == self.unk_id:
            return "X" if mol.modality == PROTEIN else "N"
        letter = self._letter_of_id.get(token_id)
        if letter is None:
            raise InputError(f"token ids: id {token_id} is not a residue of this tokenizer")
        return letter

    def to_config(self) -> dict:
        return {
            "kind": self.kind,
            "specials": self.specials,
            "tags": self.tags,
            "nucleic": self.letters[NUCLEIC],
            "protein": self.letters[PROTEIN],
        }

    def save(self, directory: Path) -> list[str]:
        (Path(directory) / TOKENIZER_FILE).write_text(json.dumps(self.to_config(), indent=2) + "\n")
        return [TOKENIZER_FILE]


# =============================================================================================
# Sentencepiece (BPE) tokenizer
# =============================================================================================
DUMMY_PREFIX = "\u2581"  # '▁', sentencepiece's word-boundary mark
REFERENCE_SPECIAL_PIECES = {"pad": "<s>", "mask": "</s>", "eos": "<EOS>", "unk": "<unk>"}


class _Piecewise:
    """One sentencepiece model, the id offset it occupies and the modalities it serves."""

    def __init__(self, model_bytes: bytes, file: str, offset: int, modalities: list[str], special_pieces: dict):
        import sentencepiece as spm

        self.file = file
        self.model_bytes = model_bytes
        self.offset = offset
        self.modalities = list(modalities)
        self.sp = spm.SentencePieceProcessor(model_proto=model_bytes)
        self.size = self.sp.get_piece_size()
        pieces = [self.sp.id_to_piece(i) for i in range(self.size)]
        self.pieces = pieces
        self.index = {p: i for i, p in enumerate(pieces)}
        self.dummy = self.index.get(DUMMY_PREFIX)
        # residues covered by each piece ('▁' marks cover none); control pieces are fixed up below
        self.lengths = np.array([len(p.replace(DUMMY_PREFIX, "")) for p in pieces], dtype=np.int64)
        self.eos = self._local(special_pieces["eos"])
        self.tags = {}
        for name in MOLECULE_TYPES:
            if f"<{name}>" in self.index:
                self.tags[name] = self.index[f"<{name}>"]
        self.controls = {self.eos, *self.tags.values()}
        for name in ("pad", "mask", "unk"):
            if special_pieces[name] in self.index:
                self.controls.add(self.index[special_pieces[name]])
        for modality in self.modalities:
            missing = [c for c in sorted(_STANDARD[modality]) if c not in self.index]
            if missing:
                raise ModelFormatError(f"sentencepiece model {file}: no piece for {modality} letter(s) {''.join(missing)}")

    def _local(self, piece: str) -> int:
        if piece not in self.index:
            raise ModelFormatError(f"sentencepiece model {self.file}: no piece {piece!r}")
        return self.index[piece]

    def tag_piece(self, mol: MoleculeType) -> str | None:
        for name in tag_chain(mol):
            if name in self.tags:
                return f"<{name}>"
        return None


class SentencePieceTokenizer(Tokenizer):
    """BPE through sentencepiece; see the module docstring for the layouts it reproduces."""

    kind = "sentencepiece"

    def __init__(self, components: list[_Piecewise], special_pieces: dict | None = None):
        self.special_pieces = dict(special_pieces or REFERENCE_SPECIAL_PIECES)
        self.components = sorted(components, key=lambda c: c.offset)
        self._by_modality = {}
        for comp in self.components:
            for modality in comp.modalities:
                if modality in self._by_modality:
                    raise ModelFormatError(f"two sentencepiece models serve {modality} sequences")
                self._by_modality[modality] = comp
        for modality in (PROTEIN, NUCLEIC):
            if modality not in self._by_modality:
                raise ModelFormatError(f"no sentencepiece model serves {modality} sequences")
        for a, b in zip(self.components, self.components[1:]):
            if a.offset + a.size > b.offset:
                raise ModelFormatError(f"sentencepiece models {a.file} and {b.file} overlap in id space")
        first = self.components[0]
        self.pad_id = first.offset + first._local(self.special_pieces["pad"])
        self.mask_id = first.offset + first._local(self.special_pieces["mask"])
        self.unk_id = first.offset + first._local(self.special_pieces["unk"])
        self._tag_of_id = {}
        self._eos_ids = set()
        for comp in self.components:
            self._eos_ids.add(comp.offset + comp.eos)
            for name, local in comp.tags.items():
                self._tag_of_id[comp.offset + local] = MOLECULE_TYPES[name]

    # -- construction helpers --
    @classmethod
    def from_model_files(
        cls, files: dict[str, list[str]], special_pieces: dict | None = None
    ) -> SentencePieceTokenizer:
        """Build from ``{path: [modalities]}`` in id order: the first model at offset 0, the next after it."""
        comps, offset = [], 0
        pieces = dict(special_pieces or REFERENCE_SPECIAL_PIECES)
        for path, modalities in files.items():
            data = Path(path).read_bytes()
            comp = _Piecewise(data, Path(path).name, offset, modalities, pieces)
            comps.append(comp)
            offset += comp.size
        return cls(comps, pieces)

    @property
    def vocab_size(self) -> int:
        last = self.components[-1]
        return last.offset + last.size

    @property
    def shares_ids_across_modalities(self) -> bool:
        """True for a single mixed model (the v1 reference): the same id can be protein or nucleic."""
        return self._by_modality[PROTEIN] is self._by_modality[NUCLEIC]

    def special_ids(self) -> np.ndarray:
        ids = {self.pad_id, self.mask_id, self.unk_id}
        for comp in self.components:
            ids |= {comp.offset + c for c in comp.controls}
            if comp.dummy is not None:
                ids.add(comp.offset + comp.dummy)
        return np.array(sorted(ids), dtype=np.int64)

    def residue_ids(self, modality: str) -> np.ndarray:
        comp = self._by_modality[modality]
        local = np.flatnonzero(comp.lengths > 0)
        keep = np.array([i for i in local.tolist() if i not in comp.controls], dtype=np.int64)
        return keep + comp.offset

    def _component(self, token_id: int) -> _Piecewise:
        for comp in self.components:
            if comp.offset <= token_id < comp.offset + comp.size:
                return comp
        raise InputError(f"token ids: id {token_id} is outside the vocabulary (size {self.vocab_size})")

    def token_text(self, token_id: int) -> str:
        comp = self._component(int(token_id))
        return comp.pieces[int(token_id) - comp.offset]

    def _tag_id(self, mol: MoleculeType) -> int:
        comp = self._by_modality[mol.modality]
        piece = comp.tag_piece(mol)
        if piece is None:
            raise InputError(f"this tokenizer has no tag for molecule type {mol.name}")
        return comp.offset + comp.index[piece]

    def _eos_id(self, mol: MoleculeType) -> int:
        comp = self._by_modality[mol.modality]
        return comp.offset + comp.eos

    def _encode_body(self, prepared: _Prepared) -> tuple[list[int], list[int]]:
        comp = self._by_modality[prepared.mol.modality]
        tag = comp.tag_piece(prepared.mol)
        tag_local = comp.index[tag]
        ids: list[int] = []
        lengths: list[int] = []
        # Each run of standard letters is encoded behind its tag, exactly as the reference encodes
        # "<tag>SEQ<EOS>": the tag is an atomic user symbol, so the only extra piece is a lone '▁'
        # (the dummy prefix) in front of it, which the reference drops too.
        runs = _runs(prepared.text, prepared.unknown)
        texts = [tag + prepared.text[a:b] for a, b in runs]
        encoded = comp.sp.encode(texts) if texts else []
        cursor = 0
        for (a, b), local_ids in zip(runs, encoded):
            if cursor < a:  # unknown letters before this run: one <unk> each
                ids += [self.unk_id] * (a - cursor)
                lengths += [1] * (a - cursor)
            drop = 0
            while drop < len(local_ids) and local_ids[drop] in (comp.dummy, tag_local):
                drop += 1
            body = np.asarray(local_ids[drop:], dtype=np.int64)
            ids += (body + comp.offset).tolist()
            lengths += comp.lengths[body].tolist()
            cursor = b
        if cursor < len(prepared.text):
            ids += [self.unk_id] * (len(prepared.text) - cursor)
            lengths += [1] * (len(prepared.text) - cursor)
        return ids, lengths

    def _tag_molecule(self, token_id: int) -> MoleculeType | None:
        return self._tag_of_id.get(token_id)

    def _is_eos(self, token_id: int) -> bool:
        return token_id in self._eos_ids

    def _residue_text(self, token_id: int, mol: MoleculeType) -> str:
        if token_id == self.unk_id:
            return "X" if mol.modality == PROTEIN else "N"
        comp = self._component(token_id)
        local = token_id - comp.offset
        if local in comp.controls:
            raise InputError(f"token ids: control token {comp.pieces[local]!r} inside a sequence")
        return comp.pieces[local].replace(DUMMY_PREFIX, "")

    def to_config(self) -> dict:
        return {
            "kind": self.kind,
            "special_pieces": self.special_pieces,
            "components": [
                {
                    "file": comp.file,
                    "offset": comp.offset,
                    "modalities": comp.modalities,
                    "pieces": comp.size,
                    "sha256": hashlib.sha256(comp.model_bytes).hexdigest(),
                }
                for comp in self.components
            ],
        }

    def save(self, directory: Path) -> list[str]:
        directory = Path(directory)
        names = [TOKENIZER_FILE]
        for comp in self.components:
            (directory / comp.file).write_bytes(comp.model_bytes)
            names.append(comp.file)
        (directory / TOKENIZER_FILE).write_text(json.dumps(self.to_config(), indent=2) + "\n")
        return names


def encode_prefix_to_fit(tokenizer: Tokenizer, segments: Sequence[Segment], context: int,
                         empty_message: str | None = None, on_unknown: str = "error") -> Encoding:
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
        encoding = tokenizer.encode_one([Segment(first.sequence[:keep], first.molecule, first.name), *segments[1:]],
                                        on_unknown=on_unknown)
    return encoding


# =============================================================================================
# Loading
# =============================================================================================
def tokenizer_from_config(config: dict, directory: Path) -> Tokenizer:
    """Rebuild a tokenizer from its ``tokenizer.json`` contents; model files are read from ``directory``."""
    kind = config.get("kind")
    if kind == "residue":
        return ResidueTokenizer(config)
    if kind == "sentencepiece":
        comps = []
        pieces = config.get("special_pieces", REFERENCE_SPECIAL_PIECES)
        for entry in config.get("components", []):
            path = Path(directory) / entry["file"]
            if not path.is_file():
                raise ModelFormatError(f"{directory}: tokenizer file {entry['file']} is missing")
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if entry.get("sha256") and entry["sha256"] != digest:
                raise ModelFormatError(f"{path}: checksum differs from tokenizer.json (file replaced?)")
            comps.append(_Piecewise(data, entry["file"], int(entry["offset"]), entry["modalities"], pieces))
        if not comps:
            raise ModelFormatError(f"{directory}/{TOKENIZER_FILE}: no sentencepiece components")
        return SentencePieceTokenizer(comps, pieces)
    raise ModelFormatError(f"{directory}/{TOKENIZER_FILE}: unknown tokenizer kind {kind!r}")


def load_tokenizer(source: str | Path) -> Tokenizer:
    """Load a tokenizer from a directory holding ``tokenizer.json``, a sentencepiece ``.model`` file
    (one model for both modalities, reference special pieces), or a bundled name (see
    :func:`obte_cli.engine.core.resources.bundled_tokenizers`)."""
    from obte_cli.engine.core.resources import bundled_tokenizer_dir

    path = Path(source)
    if not path.exists():
        bundled = bundled_tokenizer_dir(str(source))
        if bundled is None:
            raise InputError(f"{source}: no such tokenizer directory, .model file or bundled tokenizer name")
        path = bundled
    if path.is_file() and path.suffix == ".model":
        return SentencePieceTokenizer.from_model_files({str(path): [PROTEIN, NUCLEIC]})
    config = read_json_file(path / TOKENIZER_FILE, f"{path}: no {TOKENIZER_FILE} (not a tokenizer or model directory)")
    return tokenizer_from_config(config, path)

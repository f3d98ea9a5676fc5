"""The sentencepiece (BPE) tokenizer: pieces from one model for both modalities (the OmniBioTE reference
layout) or one model per modality with the protein ids offset past the nucleic ones (2^11 + 2^11)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from obte_cli.engine.bio.molecules import (
    MOLECULE_TYPES,
    NUCLEIC,
    PROTEIN,
    MoleculeType,
    tag_chain,
)
from obte_cli.engine.core.errors import (
    InputError,
    ModelFormatError,
)
from obte_cli.engine.core.inputs import refuse_special_file
from obte_cli.engine.tokenizers.base import (
    _STANDARD,
    TOKENIZER_FILE,
    Tokenizer,
    _Prepared,
    _runs,
)

DUMMY_PREFIX = "\u2581"  # '▁', sentencepiece's word-boundary mark
REFERENCE_SPECIAL_PIECES = {"pad": "<s>", "mask": "</s>", "eos": "<EOS>", "unk": "<unk>"}


class _Piecewise:
    """One sentencepiece model, the id offset it occupies and the modalities it serves."""

    def __init__(
        self,
        model_bytes: bytes,
        file: str,
        offset: int,
        modalities: list[str],
        special_pieces: dict,
        where: str | None = None,
    ):
        """``file`` is the model's name in tokenizer.json; ``where`` names it in errors (default ``file``)."""
        import sentencepiece as spm

        self.file = file
        self.where = where or file
        self.model_bytes = model_bytes
        self.offset = offset
        self.modalities = list(modalities)
        try:
            self.sp = spm.SentencePieceProcessor(model_proto=model_bytes)
            self.size = self.sp.get_piece_size()
        except (RuntimeError, OSError, ValueError, TypeError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:120]
            raise ModelFormatError(f"{self.where}: not a readable sentencepiece model ({reason})") from None
        if self.size < 1:
            raise ModelFormatError(f"{self.where}: sentencepiece model without pieces")
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
                raise ModelFormatError(f"{self.where}: no piece for {modality} letter(s) {''.join(missing)}")

    def _local(self, piece: str) -> int:
        if piece not in self.index:
            raise ModelFormatError(f"{self.where}: no piece {piece!r} in this sentencepiece model")
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
            refuse_special_file(path)
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                raise InputError(f"{path}: cannot read the sentencepiece model ({exc.strerror or exc})") from None
            comp = _Piecewise(data, Path(path).name, offset, modalities, pieces, where=str(path))
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

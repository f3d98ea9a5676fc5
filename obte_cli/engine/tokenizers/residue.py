"""The per-residue tokenizer: one token per amino acid or nucleotide, protein and nucleic letters on
disjoint ids (protein ``A`` is not adenine ``A``), tags and ``<EOS>`` as in the reference layout."""

from __future__ import annotations

import json
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
from obte_cli.engine.core import schema
from obte_cli.engine.core.errors import (
    InputError,
    ModelFormatError,
)
from obte_cli.engine.core.schema import SchemaError
from obte_cli.engine.tokenizers.base import (
    _STANDARD,
    TOKENIZER_FILE,
    Tokenizer,
    _Prepared,
)


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
            tables = {section: self._id_table(vocab, section) for section in ("specials", "tags", PROTEIN, NUCLEIC)}
            for name in ("pad", "mask", "eos", "unk"):
                if name not in tables["specials"]:
                    raise SchemaError(f"specials.{name}", "is missing")
            for modality in (PROTEIN, NUCLEIC):
                for letter in tables[modality]:
                    if len(letter) != 1 or not letter.isalpha() or not letter.isascii():
                        raise SchemaError(modality, f"keys must be single letters (got {schema.shown(letter)})")
                if len({letter.upper() for letter in tables[modality]}) != len(tables[modality]):
                    raise SchemaError(modality, "lists a letter twice (upper and lower case)")
        except SchemaError as exc:
            raise ModelFormatError(f"residue tokenizer: {exc}") from None
        try:
            self.tags = {molecule_type(k).name: v for k, v in tables["tags"].items()}
        except KeyError as exc:
            raise ModelFormatError(f"residue tokenizer: tags: {exc.args[0]}") from None
        self.specials = tables["specials"]
        self.letters = {
            modality: {k.upper(): v for k, v in tables[modality].items()} for modality in (PROTEIN, NUCLEIC)
        }
        self.pad_id = self.specials["pad"]
        self.mask_id = self.specials["mask"]
        self.unk_id = self.specials["unk"]
        self.eos_id = self.specials["eos"]
        for modality, table in self.letters.items():
            if not set(table) >= _STANDARD[modality]:
                missing = "".join(sorted(_STANDARD[modality] - set(table)))
                raise ModelFormatError(f"residue tokenizer: no {modality} ids for letters {missing}")
        all_ids = [
            *self.specials.values(),
            *self.tags.values(),
            *self.letters[PROTEIN].values(),
            *self.letters[NUCLEIC].values(),
        ]
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

    @staticmethod
    def _id_table(vocab: object, section: str) -> dict[str, int]:
        """``vocab[section]``: an object of names → non-negative integer ids."""
        table = schema.mapping(schema.required(schema.mapping(vocab, "vocabulary"), section), section)
        return {name: schema.integer(value, f"{section}.{name}", minimum=0) for name, value in table.items()}

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

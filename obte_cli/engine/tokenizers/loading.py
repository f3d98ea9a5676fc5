"""Tokenizers from disk: a ``tokenizer.json`` directory, a sentencepiece ``.model`` file, or a bundled name."""

from __future__ import annotations

import hashlib
from pathlib import Path

from obte_cli.engine.bio.molecules import (
    NUCLEIC,
    PROTEIN,
)
from obte_cli.engine.core import schema
from obte_cli.engine.core.errors import (
    InputError,
    ModelFormatError,
)
from obte_cli.engine.core.inputs import refuse_special_file
from obte_cli.engine.core.jsonfiles import read_json_file
from obte_cli.engine.core.schema import SchemaError
from obte_cli.engine.tokenizers.base import (
    TOKENIZER_FILE,
    Tokenizer,
)
from obte_cli.engine.tokenizers.residue import (
    ResidueTokenizer,
)
from obte_cli.engine.tokenizers.sentencepiece import (
    REFERENCE_SPECIAL_PIECES,
    SentencePieceTokenizer,
    _Piecewise,
)

MODALITIES = (PROTEIN, NUCLEIC)
SPECIAL_NAMES = ("pad", "mask", "eos", "unk")


def _special_pieces(config: dict) -> dict[str, str]:
    pieces = schema.mapping(config.get("special_pieces", REFERENCE_SPECIAL_PIECES), "special_pieces")
    for name in SPECIAL_NAMES:
        if name not in pieces:
            raise SchemaError(f"special_pieces.{name}", "is missing")
    return {name: schema.text(pieces[name], f"special_pieces.{name}") for name in SPECIAL_NAMES}


def _component(entry: object, index: int, directory: Path, pieces: dict[str, str]) -> _Piecewise:
    """One ``components`` entry of a sentencepiece tokenizer.json, its model file read and checked."""
    field = f"components[{index}]"
    entry = schema.mapping(entry, field)
    try:
        file = schema.plain_file_name(schema.required(entry, "file"), "file")
        offset = schema.integer(schema.required(entry, "offset"), "offset", minimum=0)
        modalities = schema.sequence(schema.required(entry, "modalities"), "modalities")
        for i, modality in enumerate(modalities):
            schema.choice(modality, f"modalities[{i}]", MODALITIES)
        if len(set(modalities)) != len(modalities):
            raise SchemaError("modalities", f"lists a modality twice (got {schema.shown(modalities)})")
        digest = entry.get("sha256")
        if digest is not None:
            schema.text(digest, "sha256")
        size = entry.get("pieces")
        if size is not None:
            schema.integer(size, "pieces")
    except SchemaError as exc:
        raise exc.within(field) from None
    path = directory / file
    refuse_special_file(path, ModelFormatError)
    if not path.is_file():
        raise ModelFormatError(f"{path}: tokenizer file listed in {TOKENIZER_FILE} is missing")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFormatError(f"{path}: unreadable tokenizer file ({exc.strerror or exc})") from None
    if digest is not None and digest != hashlib.sha256(data).hexdigest():
        raise ModelFormatError(f"{path}: checksum differs from {TOKENIZER_FILE} (file replaced?)")
    component = _Piecewise(data, file, offset, modalities, pieces, where=str(path))
    if size is not None and size != component.size:
        raise ModelFormatError(f"{path}: has {component.size} pieces, {TOKENIZER_FILE} says {size} (file replaced?)")
    return component


def tokenizer_from_config(config: dict, directory: Path) -> Tokenizer:
    """Rebuild a tokenizer from its ``tokenizer.json`` contents; model files are read from ``directory``.
    Every field is checked; what is wrong is one :class:`ModelFormatError` naming the file and field."""
    directory = Path(directory)
    source = directory / TOKENIZER_FILE
    kind = config.get("kind")
    try:
        if kind == "residue":
            return ResidueTokenizer(config)
        if kind == "sentencepiece":
            pieces = _special_pieces(config)
            entries = schema.sequence(schema.required(config, "components"), "components")
            comps = [_component(entry, i, directory, pieces) for i, entry in enumerate(entries)]
            return SentencePieceTokenizer(comps, pieces)
    except SchemaError as exc:
        raise ModelFormatError(f"{source}: {exc}") from None
    except ModelFormatError as exc:
        message = str(exc)
        if message.startswith(str(directory)):  # names its file already
            raise
        raise ModelFormatError(f"{source}: {message.removeprefix(f'{kind} tokenizer: ')}") from None
    raise ModelFormatError(f"{source}: unknown tokenizer kind {schema.shown(kind)} (known: residue, sentencepiece)")


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

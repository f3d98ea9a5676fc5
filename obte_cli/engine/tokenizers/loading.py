"""Tokenizers from disk: a ``tokenizer.json`` directory, a sentencepiece ``.model`` file, or a bundled name."""

from __future__ import annotations

import hashlib
from pathlib import Path

from obte_cli.engine.bio.molecules import (
    NUCLEIC,
    PROTEIN,
)
from obte_cli.engine.core.errors import (
    InputError,
    ModelFormatError,
)
from obte_cli.engine.core.jsonfiles import read_json_file
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

"""Token files: a tokenized corpus that pretraining memory-maps, and how it is packed into contexts.

A token directory (written by `obte tokenize corpus`)::

    tokens.json            format, tokenizer (its tokenizer.json contents), dtype, molecule types, shards
    tokenizer.json ...     the tokenizer itself, so the directory is self-describing
    <shard>.ids.bin        every sequence's ids back to back, each as <tag> residues... <EOS>;
                           uint16 when the vocabulary fits (< 65,536 ids), else uint32
    <shard>.offsets.bin    int64, one more than the sequences: sequence i is ids[offsets[i]:offsets[i+1]]
    <shard>.types.bin      uint8 per sequence: index into tokens.json's ``molecule_types``

Raw little-endian arrays rather than ``.npy``: they are written in one streaming pass (constant memory)
and ``np.memmap`` reads them with the dtype from ``tokens.json``; every file is written under a
temporary name and renamed, and ``tokens.json`` last, so a directory with it is complete.

Packing (:func:`pack_stream`): sequences are laid into rows of exactly ``context`` tokens in order. A
sequence that does not fit the rest of a row is split: its first piece fills the row and the rest goes on
in the next rows. Every piece has its own document id within its row, so attention never crosses a
sequence boundary and a split is always a boundary too — no sequence crosses a row or another sequence
unmarked. Rows therefore carry no padding except at the very end of the stream.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from obte_cli import __version__
from obte_cli.engine.bio.molecules import MOLECULE_TYPES
from obte_cli.engine.core import schema
from obte_cli.engine.core.errors import InputError, ModelFormatError
from obte_cli.engine.core.jsonfiles import read_json_file
from obte_cli.engine.core.schema import SchemaError
from obte_cli.engine.pretraining.prep import SHARD_SUFFIX, read_shard
from obte_cli.engine.tokenizers.base import Segment, Tokenizer
from obte_cli.engine.tokenizers.loading import load_tokenizer

FORMAT = "obte-tokens"
MANIFEST = "tokens.json"
TYPE_NAMES = list(MOLECULE_TYPES)  # index stored per sequence


def ids_dtype(vocab_size: int) -> np.dtype:
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


class _AtomicBinary:
    def __init__(self, path: Path):
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        self.handle = open(self.tmp, "wb")  # noqa: SIM115 - closed in finish/abort

    def write(self, array: np.ndarray) -> None:
        self.handle.write(array.tobytes())

    def finish(self) -> None:
        self.handle.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.handle.close()
        self.tmp.unlink(missing_ok=True)


def encode_shard(tokenizer: Tokenizer, shard: Path, out_dir: Path, batch: int = 1024) -> dict:
    """Tokenize one prep shard into ``<name>.ids.bin`` / ``.offsets.bin`` / ``.types.bin``."""
    name = shard.name.removesuffix(SHARD_SUFFIX)
    dtype = ids_dtype(tokenizer.vocab_size)
    writers = {kind: _AtomicBinary(out_dir / f"{name}.{kind}.bin") for kind in ("ids", "offsets", "types")}
    type_index = {t: i for i, t in enumerate(TYPE_NAMES)}
    total = 0
    sequences = 0
    try:
        writers["offsets"].write(np.zeros(1, dtype="<i8"))
        pending: list[tuple[str, str]] = []

        def flush() -> None:
            nonlocal total, sequences
            encodings = tokenizer.encode(
                [[Segment(seq, mol, f"{shard.name}:{sequences + k + 1}")] for k, (mol, seq) in enumerate(pending)]
            )
            lengths = np.fromiter((len(e) for e in encodings), dtype=np.int64, count=len(encodings))
            writers["ids"].write(np.concatenate([e.ids for e in encodings]).astype(dtype))
            writers["offsets"].write((total + np.cumsum(lengths)).astype("<i8"))
            writers["types"].write(np.asarray([type_index[m] for m, _ in pending], dtype="u1"))
            total += int(lengths.sum())
            sequences += len(pending)
            pending.clear()

        for mol, sequence in read_shard(shard):
            if mol not in type_index:
                raise InputError(
                    f"{shard}: line {sequences + len(pending) + 1}: unknown molecule type {mol!r} (not an obte "
                    "prep shard?)"
                )
            pending.append((mol, sequence))
            if len(pending) >= batch:
                flush()
        if pending:
            flush()
        for writer in writers.values():
            writer.finish()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    return {"name": name, "source": shard.name, "sequences": sequences, "tokens": total}


def encode_corpus(tokenizer: Tokenizer, shards: Iterable[Path], out_dir: Path) -> dict:
    """Tokenize prep shards into a token directory (see module docstring); returns its manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shards = [Path(s) for s in shards]
    entries = [encode_shard(tokenizer, s, out_dir) for s in shards]
    if shards and not any(e["sequences"] for e in entries):  # a token directory with nothing to train on
        others = f" nor in the {len(shards) - 1} other shard(s)" if len(shards) > 1 else ""
        raise InputError(f"{shards[0]}: no sequences in this shard{others}: nothing to tokenize")
    tokenizer.save(out_dir)
    manifest = {
        "format": FORMAT,
        "obte_version": __version__,
        "dtype": ids_dtype(tokenizer.vocab_size).str,
        "vocab_size": tokenizer.vocab_size,
        "molecule_types": TYPE_NAMES,
        "sequences": sum(e["sequences"] for e in entries),
        "tokens": sum(e["tokens"] for e in entries),
        "shards": entries,
    }
    tmp = out_dir / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, out_dir / MANIFEST)
    return manifest


@dataclass
class TokenShard:
    name: str
    ids: np.ndarray  # memory-mapped
    offsets: np.ndarray
    types: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def sequence(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i] : self.offsets[i + 1]]


@dataclass
class TokenCorpus:
    path: Path
    manifest: dict
    shards: list[TokenShard]

    @property
    def tokenizer(self) -> Tokenizer:
        return load_tokenizer(self.path)

    def molecule_type(self, shard: TokenShard, i: int) -> str:
        return self.manifest["molecule_types"][int(shard.types[i])]


ID_DTYPES = ("<u2", "<u4")  # what encode_corpus writes (see ids_dtype)
_ID_SCAN_BLOCK = 1 << 24  # ids checked per block when a corpus is opened


def _manifest(path: Path) -> dict:
    """``tokens.json``, every field the readers use checked (a :class:`ModelFormatError` names it)."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise InputError(f"{path}: no {MANIFEST} (not a token directory from `obte tokenize corpus`, or incomplete)")
    manifest = read_json_file(manifest_path, f"{path}: no {MANIFEST}")
    if manifest.get("format") != FORMAT:
        raise ModelFormatError(f"{manifest_path}: not an obte token directory")
    try:
        schema.choice(schema.required(manifest, "dtype"), "dtype", ID_DTYPES)
        schema.integer(schema.required(manifest, "vocab_size"), "vocab_size")
        types = schema.sequence(schema.required(manifest, "molecule_types"), "molecule_types")
        for i, name in enumerate(types):
            schema.choice(name, f"molecule_types[{i}]", TYPE_NAMES)
        for i, entry in enumerate(schema.sequence(schema.required(manifest, "shards"), "shards", non_empty=False)):
            schema.mapping(entry, f"shards[{i}]")
            try:
                schema.plain_file_name(schema.required(entry, "name"), "name")
                schema.integer(schema.required(entry, "sequences"), "sequences", minimum=0)
            except SchemaError as exc:
                raise exc.within(f"shards[{i}]") from None
    except SchemaError as exc:
        raise ModelFormatError(f"{manifest_path}: {exc}") from None
    return manifest


def _check_ids(ids: np.ndarray, vocab_size: int, where: str) -> None:
    """Every id in [0, vocab_size): an id outside would index past the embedding table, or be taken
    for another token. Read block by block (the ids are memory-mapped)."""
    for start in range(0, len(ids), _ID_SCAN_BLOCK):
        block = np.asarray(ids[start : start + _ID_SCAN_BLOCK])
        low, high = int(block.min()), int(block.max())
        if low < 0 or high >= vocab_size:
            bad = int(np.flatnonzero((block < 0) | (block >= vocab_size))[0])
            raise ModelFormatError(
                f"{where}: token {start + bad} has id {int(block[bad])}, outside the tokenizer's "
                f"{vocab_size} ids (corrupt file, or tokenized with another tokenizer?)"
            )


def open_corpus(path: str | Path) -> TokenCorpus:
    """Open a token directory: its manifest, tokenizer and shard files are checked against each other
    — lengths, offsets, molecule types, and every token id within the tokenizer's vocabulary."""
    path = Path(path)
    manifest = _manifest(path)
    vocab_size = load_tokenizer(path).vocab_size
    if manifest["vocab_size"] != vocab_size:
        raise ModelFormatError(
            f"{path / MANIFEST}: vocab_size is {manifest['vocab_size']} but the directory's tokenizer has "
            f"{vocab_size} ids"
        )
    dtype = np.dtype(manifest["dtype"])
    shards = []
    for entry in manifest["shards"]:
        name = entry["name"]
        files = {kind: path / f"{name}.{kind}.bin" for kind in ("ids", "offsets", "types")}
        for file in files.values():
            if not file.is_file():
                raise ModelFormatError(f"{file}: missing (shard {name} of {path / MANIFEST})")
        offsets = np.fromfile(files["offsets"], dtype="<i8")
        if files["ids"].stat().st_size % dtype.itemsize:
            raise ModelFormatError(f"{path}: files of shard {name} disagree with {MANIFEST} (truncated?)")
        ids = np.memmap(files["ids"], dtype=dtype, mode="r") if files["ids"].stat().st_size else np.zeros(0, dtype)
        types = np.fromfile(files["types"], dtype="u1")
        if (
            len(offsets) != entry["sequences"] + 1
            or offsets[0] != 0
            or offsets[-1] != len(ids)
            or len(types) != entry["sequences"]
            or (np.diff(offsets) < 0).any()
        ):
            raise ModelFormatError(f"{path}: files of shard {name} disagree with {MANIFEST} (truncated?)")
        if len(types) and int(types.max()) >= len(manifest["molecule_types"]):
            raise ModelFormatError(f"{files['types']}: molecule type index outside {MANIFEST}'s molecule_types")
        _check_ids(ids, vocab_size, str(files["ids"]))
        shards.append(TokenShard(name, ids, offsets, types))
    return TokenCorpus(path, manifest, shards)


@dataclass
class PackedRow:
    ids: np.ndarray  # (context,) int64
    doc_ids: np.ndarray  # (context,) int64: 0, 1, 2 ... per piece; -1 for padding at the stream's end


def row_layouts(lengths: Iterable[int], context: int) -> Iterator[list[tuple[int, int, int]]]:
    """The packing rule, on lengths alone: items are laid into rows of ``context`` tokens in order and
    split only where a row ends. Yields each row as its pieces ``(item, start, stop)``; the last row may
    be short. Shared by :func:`pack_stream` and the pretraining row plan."""
    if context < 1:
        raise ValueError("context must be positive")
    row: list[tuple[int, int, int]] = []
    fill = 0
    for item, length in enumerate(lengths):
        start = 0
        while start < length:
            take = min(context - fill, length - start)
            row.append((item, start, start + take))
            fill += take
            start += take
            if fill == context:
                yield row
                row, fill = [], 0
    if row:
        yield row


def pack_stream(sequences: Iterable[np.ndarray], context: int, pad_id: int) -> Iterator[PackedRow]:
    """Pack sequences into rows of ``context`` tokens, splitting at row ends (see module docstring)."""
    pending: dict[int, np.ndarray] = {}  # sequences read but not yet fully packed

    def lengths() -> Iterator[int]:
        for item, sequence in enumerate(sequences):
            pending[item] = sequence
            yield len(sequence)

    for pieces in row_layouts(lengths(), context):
        ids = np.full(context, pad_id, dtype=np.int64)
        docs = np.full(context, -1, dtype=np.int64)
        fill = 0
        for doc, (item, start, stop) in enumerate(pieces):
            ids[fill : fill + stop - start] = pending[item][start:stop]
            docs[fill : fill + stop - start] = doc
            fill += stop - start
        for item in [k for k in pending if k < pieces[-1][0]]:
            del pending[item]
        yield PackedRow(ids, docs)


def corpus_sequences(corpus: TokenCorpus, rank: int = 0, world_size: int = 1) -> Iterator[np.ndarray]:
    """Every sequence of the corpus, or this rank's share: sequence k of the whole goes to rank k % world."""
    k = 0
    for shard in corpus.shards:
        for i in range(len(shard)):
            if k % world_size == rank:
                yield np.asarray(shard.sequence(i), dtype=np.int64)
            k += 1

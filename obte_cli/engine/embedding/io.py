"""Embedding files, written as the embeddings stream in (memory stays flat), readable without obte.

* ``.safetensors`` — one tensor ``embeddings``: pooled (N, [layers,] width), or per-token
  (total residues, [layers,] width) plus ``offsets`` (N + 1, int64: record i is rows
  offsets[i]:offsets[i+1]); the record ids, in input order, are in the header metadata (``ids``, a JSON
  list), with ``pool``, ``layers`` and ``model``. Load with ``safetensors.numpy.load_file`` or
  :func:`read_embeddings`.
* ``.npy`` — pooled only: the (N, [layers,] width) array; the ids go to ``<name>.ids.txt``, one per line.
* ``.tsv`` — pooled only: ``id`` then one column per value (``l{layer}_{k}`` with several layers).

The layer axis is dropped when one layer is asked for. Data stream into a nameless scratch file and the
final file is assembled (header first) when the stream ends, through the one atomic writer
(:func:`obte_cli.engine.core.outputs.atomic_file`).
"""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.outputs import atomic_file, cannot_write, scratch_directory, write_errors, write_text_atomic
from obte_cli.engine.embedding.embed import RecordEmbedding

FORMATS = (".safetensors", ".npy", ".tsv")


def output_format(path: str, pool: str) -> str:
    suffix = Path(path).suffix.lower() if path != "-" else ".tsv"
    if suffix not in FORMATS:
        raise InputError(f"{path}: output must end in {', '.join(FORMATS)} (or be '-' for TSV on stdout)")
    if pool == "per-token" and suffix != ".safetensors":
        raise InputError(f"{path}: per-token embeddings have one row per residue; write them to a .safetensors file")
    return suffix


def drop_single_layer(vectors: np.ndarray, layers: tuple[int, ...]) -> np.ndarray:
    """A record's vectors as the files hold them: pooled (layers, width) → (width,) and per-token
    (n, layers, width) → (n, width) when one layer is asked for; unchanged otherwise."""
    return vectors[..., 0, :] if len(layers) == 1 else vectors


def value_columns(width: int, layers: tuple[int, ...]) -> list[str]:
    """Names of the values of a pooled vector in a TSV: ``e{k}``, or ``l{layer}_{k}`` with several layers."""
    if len(layers) == 1:
        return [f"e{k}" for k in range(width)]
    return [f"l{layer}_{k}" for layer in layers for k in range(width)]


def collect_embeddings(
    items: Iterable[RecordEmbedding], pool: str, layers: tuple[int, ...]
) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """(ids, embeddings, offsets or None) of ``items`` held in memory, laid out as a ``.safetensors`` file of
    :class:`EmbeddingWriter` holds them (what :func:`read_embeddings` returns for it)."""
    ids, arrays = [], []
    for item in items:
        ids.append(item.id)
        arrays.append(np.asarray(drop_single_layer(item.vectors, layers), dtype=np.float32))
    if pool != "per-token":
        return ids, np.stack(arrays) if arrays else np.zeros((0, 0), dtype=np.float32), None
    offsets = np.concatenate([[0], np.cumsum([len(a) for a in arrays], dtype=np.int64)]).astype(np.int64)
    return ids, np.concatenate(arrays) if arrays else np.zeros((0, 0), dtype=np.float32), offsets


class EmbeddingWriter:
    """Append :class:`RecordEmbedding`s; :meth:`close` assembles the final file, :meth:`abort` drops it."""

    def __init__(self, path: str | Path, pool: str, layers: tuple[int, ...], metadata: dict, stdout=None):
        self.path = str(path)
        self.format = output_format(self.path, pool)
        self.pool = pool
        self.layers = layers
        self.metadata = metadata
        self.ids: list[str] = []
        self.offsets = [0]
        self.shape_tail: tuple[int, ...] | None = None
        self._stdout = stdout
        # the data stream into a nameless scratch file (nothing is left behind if the run is killed) on the
        # output's file system: embeddings can outgrow the temp directory
        self._where = Path(self.path) if self.path != "-" else None
        directory = scratch_directory(self.path) if self._where else Path(tempfile.gettempdir())
        self._scratch_where = self._where or directory
        try:
            if self.format == ".tsv":
                self._data = tempfile.TemporaryFile("w+", encoding="utf-8", newline="\n", dir=directory)
            else:
                self._data = tempfile.TemporaryFile("w+b", dir=directory)
        except OSError as exc:
            raise cannot_write(directory, exc) from None
        self._header_written = False

    def add(self, item: RecordEmbedding) -> None:
        values = np.ascontiguousarray(drop_single_layer(item.vectors, self.layers), dtype="<f4")
        tail = values.shape[1:] if self.pool == "per-token" else values.shape
        if self.shape_tail is None:
            self.shape_tail = tail
        self.ids.append(item.id)
        with write_errors(self._scratch_where):
            if self.format == ".tsv":
                if not self._header_written:
                    self._data.write("id\t" + "\t".join(value_columns(values.shape[-1], self.layers)) + "\n")
                    self._header_written = True
                self._data.write(item.id + "\t" + "\t".join(f"{v:.6g}" for v in values.ravel()) + "\n")
            else:
                self._data.write(values.tobytes())
        self.offsets.append(self.offsets[-1] + (len(values) if self.pool == "per-token" else 1))

    def close(self) -> None:
        """Write the output (atomically, see :func:`atomic_file`) and drop the scratch file."""
        try:
            with write_errors(self._scratch_where):
                self._data.flush()
                nbytes = self._data.tell() if self.format == ".safetensors" else 0
                self._data.seek(0)
            with write_errors(self._where):
                if self._where is None:
                    shutil.copyfileobj(self._data, self._stdout)
                    return
                with atomic_file(self._where, binary=self.format != ".tsv") as out:
                    if self.format == ".npy":
                        self._npy_header(out)
                    elif self.format == ".safetensors":
                        self._safetensors_header(out, nbytes)
                    shutil.copyfileobj(self._data, out)
                    if self.format == ".safetensors" and self.pool == "per-token":
                        out.write(np.asarray(self.offsets, dtype="<i8").tobytes())
                if self.format == ".npy":
                    write_text_atomic(self._where.with_suffix(".ids.txt"), "".join(i + "\n" for i in self.ids))
        finally:
            self._data.close()

    def abort(self) -> None:
        self._data.close()

    def _rows(self) -> int:
        return self.offsets[-1]

    def _npy_header(self, out) -> None:
        shape = (self._rows(), *(self.shape_tail or (0,)))
        np.lib.format.write_array_header_1_0(out, {"descr": "<f4", "fortran_order": False, "shape": shape})

    def _safetensors_header(self, out, nbytes: int) -> None:
        rows = self._rows()
        shape = [rows, *(self.shape_tail or (0,))]
        header = {"embeddings": {"dtype": "F32", "shape": shape, "data_offsets": [0, nbytes]}}
        if self.pool == "per-token":
            size = 8 * len(self.offsets)
            header["offsets"] = {"dtype": "I64", "shape": [len(self.offsets)], "data_offsets": [nbytes, nbytes + size]}
        header["__metadata__"] = {"ids": json.dumps(self.ids), **{k: str(v) for k, v in self.metadata.items()}}
        encoded = json.dumps(header, separators=(",", ":")).encode()
        encoded += b" " * (-len(encoded) % 8)
        out.write(struct.pack("<Q", len(encoded)))
        out.write(encoded)


def read_embeddings(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """(ids, embeddings, offsets or None) from a file written by :class:`EmbeddingWriter`."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as handle:
            ids = json.loads(handle.metadata()["ids"])
            offsets = handle.get_tensor("offsets") if "offsets" in handle.keys() else None
            return ids, handle.get_tensor("embeddings"), offsets
    if path.suffix == ".npy":
        ids = path.with_suffix(".ids.txt").read_text().splitlines()
        return ids, np.load(path, allow_pickle=False), None
    rows = [line.rstrip("\n").split("\t") for line in path.read_text().splitlines()[1:]]
    return [r[0] for r in rows], np.array([[float(v) for v in r[1:]] for r in rows], dtype=np.float32), None


def merge_interleaved_parts(parts: list[Path], writer: EmbeddingWriter, n_layers: int) -> None:
    """Merge the part files of a ``torchrun`` embedding run into ``writer`` in input order.

    Part r holds records r, r + W, r + 2W, ... (W = number of parts), as pooled or per-token
    ``.safetensors`` files from :class:`EmbeddingWriter`; rows are read lazily, one record at a time.
    """
    from safetensors import safe_open

    handles = [safe_open(str(p), framework="numpy") for p in parts]
    ids = [json.loads(h.metadata()["ids"]) for h in handles]
    offsets = [h.get_tensor("offsets") if "offsets" in h.keys() else None for h in handles]
    slices = [h.get_slice("embeddings") for h in handles]
    total = sum(len(i) for i in ids)
    for k in range(total):
        part, index = k % len(parts), k // len(parts)
        if offsets[part] is None:
            vectors = slices[part][index : index + 1][0]
        else:
            vectors = slices[part][int(offsets[part][index]) : int(offsets[part][index + 1])]
        if n_layers == 1:  # parts dropped the layer axis; put it back for the writer
            vectors = vectors[..., None, :]
        writer.add(RecordEmbedding(ids[part][index], len(vectors) if offsets[part] is not None else 0, vectors))

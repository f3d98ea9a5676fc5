"""Pretraining batches: which tokens each rank trains on at each step, and which of them are masked.

Every global batch is a pure function of (corpus, seed, step), whatever the number of processes:

1. **Chunks and order**: sequences (of the chosen modality) are cut into chunks of at most ``context``
   tokens, and each epoch visits the chunks in a permutation seeded by ``(seed, epoch)``. Shuffling
   chunks rather than whole sequences keeps a batch a mix of the corpus even when one record is a
   whole genome (150 kb of chloroplast DNA would otherwise fill hundreds of consecutive rows).
   With a hold-out fraction, a seeded random set of chunks is never trained on and forms the
   evaluation rows instead.
2. **Rows**: the chunks are packed into rows of ``context`` tokens by
   :func:`obte_cli.engine.pretraining.token_files.row_layouts` (a chunk is split only at a row's end; every piece
   is its own document). The row *layout* needs only the sequence lengths (the small offsets arrays),
   so every rank computes it and then reads from the memory-mapped token files only its own rows.
3. **Batches**: step ``s`` trains on global rows ``[s·R, (s+1)·R)``; rank ``r`` of ``W`` takes rows
   ``r, r+W, ...`` of them. The same rows are trained on with 1 or 8 processes.
4. **Masking** (the paper's MLM): 15% of residue tokens (never tags, ``<EOS>`` or padding), each replaced
   by ``<mask>``; drawn from a generator seeded by ``(seed, global row)``, so a row is masked the same
   whichever rank reads it, and resuming at step ``s`` recreates exactly the batches of an unbroken run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from obte_cli.engine.bio.molecules import MOLECULE_TYPES
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.pretraining.token_files import TokenCorpus, row_layouts

MODALITIES = ("omni", "protein", "nucleic")


@dataclass(frozen=True)
class Piece:
    sequence: int  # index into the corpus-wide sequence list
    start: int  # token range within that sequence
    stop: int


class RowPlan:
    """The layout of global rows, computed lazily epoch by epoch from sequence lengths only."""

    def __init__(
        self,
        corpus: TokenCorpus,
        context: int,
        modality: str = "omni",
        seed: int = 0,
        holdout: float = 0.0,
        part: str = "train",
    ):
        """``holdout``: the fraction of chunks set aside (drawn with ``seed``) for evaluation;
        ``part`` is ``"train"`` (the others) or ``"holdout"`` (those)."""
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {', '.join(MODALITIES)}")
        self.corpus = corpus
        self.context = context
        self.seed = seed
        self._where: list[tuple[int, int]] = []  # corpus-wide sequence index → (shard, index in shard)
        lengths = []
        type_names = corpus.manifest["molecule_types"]
        for s, shard in enumerate(corpus.shards):
            keep = np.ones(len(shard), dtype=bool)
            if modality != "omni":
                kinds = np.array([MOLECULE_TYPES[t].modality for t in type_names])
                keep = kinds[shard.types] == modality
            for i in np.flatnonzero(keep):
                self._where.append((s, int(i)))
            lengths.append(np.diff(shard.offsets)[keep])
        self.lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
        if self.lengths.sum() == 0:
            what = "sequences" if modality == "omni" else f"{modality} sequences (--modality {modality})"
            raise InputError(f"{corpus.path}: the corpus has no {what}")
        pieces_per_sequence = -(-self.lengths // context)
        self._chunk_sequence = np.repeat(np.arange(len(self.lengths)), pieces_per_sequence)
        first_chunk = np.cumsum(pieces_per_sequence) - pieces_per_sequence
        self._chunk_start = (
            np.arange(len(self._chunk_sequence)) - np.repeat(first_chunk, pieces_per_sequence)
        ) * context
        self._chunk_stop = np.minimum(self._chunk_start + context, self.lengths[self._chunk_sequence])
        if holdout > 0:
            held = np.random.default_rng([seed, 104729]).random(len(self._chunk_sequence)) < holdout
            keep = held if part == "holdout" else ~held
            if not keep.any():
                raise ValueError(f"the corpus is too small to set {holdout:.0%} of its chunks aside")
            self._chunk_sequence, self._chunk_start, self._chunk_stop = (
                self._chunk_sequence[keep],
                self._chunk_start[keep],
                self._chunk_stop[keep],
            )
        self.tokens_per_epoch = int((self._chunk_stop - self._chunk_start).sum())
        self._epoch_rows: dict[int, list[list[Piece]]] = {}

    def _layout(self, epoch: int) -> list[list[Piece]]:
        if epoch not in self._epoch_rows:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self._chunk_sequence))
            starts, stops = self._chunk_start[order], self._chunk_stop[order]
            sequences = self._chunk_sequence[order]
            # the epoch's last row is padded rather than mixed with the next epoch
            rows = [
                [Piece(int(sequences[k]), int(starts[k] + a), int(starts[k] + b)) for k, a, b in pieces]
                for pieces in row_layouts((stops - starts).tolist(), self.context)
            ]
            self._epoch_rows = {epoch: rows}  # keep one epoch in memory
        return self._epoch_rows[epoch]

    def rows_per_epoch(self) -> int:
        # Packing wastes nothing but the last row's tail, so every epoch has the same number of rows.
        return -(-self.tokens_per_epoch // self.context)

    def row(self, global_row: int) -> list[Piece]:
        epoch, index = divmod(global_row, self.rows_per_epoch())
        return self._layout(epoch)[index]

    def read(self, pieces: list[Piece], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, doc_ids) of one row, reading only its pieces from the memory-mapped files."""
        ids = np.full(self.context, pad_id, dtype=np.int64)
        docs = np.full(self.context, -1, dtype=np.int64)
        fill = 0
        for doc, piece in enumerate(pieces):
            shard, index = self._where[piece.sequence]
            tokens = self.corpus.shards[shard].sequence(index)[piece.start : piece.stop]
            ids[fill : fill + len(tokens)] = tokens
            docs[fill : fill + len(tokens)] = doc
            fill += len(tokens)
        return ids, docs


def mask_row(
    ids: np.ndarray, maskable: np.ndarray, mask_id: int, rate: float, seed: int, global_row: int
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) for one row: ``rate`` of maskable tokens replaced by ``mask_id``; targets -100 elsewhere."""
    rng = np.random.default_rng([seed, 7919, global_row])
    chosen = (rng.random(len(ids)) < rate) & maskable[ids]
    inputs = np.where(chosen, mask_id, ids)
    targets = np.where(chosen, ids, -100)
    return inputs, targets


@dataclass
class MicroBatch:
    inputs: torch.Tensor  # (rows, context)
    targets: torch.Tensor  # -100 where not masked
    doc_ids: torch.Tensor
    tokens: int  # real (non-padding) tokens


class BatchSource:
    """The micro-batches of one rank at one step (see module docstring)."""

    def __init__(
        self,
        plan: RowPlan,
        rows_per_step: int,
        micro_rows: int,
        maskable: np.ndarray,
        mask_id: int,
        pad_id: int,
        mask_rate: float = 0.15,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if rows_per_step % world_size:
            raise ValueError(f"rows per step ({rows_per_step}) must divide evenly over {world_size} processes")
        self.plan, self.rows_per_step, self.micro_rows = plan, rows_per_step, micro_rows
        self.maskable, self.mask_id, self.pad_id, self.mask_rate = maskable, mask_id, pad_id, mask_rate
        self.seed, self.rank, self.world_size = seed, rank, world_size

    def step(self, step: int) -> Iterator[MicroBatch]:
        first = step * self.rows_per_step
        mine = list(range(first + self.rank, first + self.rows_per_step, self.world_size))
        for start in range(0, len(mine), self.micro_rows):
            group = mine[start : start + self.micro_rows]
            inputs, targets, docs = [], [], []
            for g in group:
                ids, doc_ids = self.plan.read(self.plan.row(g), self.pad_id)
                x, y = mask_row(ids, self.maskable, self.mask_id, self.mask_rate, self.seed, g)
                inputs.append(x)
                targets.append(y)
                docs.append(doc_ids)
            doc_array = np.stack(docs)
            yield MicroBatch(
                torch.from_numpy(np.stack(inputs)),
                torch.from_numpy(np.stack(targets)),
                torch.from_numpy(doc_array),
                int((doc_array >= 0).sum()),
            )

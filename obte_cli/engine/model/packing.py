"""Packing token sequences into fixed-width context rows.

Padding wastes compute in proportion to the spread of lengths; packing several sequences into one
row (with a block-diagonal attention mask, see :mod:`obte_cli.engine.model.encoder`) wastes almost none.
:func:`pack` places sequences by first-fit decreasing length, which on real length distributions
fills rows to within a few percent, and remembers where each sequence went so that per-sequence
outputs can be cut back out in input order (:func:`unpack`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class PackedBatch:
    ids: torch.Tensor  # (B, T) token ids, padding = pad_id
    doc_ids: torch.Tensor  # (B, T) sequence number within the row, -1 for padding
    placements: list[tuple[int, int, int]]  # per input sequence: (row, offset, length), input order

    @property
    def n_tokens(self) -> int:
        return sum(length for _, _, length in self.placements)


def pack(sequences: Sequence[np.ndarray], context: int, pad_id: int, width: int | None = None) -> PackedBatch:
    """Pack ``sequences`` (1-D id arrays, each at most ``context`` long) into rows of ``context``
    tokens by first-fit decreasing. ``width`` trims rows to the longest filled row when smaller
    batches are wanted (default: the tightest width that holds every row)."""
    lengths = [len(s) for s in sequences]
    if any(n > context for n in lengths):
        raise ValueError(f"a sequence of {max(lengths)} tokens does not fit a context of {context}")
    order = sorted(range(len(sequences)), key=lambda i: -lengths[i])
    free: list[int] = []  # free space per row
    rows: list[list[int]] = []
    for i in order:
        n = lengths[i]
        for r, space in enumerate(free):
            if space >= n:
                rows[r].append(i)
                free[r] -= n
                break
        else:
            rows.append([i])
            free.append(context - n)
    T = width or max((context - f for f in free), default=1)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    doc_ids = torch.full((len(rows), T), -1, dtype=torch.long)
    placements: list[tuple[int, int, int]] = [(0, 0, 0)] * len(sequences)
    for r, members in enumerate(rows):
        offset = 0
        for doc, i in enumerate(members):
            n = lengths[i]
            ids[r, offset : offset + n] = torch.as_tensor(np.asarray(sequences[i]), dtype=torch.long)
            doc_ids[r, offset : offset + n] = doc
            placements[i] = (r, offset, n)
            offset += n
    return PackedBatch(ids, doc_ids, placements)


def unpack(values: torch.Tensor, batch: PackedBatch) -> list[torch.Tensor]:
    """Cut per-sequence slices (length, ...) out of a (B, T, ...) tensor, in input order."""
    return [values[row, offset : offset + n] for row, offset, n in batch.placements]


def microbatches(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Split example indices (sorted by length) into groups of at most ``max_tokens`` tokens."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    current: list[int] = []
    tokens = 0
    for i in order:
        if current and tokens + lengths[i] > max_tokens:
            groups.append(current)
            current, tokens = [], 0
        current.append(i)
        tokens += lengths[i]
    if current:
        groups.append(current)
    return groups

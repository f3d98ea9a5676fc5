"""The one packed forward pass, and the readouts built on it: how every prediction runs the encoder.

Embedding, scoring, `obte predict`, the ΔG ensemble and the bench probes all do the same thing: take many
token sequences, sort them by length, cut them into micro-batches of at most ``max_tokens`` tokens, pack
each micro-batch several sequences to a row (block-diagonal attention, :mod:`obte_cli.engine.model.packing`),
run the encoder, and cut each sequence's states back out in input order. :func:`packed_forward` is that
loop, written once, under ``torch.inference_mode`` (bf16 autocast on CUDA, fp32 on CPU). Callers read
what they need from each :class:`MicroBatch` it yields: final states, intermediate layers, or logits.

:func:`encode_packed` is its single-micro-batch step, without ``inference_mode``, so that fine-tuning
(which needs gradients) runs the very same forward pass as prediction. A sequence gives the same
numbers alone or packed with others (to float rounding): packed sequences cannot see each other and
their positions restart at 0.

On top of it sit the *readouts* a task head reads: :class:`Readout` (one vector per sequence: its first
token, its mean state, or the means of a complex's two parts), :func:`sequence_outputs` /
:func:`token_outputs` (head applied to one micro-batch, with gradients when training), and
:func:`predict_sequence_task` / :func:`predict_token_outputs` (head applied to any number of sequences,
for prediction).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from obte_cli.engine.core.devices import autocast
from obte_cli.engine.model.encoder import EncoderOutput, ObteModel
from obte_cli.engine.model.heads import READOUTS, readout_width
from obte_cli.engine.model.packing import PackedBatch, microbatches, pack

DEFAULT_MAX_TOKENS = 16384  # tokens per forward pass: bounds memory, never changes the numbers


@dataclass
class MicroBatch:
    """One forward pass of :func:`packed_forward`: which inputs it held and what the encoder made of them."""

    indices: list[int]  # positions of its sequences in the caller's input
    batch: PackedBatch  # where each of them sits (row, offset, length), in the order of ``indices``
    output: EncoderOutput  # ``hidden`` (rows, T, width) and any requested ``layers``

    def members(self) -> Iterator[tuple[int, tuple[int, int, int]]]:
        """(input index, (row, offset, length)) per sequence of this micro-batch."""
        return zip(self.indices, self.batch.placements)

    def states(self, k: int) -> torch.Tensor:
        """Final hidden states (length, width) of the micro-batch's ``k``-th sequence."""
        row, offset, n = self.batch.placements[k]
        return self.output.hidden[row, offset : offset + n]


def encode_packed(
    model: ObteModel,
    sequences: Sequence[np.ndarray],
    pad_id: int,
    device: torch.device,
    layers: Sequence[int] = (),
) -> tuple[PackedBatch, EncoderOutput]:
    """Pack ``sequences`` into rows as wide as the longest of them and run the encoder once (gradients as
    the caller's mode allows). Rows are not widened to the model's whole context: attention costs row width²
    per row, so packing short sequences into wide rows would spend more on masked-out attention than padding
    would; :func:`packed_forward`'s micro-batches hold similar lengths."""
    batch = pack(sequences, context=max(len(s) for s in sequences), pad_id=pad_id)
    with autocast(device):
        output = model(batch.ids.to(device), batch.doc_ids.to(device), layers=tuple(layers))
    return batch, output


@torch.inference_mode()
def packed_forward(
    model: ObteModel,
    sequences: Sequence[np.ndarray],
    pad_id: int,
    device: torch.device | str = "cpu",
    max_tokens: int = DEFAULT_MAX_TOKENS,
    layers: Sequence[int] = (),
) -> Iterator[MicroBatch]:
    """Run ``model`` (in eval mode) over ``sequences`` (1-D token id arrays, each within the context), in
    micro-batches of at most ``max_tokens`` tokens grouped by length; yield one :class:`MicroBatch` per
    forward pass. Every sequence appears in exactly one micro-batch; the caller puts results back in input
    order with :meth:`MicroBatch.members`. ``layers`` asks for intermediate states (0 = embeddings,
    negative from the end) in ``output.layers``."""
    device = torch.device(device)
    model.to(device).eval()
    for group in microbatches([len(s) for s in sequences], max_tokens):
        batch, output = encode_packed(model, [sequences[i] for i in group], pad_id, device, layers)
        yield MicroBatch(group, batch, output)


# ------------------------------------------------------------------------------------------------ readouts
@dataclass(frozen=True)
class Readout:
    """How a sequence task turns one sequence's final hidden states into its head's input.

    * ``first`` — the state of the first token, the molecule tag (the reference's choice; there is no
      CLS token). The head reads ``width`` numbers.
    * ``mean`` — the mean state of all the sequence's tokens (ESM-style pooling): every residue speaks
      from the first step, where the tag of a fresh or briefly tuned model summarises little.
    * ``parts-mean`` — the mean state of the first segment (up to and including its ``<EOS>``: for a
      complex, the protein) next to the mean state of everything after it (the nucleic acid and its
      complement): ``2 · width`` numbers, so the head sees each partner whole instead of asking the tag
      to summarise both. ``end_ids`` are the tokenizer's ``<EOS>`` ids (:meth:`Tokenizer.end_ids`).
    """

    kind: str = "first"
    end_ids: frozenset[int] = frozenset()

    def __post_init__(self):
        if self.kind not in READOUTS:
            raise ValueError(f"readout must be one of {', '.join(READOUTS)} (got {self.kind!r})")
        if self.kind == "parts-mean" and not self.end_ids:
            raise ValueError("the parts-mean readout needs the tokenizer's <EOS> ids")

    def input_width(self, width: int) -> int:
        """Numbers per sequence the head reads, for a backbone of ``width``."""
        return readout_width(width, self.kind)

    def first_part_length(self, ids: np.ndarray) -> int:
        """Tokens of the first segment (its tag, residues and ``<EOS>``); the second part must not be empty."""
        ends = np.flatnonzero(np.isin(ids, list(self.end_ids)))
        if len(ends) == 0 or ends[0] + 1 >= len(ids):
            raise ValueError("the parts-mean readout needs two parts (e.g. a protein and a nucleic acid)")
        return int(ends[0]) + 1

    def pool(self, hidden: torch.Tensor, placements: list, sequences: Sequence[np.ndarray]) -> torch.Tensor:
        """(N, input_width) head inputs from packed ``hidden`` (rows, T, width) and each sequence's
        (row, offset, length) placement."""
        if self.kind == "first":
            rows = torch.tensor([r for r, _, _ in placements], device=hidden.device)
            offsets = torch.tensor([o for _, o, _ in placements], device=hidden.device)
            return hidden[rows, offsets]
        if self.kind == "mean":
            return torch.stack([hidden[row, offset : offset + n].mean(0) for row, offset, n in placements])
        vectors = []
        for (row, offset, n), ids in zip(placements, sequences):
            states = hidden[row, offset : offset + n]
            cut = self.first_part_length(np.asarray(ids))
            vectors.append(torch.cat([states[:cut].mean(0), states[cut:].mean(0)]))
        return torch.stack(vectors)


FIRST_TOKEN = Readout()


def sequence_outputs(
    model: ObteModel,
    head: nn.Module,
    sequences: Sequence[np.ndarray],
    pad_id: int,
    device: torch.device,
    readout: Readout = FIRST_TOKEN,
) -> torch.Tensor:
    """One micro-batch: (N, n_outputs) = ``head`` on each sequence's ``readout`` (gradients as the caller's
    mode allows: the fine-tuning step's forward)."""
    batch, output = encode_packed(model, sequences, pad_id, device)
    return head(readout.pool(output.hidden, batch.placements, sequences).float())


def token_outputs(
    model: ObteModel, head: nn.Module, sequences: Sequence[np.ndarray], pad_id: int, device: torch.device
) -> list[torch.Tensor]:
    """One micro-batch: ``head`` on every token, one (n_tokens, n_outputs) tensor per sequence (the
    per-residue tasks' forward)."""
    batch, output = encode_packed(model, sequences, pad_id, device)
    return [head(output.hidden[row, offset : offset + n].float()) for row, offset, n in batch.placements]


@torch.inference_mode()
def predict_sequence_task(
    model: ObteModel,
    head: nn.Module,
    sequences: Sequence[np.ndarray],
    pad_id: int,
    device: torch.device | str = "cpu",
    max_tokens: int = DEFAULT_MAX_TOKENS,
    readout: Readout = FIRST_TOKEN,
) -> np.ndarray:
    """Head outputs (N, n_outputs) float32 for ``sequences``, in input order. ``head`` may be
    ``nn.Identity()`` to get the readout vectors themselves."""
    device = torch.device(device)
    head.to(device).eval()
    rows: list[np.ndarray | None] = [None] * len(sequences)
    for micro in packed_forward(model, sequences, pad_id, device, max_tokens):
        members = [sequences[i] for i in micro.indices]
        out = head(readout.pool(micro.output.hidden, micro.batch.placements, members).float()).float().cpu()
        for k, i in enumerate(micro.indices):
            rows[i] = out[k].numpy()
    if not rows:
        n_outputs = head.proj.out_features if hasattr(head, "proj") else 0
        return np.zeros((0, n_outputs), dtype=np.float32)
    return np.stack(rows)


@torch.inference_mode()
def predict_token_outputs(
    model: ObteModel,
    head: nn.Module,
    sequences: Sequence[np.ndarray],
    pad_id: int,
    device: torch.device | str = "cpu",
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> list[torch.Tensor]:
    """``head`` on every token of every sequence: one (n_tokens, n_outputs) float32 CPU tensor per
    sequence, in input order (``nn.Identity()`` gives the final states themselves)."""
    device = torch.device(device)
    head.to(device).eval()
    results: list[torch.Tensor | None] = [None] * len(sequences)
    for micro in packed_forward(model, sequences, pad_id, device, max_tokens):
        for k, i in enumerate(micro.indices):
            results[i] = head(micro.states(k).float()).float().cpu()
    return results

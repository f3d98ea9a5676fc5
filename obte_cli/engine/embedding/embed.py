"""Embeddings of FASTA records: the engine of `obte embed`, built for throughput.

Records are read in chunks (constant memory on million-sequence files). Within a chunk the inputs are
sorted by length, grouped by a token budget (``max_tokens``) and *packed* several to a context row with
block-diagonal attention, so no compute is spent on padding: the one packed forward pass of
:mod:`obte_cli.engine.model.inference` (``torch.inference_mode``, bf16 autocast on CUDA). Results are
emitted in input order.

Per record the encoder's states are taken at the requested ``layers`` and turned into

* ``per-token`` — one vector per *residue*: a BPE token's vector is given to every residue it covers,
  so the output always has one row per residue whatever the tokenizer;
* ``mean`` / ``max`` — mean / max over those residue vectors; ``first`` — the first token (the molecule
  tag, which the fine-tuning heads read).

A record longer than the context is split into windows of ``window`` residues (default: the context less
two, the most that always fit beside the tag and ``<EOS>``) every ``stride`` residues (default: half a
window), each embedded on its own; a residue's vector is then the mean over the windows that contain it,
pooled vectors come from those averaged residue vectors, and ``first`` is the mean of the windows' tags.
Instead, ``truncate`` cuts it to its first residues, and ``windows=False`` (with no ``truncate``) makes it
an error.
Embedding a sequence alone or packed with others gives the same numbers (to float rounding): packed
sequences cannot see each other and their positions restart at 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from obte_cli.engine.core.errors import InputError, NonFiniteResultError
from obte_cli.engine.core.progress import Advance
from obte_cli.engine.model.encoder import ObteModel
from obte_cli.engine.model.inference import packed_forward
from obte_cli.engine.tokenizers.base import Encoding, Segment, Tokenizer, encode_prefix_to_fit, naming_source

POOLS = ("mean", "first", "max", "per-token")


@dataclass(frozen=True)
class EmbeddingSettings:
    pool: str = "mean"
    layers: tuple[int, ...] = (-1,)
    max_tokens: int = 16384
    truncate: bool = False
    window: int = 0  # residues per window for records longer than the context (0: context − 2)
    stride: int = 0  # residues between window starts (0: window // 2)
    windows: bool = True  # False: a record longer than the context is an error (unless truncate)
    chunk_records: int = 1024
    on_unknown: str = "error"  # or "unk": letters outside the standard alphabets become <unk>


def check_windowing(settings: EmbeddingSettings, context: int) -> None:
    """The options for records longer than the context agree with each other and with the model's ``context``:
    one way of handling such records, a stride only with a window and no longer than it (windows must overlap
    or touch, or residues between them would have no vector), and a window that fits beside the tag and
    ``<EOS>``. A mistake is an :class:`InputError` in the words of `obte embed`'s options."""
    if settings.truncate and settings.window:
        raise InputError("use either --truncate or --window, not both")
    if not settings.windows and (settings.window or settings.truncate):
        raise InputError("--no-window cannot be combined with --window or --truncate")
    if settings.window < 0 or settings.stride < 0:
        raise InputError("--window and --stride cannot be negative")
    if settings.stride and not settings.window:
        raise InputError("--stride needs --window (windows are what it steps between)")
    if settings.stride > settings.window > 0:
        raise InputError(
            f"--stride {settings.stride} is more than --window {settings.window}: windows must overlap or touch, "
            "so that every residue is embedded"
        )
    if settings.window and settings.window + 2 > context:
        raise InputError(f"--window {settings.window} does not fit the model's context of {context}")


@dataclass
class RecordEmbedding:
    id: str
    n_residues: int
    vectors: np.ndarray  # pooled: (n_layers, width); per-token: (n_residues, n_layers, width)
    windows: int = 1  # how many windows the record was embedded in (1: it fit the context)


@dataclass
class _Unit:
    record: int  # index within the chunk
    encoding: Encoding
    residue_offset: int  # where this window starts in the record


def window_starts(length: int, window: int, stride: int = 0) -> list[int]:
    """Where the windows of a ``length``-residue record start: every ``stride`` residues (default: half a
    window), the last window ending with the record. The one window rule of embed, predict, fine-tuning and
    contacts."""
    stride = stride or max(1, window // 2)
    starts = list(range(0, max(length - window, 0) + 1, stride))
    if starts[-1] + window < length:
        starts.append(length - window)
    return starts


def encode_units(
    tokenizer: Tokenizer, index: int, segment: Segment, context: int, settings: EmbeddingSettings
) -> list[_Unit]:
    encoding = tokenizer.encode_one([segment], on_unknown=settings.on_unknown)
    if len(encoding) <= context:
        return [_Unit(index, encoding, 0)]
    if settings.window or (settings.windows and not settings.truncate):
        window = settings.window or max(1, context - 2)
        units = []
        for start in window_starts(len(segment.sequence), window, settings.stride):
            piece = Segment(segment.sequence[start : start + window], segment.molecule, segment.name)
            window_encoding = tokenizer.encode_one([piece], on_unknown=settings.on_unknown)
            if len(window_encoding) > context:
                raise InputError(
                    f"record '{segment.name}': a window of {window} residues is {len(window_encoding)} "
                    "tokens, "
                    f"over the context of {context} (use a smaller --window)"
                )
            units.append(_Unit(index, window_encoding, start))
        return units
    if settings.truncate:
        return [_Unit(index, encode_prefix_to_fit(tokenizer, [segment], context, on_unknown=settings.on_unknown), 0)]
    raise InputError(
        f"record '{segment.name}': {len(encoding)} tokens exceed the model's context of {context} "
        "(--no-window refuses such records; leave it out to embed them in windows, or use --truncate)"
    )


def _unit_states(
    model: ObteModel,
    units: list[_Unit],
    pad_id: int,
    settings: EmbeddingSettings,
    device: torch.device,
    advance: Advance | None = None,
) -> list[np.ndarray]:
    """Per unit: (n_tokens, n_layers, width) float32 states at ``settings.layers``, packed by token budget.
    ``advance`` hears each forward pass's share of records (a window counts as a fraction of its record)."""
    states: list[np.ndarray | None] = [None] * len(units)
    ids = [u.encoding.ids for u in units]
    n_slots = model.config.n_layers + 1
    share = np.bincount([u.record for u in units])  # units per record
    for micro in packed_forward(model, ids, pad_id, device, settings.max_tokens, layers=settings.layers):
        stacked = torch.stack([micro.output.layers[layer % n_slots] for layer in settings.layers], dim=2)
        stacked = stacked.float().cpu()
        for i, (row, offset, n) in micro.members():
            states[i] = stacked[row, offset : offset + n].numpy()
        if advance is not None:
            advance(float(sum(1 / share[units[i].record] for i in micro.indices)))
    return states


def _pool(per_residue: np.ndarray, first: np.ndarray, pool: str) -> np.ndarray:
    if pool == "mean":
        return per_residue.mean(axis=0)
    if pool == "max":
        return per_residue.max(axis=0)
    if pool == "first":
        return first
    return per_residue


def embed_chunk(
    model: ObteModel,
    tokenizer: Tokenizer,
    segments: list[Segment],
    settings: EmbeddingSettings,
    device: torch.device,
    advance: Advance | None = None,
) -> list[RecordEmbedding]:
    context = model.config.max_positions
    units = []
    for i, segment in enumerate(segments):
        with naming_source(segment):
            units += encode_units(tokenizer, i, segment, context, settings)
    states = _unit_states(model, units, tokenizer.pad_id, settings, device, advance)
    n_layers, width = len(settings.layers), model.config.width
    sums = [np.zeros((len(s.sequence), n_layers, width), dtype=np.float64) for s in segments]
    counts = [np.zeros(len(s.sequence), dtype=np.int64) for s in segments]
    firsts = [np.zeros((n_layers, width), dtype=np.float64) for _ in segments]
    windows = np.zeros(len(segments), dtype=np.int64)
    for unit, state in zip(units, states):
        enc = unit.encoding
        firsts[unit.record] += state[0]
        windows[unit.record] += 1
        # every residue gets the state of the token covering it (vectorised: one row per residue)
        tokens = np.flatnonzero(enc.is_residue)
        spans = (enc.end[tokens] - enc.start[tokens]).astype(np.int64)
        first_of_token = np.cumsum(spans) - spans
        residues = (
            np.arange(spans.sum())
            - np.repeat(first_of_token, spans)
            + np.repeat(enc.start[tokens] + unit.residue_offset, spans)
        )
        if unit.residue_offset == 0 and len(units) == len(segments):  # one unit per record: each residue once
            sums[unit.record][residues] = state[np.repeat(tokens, spans)]
            counts[unit.record][residues] = 1
        else:  # overlapping windows accumulate
            np.add.at(sums[unit.record], residues, state[np.repeat(tokens, spans)])
            np.add.at(counts[unit.record], residues, 1)
    results = []
    for i, segment in enumerate(segments):
        covered = counts[i] > 0
        per_residue = (sums[i][covered] / counts[i][covered, None, None]).astype(np.float32)
        first = (firsts[i] / windows[i]).astype(np.float32)
        pooled = _pool(per_residue, first, settings.pool)
        NonFiniteResultError.check(pooled, model.source, segment.name, "an embedding value")
        results.append(RecordEmbedding(segment.name, int(covered.sum()), pooled, int(windows[i])))
    return results


def embed_segments(
    model: ObteModel,
    tokenizer: Tokenizer,
    segments: Iterable[Segment],
    settings: EmbeddingSettings,
    device: torch.device | str = "cpu",
    advance: Advance | None = None,
) -> Iterator[RecordEmbedding]:
    """Stream embeddings of ``segments`` (one per record, ``name`` = record id) in input order; ``advance(n)``
    hears the records done as each forward pass ends (fractions of a record for windows), so progress moves
    within a chunk of records too."""
    if settings.pool not in POOLS:
        raise InputError(f"--pool must be one of {', '.join(POOLS)} (got {settings.pool!r})")
    n = model.config.n_layers
    for layer in settings.layers:
        if not -(n + 1) <= layer <= n:
            raise InputError(f"--layers: {layer} is not a layer of this model (0..{n}, or negative from the end)")
    device = torch.device(device)
    model.to(device).eval()
    chunk: list[Segment] = []
    for segment in segments:
        chunk.append(segment)
        if len(chunk) >= settings.chunk_records:
            yield from embed_chunk(model, tokenizer, chunk, settings, device, advance)
            chunk = []
    if chunk:
        yield from embed_chunk(model, tokenizer, chunk, settings, device, advance)

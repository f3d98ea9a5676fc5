"""Masked-LM scores of sequences: bits per residue, perplexity and masked accuracy (the engine of `obte score`).

Every residue token of a record is masked exactly once: its residue tokens are dealt, in a seeded
random order, into ``round(1 / mask_fraction)`` groups (7 groups of ~14% for the default 15%), and each
group is predicted from a copy of the record with that group replaced by ``<mask>``. The order is seeded
by ``--seed`` and the sequence itself, so the score is deterministic (a function of model, sequence and
seed: neither the record's place in the input nor the other records change it) and covers every residue,
unlike a training-style random 15% mask. Copies are packed several to a row (block-diagonal attention, no
compute spent on padding), so scoring costs about ``groups`` forward passes over the input.

* **bits per residue**: the summed ``−log2 p(true token)`` over the masked tokens, divided by the
  residues they cover. A BPE token covers several residues, so this — not the loss per token — is
  comparable across tokenizers (the held-out figures of a model card use it). Perplexity per residue
  is ``2^bits``; the unigram perplexity of amino acids is about 18, of nucleotides about 4.
* **masked accuracy**: the fraction of masked tokens whose most likely token is the true one.
* **per-residue log-probabilities** (one-token-per-residue tokenizers): at every position, the model's
  log-probability of each letter of the alphabet with that position masked — what zero-shot variant-
  effect scores are made of (``log p(mutant) − log p(wild type)``).

A record longer than the context is scored in consecutive windows, each encoded on its own (with its
tag and ``<EOS>``), so every residue is still scored once.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from obte_cli.engine.bio.molecules import (
    AMINO_ACIDS,
    MOLECULE_TYPES,
    NUCLEOTIDES,
    PROTEIN,
    molecule_type,
)
from obte_cli.engine.core.errors import InputError, NonFiniteResultError
from obte_cli.engine.core.progress import Advance
from obte_cli.engine.model.encoder import ObteModel
from obte_cli.engine.model.inference import packed_forward
from obte_cli.engine.tokenizers.base import Encoding, Segment, Tokenizer, encode_prefix_to_fit, naming_source


@dataclass(frozen=True)
class ScoreSettings:
    mask_fraction: float = 0.15
    seed: int = 0
    max_tokens: int = 16384  # tokens per forward pass (memory only; the numbers do not change)
    per_residue: bool = False
    chunk_records: int = 256  # records scored together (packing partners; memory stays flat)


@dataclass
class RecordScore:
    id: str
    molecule_type: str
    length: int  # residues
    tokens: int  # residue tokens (masked once each)
    nll_bits: float  # summed −log2 p over the masked tokens
    correct: int  # masked tokens predicted right
    per_residue: np.ndarray | None = None  # (length, letters) natural-log probabilities
    windows: int = 1  # consecutive windows the record was scored in (1: it fit the context)

    @property
    def bits_per_residue(self) -> float:
        return self.nll_bits / self.length

    @property
    def perplexity(self) -> float:
        return 2.0**self.bits_per_residue

    @property
    def masked_accuracy(self) -> float:
        return self.correct / self.tokens


# The columns of `obte score`'s TSV and of obte_cli.score's table (one row per record) ...
SCORE_COLUMNS = ["id", "molecule_type", "length", "bits_per_residue", "perplexity", "masked_accuracy"]
# ... and of its --per-residue table (one row per residue): a protein's rows fill the amino-acid columns, a
# nucleic acid's the nucleotide ones (see per_residue_values).
PER_RESIDUE_COLUMNS = [
    "id",
    "position",
    "residue",
    *(f"logp_{letter}" for letter in AMINO_ACIDS),
    *(f"logp_nt_{letter}" for letter in NUCLEOTIDES),
]


def per_residue_values(result: RecordScore) -> np.ndarray:
    """(length, 24) float32: a record's per-residue log-probabilities in the ``logp_*`` columns of
    :data:`PER_RESIDUE_COLUMNS`, NaN in the other modality's columns."""
    values = np.full((result.length, len(AMINO_ACIDS) + len(NUCLEOTIDES)), np.nan, dtype=np.float32)
    if MOLECULE_TYPES[result.molecule_type].modality == PROTEIN:
        values[:, : len(AMINO_ACIDS)] = result.per_residue
    else:
        values[:, len(AMINO_ACIDS) :] = result.per_residue
    return values


def alphabet(modality: str) -> str:
    """Letters reported by ``--per-residue`` for a modality (nucleic acids: A C G T; RNA is read as T)."""
    return AMINO_ACIDS if modality == PROTEIN else NUCLEOTIDES


def window_key(ids: np.ndarray) -> int:
    """A stable 64-bit key of a window's token ids: the mask groups depend on the sequence itself, not on
    where the record sits in the input, so a record scores the same alone or among others."""
    digest = hashlib.blake2b(np.ascontiguousarray(ids, dtype="<i8").tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def mask_groups(n_tokens: int, mask_fraction: float, seed: int, key: int) -> np.ndarray:
    """Group number of each residue token: a shuffle seeded by ``seed`` and ``key`` (see :func:`window_key`)
    dealt round-robin into round(1/fraction) groups, so each group is ~``mask_fraction`` of the tokens and
    every token is in exactly one."""
    n_groups = max(1, min(n_tokens, round(1 / mask_fraction)))
    order = np.random.default_rng([seed, key]).permutation(n_tokens)
    groups = np.empty(n_tokens, dtype=np.int64)
    groups[order] = np.arange(n_tokens) % n_groups
    return groups


@dataclass
class _Window:
    record: int  # index within the chunk
    encoding: Encoding
    residue_offset: int


def _windows(tokenizer: Tokenizer, index: int, segment: Segment, context: int, on_unknown: str) -> list[_Window]:
    """The record as one encoding, or as consecutive windows that each fit the context."""
    windows, start, sequence = [], 0, segment.sequence
    while start < len(sequence):
        rest = Segment(sequence[start:], segment.molecule, segment.name)
        encoding = encode_prefix_to_fit(tokenizer, [rest], context, on_unknown=on_unknown)
        covered = int(encoding.end[encoding.is_residue].max())
        windows.append(_Window(index, encoding, start))
        start += covered
    return windows


def score_segments(
    model: ObteModel,
    tokenizer: Tokenizer,
    segments: Iterable[Segment],
    settings: ScoreSettings,
    device: torch.device,
    on_unknown: str = "error",
    advance: Advance | None = None,
) -> Iterator[RecordScore]:
    """Score records in input order (see the module docstring); ``advance(n)`` hears the records scored as each
    forward pass ends (a fraction of a record per masked copy), so progress moves within a chunk too."""
    if settings.per_residue and getattr(tokenizer, "kind", "") != "residue":
        raise InputError(
            "--per-residue needs a model with a one-token-per-residue tokenizer (this one has "
            f"{getattr(tokenizer, 'kind', 'another kind')}: a token may cover several residues)"
        )
    chunk: list[Segment] = []
    index = 0
    for segment in segments:
        chunk.append(segment)
        if len(chunk) == settings.chunk_records:
            yield from _score_chunk(model, tokenizer, chunk, index, settings, device, on_unknown, advance)
            index += len(chunk)
            chunk = []
    if chunk:
        yield from _score_chunk(model, tokenizer, chunk, index, settings, device, on_unknown, advance)


@torch.inference_mode()
def _score_chunk(model, tokenizer, chunk, first_index, settings, device, on_unknown, advance=None) -> list[RecordScore]:
    context = model.config.max_positions
    mask_id = tokenizer.mask_id
    results: list[RecordScore] = []
    copies: list[np.ndarray] = []  # masked inputs
    # per copy: (record, masked token positions, first residue of each masked token, true ids)
    owners: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    for i, segment in enumerate(chunk):
        mol = molecule_type(segment.molecule)
        with naming_source(segment):
            windows = _windows(tokenizer, i, segment, context, on_unknown)
        letters = alphabet(mol.modality)
        results.append(
            RecordScore(
                segment.name,
                mol.name,
                len(segment.sequence),
                0,
                0.0,
                0,
                np.zeros((len(segment.sequence), len(letters)), dtype=np.float32) if settings.per_residue else None,
                len(windows),
            )
        )
        for window in windows:
            ids = np.asarray(window.encoding.ids, dtype=np.int64)
            positions = np.flatnonzero(window.encoding.is_residue)
            results[i].tokens += len(positions)
            groups = mask_groups(len(positions), settings.mask_fraction, settings.seed, window_key(ids))
            for g in range(int(groups.max()) + 1):
                masked = positions[groups == g]
                copy = ids.copy()
                copy[masked] = mask_id
                copies.append(copy)
                owners.append((i, masked, window.encoding.start[masked] + window.residue_offset, ids[masked]))
    letter_ids = None
    if settings.per_residue:
        letter_ids = {m: np.array([tokenizer.letters[m][c] for c in alphabet(m)]) for m in ("protein", "nucleic")}
    copies_of = np.bincount([owner[0] for owner in owners], minlength=len(chunk))
    if advance is not None and (copies_of == 0).any():
        advance(float((copies_of == 0).sum()))
    for micro in packed_forward(model, copies, tokenizer.pad_id, device, settings.max_tokens):
        if advance is not None:
            advance(float(sum(1 / copies_of[owners[j][0]] for j in micro.indices)))
        for k, j in enumerate(micro.indices):
            record, masked, first_residue, truth = owners[j]
            logits = model.logits(micro.states(k)[torch.as_tensor(masked, device=device)]).float()
            log_probs = torch.log_softmax(logits[:, : tokenizer.vocab_size], dim=-1).cpu()
            truth_t = torch.as_tensor(truth)
            result = results[record]
            result.nll_bits += float(-log_probs.gather(1, truth_t[:, None]).sum()) / math.log(2)
            result.correct += int((log_probs.argmax(-1) == truth_t).sum())
            if result.per_residue is not None:
                modality = MOLECULE_TYPES[result.molecule_type].modality
                result.per_residue[first_residue] = log_probs[:, letter_ids[modality]].numpy()
    for result in results:
        NonFiniteResultError.check(result.nll_bits, model.source, result.id, "the masked log-likelihood")
        if result.per_residue is not None:
            NonFiniteResultError.check(result.per_residue, model.source, result.id, "a per-residue log-probability")
    return results


@dataclass
class ScoreSummary:
    """Residue-weighted totals per molecule type and per modality (a corpus' bits per residue)."""

    rows: dict[str, list[float]]  # key → [records, residues, nll_bits, tokens, correct]

    @classmethod
    def of(cls, scores: Iterable[RecordScore]) -> ScoreSummary:
        rows: dict[str, list[float]] = {}
        for s in scores:
            for key in dict.fromkeys((s.molecule_type, MOLECULE_TYPES[s.molecule_type].modality)):
                row = rows.setdefault(key, [0, 0, 0.0, 0, 0])
                for k, v in enumerate((1, s.length, s.nll_bits, s.tokens, s.correct)):
                    row[k] += v
        return cls(rows)

    def table(self) -> list[dict]:
        return [
            {
                "group": key,
                "records": int(r[0]),
                "residues": int(r[1]),
                "bits_per_residue": r[2] / r[1],
                "perplexity": 2 ** (r[2] / r[1]),
                "masked_accuracy": r[4] / r[3],
            }
            for key, r in self.rows.items()
        ]

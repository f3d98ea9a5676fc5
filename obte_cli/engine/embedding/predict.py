"""Predictions of a fine-tuned sequence or residue model on FASTA records: the engine of `obte predict`.

A model written by `obte finetune classify` or `obte finetune residue` carries its task in its
``config.json`` head: whether it predicts per sequence or per residue, its classes (or, for a regression,
the mean and sd that undo the target scaling) and, for a sequence task, what the head reads (the first
token or the mean state). :class:`FineTunedTask` reads that description and refuses a model whose task
this module cannot predict (a backbone, a ΔG model, a contact model: each has its own command).

Records run through the one packed forward pass (:mod:`obte_cli.engine.model.inference`), in chunks
(memory stays flat on long files) and in input order. A record longer than the model's context is
split into overlapping windows (:func:`obte_cli.engine.embedding.embed.encode_units`, the windows of
`obte embed`), each predicted on its own with its own tag and ``<EOS>``, as short records are:

* a residue task averages, per residue, the class probabilities (or values) of the windows covering it;
* a sequence task averages the windows' class probabilities (or values).

A BPE token covering several residues gives its prediction to each of them, so a residue task always
answers one row per residue whatever the tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from obte_cli.engine.core.errors import ModelFormatError, NonFiniteResultError
from obte_cli.engine.embedding.embed import EmbeddingSettings, encode_units
from obte_cli.engine.model.directory import LoadedModel
from obte_cli.engine.model.heads import AFFINITY_TASK, CONTACTS_TASK, FINETUNE_TASKS, LinearHead
from obte_cli.engine.model.inference import DEFAULT_MAX_TOKENS, Readout, packed_forward
from obte_cli.engine.tokenizers.base import Segment, naming_source
from obte_cli.engine.tokenizers.residues import token_values_to_residues


@dataclass(frozen=True)
class FineTunedTask:
    """What a fine-tuned model predicts, from its config.json head (validated when the model loaded)."""

    per_residue: bool
    classes: tuple[str, ...] | None  # None: a regression
    target_mean: float
    target_sd: float
    readout: str  # sequence tasks: "first" or "mean"

    @property
    def classification(self) -> bool:
        return self.classes is not None

    @classmethod
    def of(cls, loaded: LoadedModel) -> FineTunedTask:
        """The task of ``loaded``; a one-line :class:`ModelFormatError` for a model `obte predict` cannot use."""
        head = loaded.head or {}
        task = head.get("task")
        where = loaded.path if loaded.path is not None else "the model"
        if task == AFFINITY_TASK:
            raise ModelFormatError(f"{where}: a ΔG model: predict with `obte affinity --model {where}`")
        if task == CONTACTS_TASK:
            raise ModelFormatError(f"{where}: a contact model: predict with `obte contacts predict --model {where}`")
        if task not in FINETUNE_TASKS:
            raise ModelFormatError(
                f"{where}: no task head to predict with (a backbone? fine-tune one with `obte finetune classify` "
                "or `obte finetune residue`, or use `obte embed` / `obte score`)"
            )
        classes = head.get("classes")
        return cls(
            per_residue=bool(head["per_residue"]),
            classes=tuple(classes) if classes is not None else None,
            target_mean=float(head["target_mean"]),
            target_sd=float(head["target_sd"]),
            readout=head.get("readout", "first"),
        )

    def head_module(self, loaded: LoadedModel) -> LinearHead:
        head_info = loaded.head or {}
        head = LinearHead(loaded.model.config.width, int(head_info["n_outputs"]), int(head_info.get("base_width", 32)))
        head.load_state_dict(loaded.head_state, strict=True)
        return head

    def answers(self, outputs: np.ndarray) -> np.ndarray:
        """Head outputs (..., n_outputs) → what is averaged over windows: class probabilities, or values
        in the labels' units (..., 1)."""
        if self.classification:
            shifted = outputs - outputs.max(axis=-1, keepdims=True)
            exp = np.exp(shifted)
            return exp / exp.sum(axis=-1, keepdims=True)
        return outputs * self.target_sd + self.target_mean


@dataclass(frozen=True)
class PredictSettings:
    max_tokens: int = DEFAULT_MAX_TOKENS
    window: int = 0  # residues per window for records longer than the context (0: context − 2, the most that fits)
    stride: int = 0  # residues between window starts (0: half a window)
    on_unknown: str = "unk"
    chunk_records: int = 256


@dataclass
class RecordPrediction:
    id: str
    sequence: str
    windows: int  # 1 unless the record was longer than the context
    values: np.ndarray  # sequence task: (n_outputs,); residue task: (n_residues, n_outputs) — NaN rows: no prediction


def default_window(context: int) -> int:
    """Residues per window when none is given: the most that always fit (a tag and an ``<EOS>`` around them)."""
    return max(1, context - 2)


def predict_records(
    loaded: LoadedModel,
    task: FineTunedTask,
    segments: Iterable[Segment],
    settings: PredictSettings,
    device: torch.device | str = "cpu",
) -> Iterator[RecordPrediction]:
    """Stream predictions of ``segments`` (one per record) in input order (see the module docstring)."""
    device = torch.device(device)
    head = task.head_module(loaded).to(device).eval()
    chunk: list[Segment] = []
    for segment in segments:
        chunk.append(segment)
        if len(chunk) >= settings.chunk_records:
            yield from _predict_chunk(loaded, task, head, chunk, settings, device)
            chunk = []
    if chunk:
        yield from _predict_chunk(loaded, task, head, chunk, settings, device)


@torch.inference_mode()
def _predict_chunk(
    loaded: LoadedModel,
    task: FineTunedTask,
    head: LinearHead,
    segments: list[Segment],
    settings: PredictSettings,
    device: torch.device,
) -> list[RecordPrediction]:
    model, tokenizer = loaded.model, loaded.tokenizer
    context = model.config.max_positions
    window = settings.window or default_window(context)
    windowing = EmbeddingSettings(window=window, stride=settings.stride, on_unknown=settings.on_unknown)
    units = []
    for i, segment in enumerate(segments):
        with naming_source(segment):
            units += encode_units(tokenizer, i, segment, context, windowing)
    ids = [u.encoding.ids for u in units]
    readout = Readout(task.readout)
    n_outputs = head.proj.out_features
    width = n_outputs if task.classification else 1
    if task.per_residue:
        sums = [np.zeros((len(s.sequence), width)) for s in segments]
        counts = [np.zeros(len(s.sequence)) for s in segments]
    else:
        sums = [np.zeros(width) for _ in segments]
        counts = [np.zeros(1) for _ in segments]
    windows = np.zeros(len(segments), dtype=np.int64)
    for micro in packed_forward(model, ids, tokenizer.pad_id, device, settings.max_tokens):
        if task.per_residue:
            for k, i in enumerate(micro.indices):
                unit = units[i]
                answers = task.answers(head(micro.states(k).float()).float().cpu().numpy())
                NonFiniteResultError.check(answers, model.source, segments[unit.record].name, "a prediction")
                per_residue = token_values_to_residues(unit.encoding, answers, int(unit.encoding.end.max()))
                covered = ~np.isnan(per_residue[:, 0])
                where = np.flatnonzero(covered) + unit.residue_offset
                sums[unit.record][where] += per_residue[covered]
                counts[unit.record][where] += 1
                windows[unit.record] += 1
        else:
            members = [ids[i] for i in micro.indices]
            pooled = readout.pool(micro.output.hidden, micro.batch.placements, members).float()
            answers = task.answers(head(pooled).float().cpu().numpy())
            for k, i in enumerate(micro.indices):
                record = units[i].record
                NonFiniteResultError.check(answers[k], model.source, segments[record].name, "a prediction")
                sums[record] += answers[k]
                counts[record] += 1
                windows[record] += 1
    results = []
    for i, segment in enumerate(segments):
        with np.errstate(invalid="ignore", divide="ignore"):
            values = sums[i] / counts[i][:, None] if task.per_residue else sums[i] / counts[i]
        results.append(RecordPrediction(segment.name, segment.sequence, int(windows[i]), values))
    return results


def predicted_label(task: FineTunedTask, values: np.ndarray) -> str:
    """The class with the highest mean probability, or the value; "NA" where nothing was predicted."""
    if np.isnan(values).any():
        return "NA"
    if task.classification:
        return task.classes[int(np.argmax(values))]
    return f"{float(values[0]):.6g}"

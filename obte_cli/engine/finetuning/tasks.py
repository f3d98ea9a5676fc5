"""Sequence classification / regression (GUE, TAPE style) and per-residue tasks on the one trainer.

Both are :class:`obte_cli.engine.finetuning.trainer.Task` s on
:func:`obte_cli.engine.finetuning.trainer.fine_tune` (no second training loop) with the paper's
parameter groups, and keep the epoch whose dev score is best (MCC for classes, Spearman ρ for
values), then score it on the test split.

* **Sequence tasks** read GUE's CSV layout — a header with ``sequence`` and ``label`` (other columns
  ignored). Classes are the training labels (sorted); a dev/test label never seen in training is an
  error. The head reads the first token (the molecule tag) as for ΔG, or the mean of all tokens
  (``readout="mean"``).
* **Per-residue tasks** read a TSV with ``id``, ``sequence``, ``labels``: one label per residue, either
  one character each (``HHHEEC...``, secondary structure style) or whitespace-separated (values, or
  multi-character classes). With a BPE tokenizer a token covering several residues is trained on their
  most common class (or mean value); predictions are expanded back from tokens to residues
  (:mod:`obte_cli.engine.tokenizers.residues`), so every metric is per residue and every output has
  exactly one prediction per residue.

A record longer than the model's context (:class:`EncodedSplit`, :data:`LONG_RECORDS`) is, by default, cut to
its first residues for a sequence task (``cut``: its tail plays no part), and for a per-residue task split into
the overlapping windows of `obte embed` / `obte predict` (``window``: the context less two residues, every half
window, :func:`~obte_cli.engine.embedding.embed.encode_units`): in training each window is an example with its
residues' labels; in evaluation each residue's class probabilities (or values) are the mean over the windows
holding it, as `obte predict` computes them, so every residue of every record is scored. ``error`` refuses
such a record, naming it.

Residue classes may be missing where the caller says so (``None``, e.g. residues unresolved in a
structure, as the secondary-structure benchmark masks them): those residues are neither trained on nor
scored. In the files this module reads, labels have no missing values: an empty label is an error, and
so is a regression label (per sequence or per residue) that is not a finite number (``NaN``, ``inf``),
naming file, line and column.
"""

from __future__ import annotations

import copy
import csv
import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from obte_cli.engine.bio.molecules import detect_molecule_type
from obte_cli.engine.bio.molecules import molecule_type as lookup_type
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.inputs import decimal_number
from obte_cli.engine.core.metrics import classification_metrics, rank_regression_metrics
from obte_cli.engine.core.outputs import atomic_file
from obte_cli.engine.core.tables import read_table
from obte_cli.engine.embedding.embed import EmbeddingSettings, encode_units
from obte_cli.engine.embedding.predict import FineTunedTask
from obte_cli.engine.finetuning.trainer import (
    NO_CLASS,
    FinetuneSettings,
    SequenceTask,
    Task,
    TokenTask,
    fine_tune,
)
from obte_cli.engine.model.heads import LinearHead
from obte_cli.engine.model.inference import Readout, predict_token_outputs
from obte_cli.engine.tokenizers.base import Encoding, Segment, Tokenizer, encode_prefix_to_fit
from obte_cli.engine.tokenizers.residues import (
    residue_labels_to_tokens,
    token_values_to_residues,
)

TASKS = ("classification", "regression")
LONG_RECORDS = ("cut", "window", "error")  # what a record longer than the context becomes (module docstring)


# ------------------------------------------------------------------------------------------------ data
@dataclass
class Split:
    name: str
    ids: list[str]
    sequences: list[str]
    labels: list  # sequence tasks: str/float per example; residue tasks: list per example

    def subset(self, keep) -> Split:
        """The examples at the indices ``keep``, in that order."""
        return Split(
            self.name,
            [self.ids[i] for i in keep],
            [self.sequences[i] for i in keep],
            [self.labels[i] for i in keep],
        )


def _read_table(path: str | Path, kind: str) -> pd.DataFrame:
    """A CSV (``kind`` "CSV") or TSV ("TSV", read without quoting: a '"' is a letter, as `contacts labels`
    reads its TSV) of strings. A row with more fields than the header is an error: pandas would otherwise
    take the first field for an index and shift every column."""
    options = {"quoting": csv.QUOTE_NONE} if kind == "TSV" else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return read_table(path, kind, dtype=str, keep_default_na=False, index_col=False, **options)
    except pd.errors.ParserWarning:
        raise InputError(f"{path}: a row has more fields than the header") from None


def read_sequence_split(path: str | Path, name: str, task: str) -> Split:
    table = _read_table(path, "CSV")
    if not {"sequence", "label"} <= set(table.columns):
        raise InputError(
            f"{path}: header must have 'sequence' and 'label' columns (got {', '.join(table.columns)[:80]})"
        )
    if table.empty:
        raise InputError(f"{path}: the {name} split is empty")
    labels: list = table["label"].tolist()
    for number, value in enumerate(labels, start=2):  # line numbers: the header is line 1
        if not value.strip():
            raise InputError(f"{path}: line {number}, column label: empty label")
        if task == "regression":
            labels[number - 2] = _finite_label(value, f"{path}: line {number}, column label")
    ids = table["id"].tolist() if "id" in table.columns else [f"{name}{i + 1}" for i in range(len(table))]
    return Split(name, ids, table["sequence"].str.strip().tolist(), labels)


def read_residue_split(path: str | Path, name: str, task: str) -> Split:
    table = _read_table(path, "TSV")
    if not {"id", "sequence", "labels"} <= set(table.columns):
        raise InputError(
            f"{path}: header must have 'id', 'sequence' and 'labels' columns (got {', '.join(table.columns)[:80]})"
        )
    if table.empty:
        raise InputError(f"{path}: the {name} split is empty")
    labels = []
    for row in table.itertuples():
        values = (
            row.labels.split()
            if any(c.isspace() for c in row.labels.strip()) or task == "regression"
            else list(row.labels.strip())
        )
        if len(values) != len(row.sequence.strip()):
            raise InputError(
                f"{path}: record '{row.id}' has {len(values)} labels for {len(row.sequence.strip())} residues"
            )
        if task == "regression":
            where = f"{path}: line {row.Index + 2} (record '{row.id}'), column labels"
            values = [_finite_label(v, f"{where}, residue {k}") for k, v in enumerate(values, start=1)]
        labels.append(values)
    return Split(name, table["id"].tolist(), table["sequence"].str.strip().tolist(), labels)


def _finite_label(text: str, where: str) -> float:
    """A regression label: a finite number (NaN and infinity would train silently and score NaN)."""
    try:
        value = decimal_number(text)  # not float(): it would read 1_000 and non-ASCII digits
    except ValueError:
        raise InputError(f"{where}: {text!r} is not a number (--task regression)") from None
    if not math.isfinite(value):
        raise InputError(f"{where}: {text!r} is not a finite number (--task regression)")
    return value


def class_index(train: Split, others: list[Split], per_residue: bool, source: dict[str, str]) -> list[str]:
    """Sorted training classes; a dev/test label outside them is an error naming file and record."""
    seen = sorted({v for labels in train.labels for v in labels} - {None} if per_residue else set(train.labels))
    known = set(seen)
    for split in others:
        for record, labels in zip(split.ids, split.labels):
            for value in labels if per_residue else [labels]:
                if value is not None and value not in known:
                    raise InputError(
                        f"{source[split.name]}: record '{record}': label {value!r} does not occur in the training split"
                    )
    if len(seen) < 2:
        raise InputError(f"{source['train']}: only one class ({seen[0]!r}); classification needs at least two")
    return seen


@dataclass
class EncodedSplit:
    """A split as the model reads it: one encoding per example, in record order. A record that fits the
    context is one example; a longer one is one example cut to its first residues, or several windows, each
    starting ``offsets[k]`` residues into its record (see the module docstring)."""

    encodings: list[Encoding]
    records: list[int]  # per example: the index of its record in the split
    offsets: list[int]  # per example: the residue of its record where it starts
    n_records: int
    cut: int = 0  # records cut to the context
    windowed: int = 0  # records split into windows

    @classmethod
    def whole(cls, encodings: list[Encoding]) -> EncodedSplit:
        """One example per record, as given (what :func:`encode_split` returns)."""
        return cls(list(encodings), list(range(len(encodings))), [0] * len(encodings), len(encodings))

    @property
    def ids(self) -> list[np.ndarray]:
        return [e.ids for e in self.encodings]

    def __len__(self) -> int:
        return len(self.encodings)


def as_examples(encodings: EncodedSplit | list[Encoding]) -> EncodedSplit:
    """``encodings`` as an :class:`EncodedSplit` (a list holds one encoding per record)."""
    return encodings if isinstance(encodings, EncodedSplit) else EncodedSplit.whole(encodings)


def encode_examples(
    tokenizer: Tokenizer,
    split: Split,
    molecule: str,
    context: int,
    long: str,
    source: str,
    on_unknown: str = "error",
    refusal: str = "",
) -> EncodedSplit:
    """The split's examples for a model reading ``context`` tokens; ``long`` (one of :data:`LONG_RECORDS`) says
    what a record longer than that becomes. Errors name ``source`` and the record; ``refusal`` ends the
    message of a record ``error`` refuses (say how to let it through)."""
    if long not in LONG_RECORDS:
        raise ValueError(f"long records are one of {', '.join(LONG_RECORDS)} (got {long!r})")
    fixed = None if molecule == "auto" else lookup_type(molecule)
    windowing = EmbeddingSettings(on_unknown=on_unknown)  # `obte embed`'s and `obte predict`'s default windows
    examples = EncodedSplit([], [], [], len(split.ids))
    for index, (record, sequence) in enumerate(zip(split.ids, split.sequences)):
        mol = fixed or detect_molecule_type(sequence)
        segment = Segment(sequence, mol.name, record)
        try:
            encoding = tokenizer.encode_one([segment], on_unknown=on_unknown)
            pieces = [(encoding, 0)]
            if len(encoding) > context:
                if long == "error":
                    raise InputError(
                        f"record '{record}': {len(encoding)} tokens exceed the model's context of {context}"
                        + (f" ({refusal})" if refusal else "")
                    )
                if long == "cut":
                    pieces = [(encode_prefix_to_fit(tokenizer, [segment], context, on_unknown=on_unknown), 0)]
                    examples.cut += 1
                else:
                    units = encode_units(tokenizer, index, segment, context, windowing)
                    pieces = [(unit.encoding, unit.residue_offset) for unit in units]
                    examples.windowed += 1
        except InputError as exc:
            raise exc.within(source) from None
        for piece, offset in pieces:
            examples.encodings.append(piece)
            examples.records.append(index)
            examples.offsets.append(offset)
    return examples


def encode_split(
    tokenizer: Tokenizer,
    split: Split,
    molecule: str,
    context: int,
    truncate: bool,
    source: str,
    on_unknown: str = "error",
) -> list[Encoding]:
    """One encoding per record: a record longer than ``context`` is cut (``truncate``) or an error."""
    long = "cut" if truncate else "error"
    return encode_examples(tokenizer, split, molecule, context, long, source, on_unknown, "use --truncate").encodings


# ------------------------------------------------------------------------------------------------ metrics
def selection_score(metrics: dict[str, float], task: str) -> float:
    value = metrics["mcc"] if task == "classification" else metrics["spearman"]
    return -math.inf if math.isnan(value) else value


def split_metrics(split: Split, predicted: list, task: str, per_residue: bool, class_of: dict) -> dict[str, float]:
    """Classification or rank-regression metrics of ``predicted`` (:func:`predict_split`) against
    the split's labels; per residue for residue tasks, skipping residues without a prediction."""
    if per_residue:
        truth = np.concatenate(
            [
                np.array(
                    [np.nan if v is None else class_of[v] for v in labels] if task == "classification" else labels,
                    dtype=float,
                )
                for labels in split.labels
            ]
        )
        p = np.concatenate(predicted)
        keep = ~np.isnan(p) & ~np.isnan(truth)
        truth, p = truth[keep], p[keep]
        if task == "classification":
            truth, p = truth.astype(int), p.astype(int)
    else:
        truth = np.array([class_of[v] for v in split.labels]) if task == "classification" else np.array(split.labels)
        p = np.asarray(predicted)
    return classification_metrics(truth, p) if task == "classification" else rank_regression_metrics(truth, p)


# ------------------------------------------------------------------------------------------------ targets
def token_targets(encoding: Encoding, labels: list, task: str, classes: dict | None) -> np.ndarray:
    """One target per token: the index of the most common class (``classes`` maps class → index) or
    the mean value of the residues it covers; NO_CLASS (-100) / NaN for tags and ``<EOS>``."""
    if task == "classification":
        return residue_labels_to_tokens(encoding, labels, lambda covered: _majority_class(covered, classes), NO_CLASS)
    return residue_labels_to_tokens(encoding, labels, lambda covered: float(np.mean(covered)), np.nan)


def _majority_class(covered: list, classes: dict) -> int:
    """The index of the most common class among a token's residues; NO_CLASS if none has a label."""
    labelled = [v for v in covered if v is not None]
    return classes[Counter(labelled).most_common(1)[0][0]] if labelled else NO_CLASS


def standardise(values: np.ndarray) -> tuple[float, float]:
    """Mean and sd (1 if the values are constant) that the targets of a regression are scaled by."""
    return float(values.mean()), float(values.std() or 1.0)


def training_targets(
    split: Split, encodings: EncodedSplit | list[Encoding], task: str, per_residue: bool, class_of: dict
) -> tuple[list | np.ndarray, float, float]:
    """Targets of the training examples — per sequence, or per token for residue tasks (a window gets the
    labels of its residues) — as the trainer wants them (values standardised), with the mean and sd that
    undo the scaling."""
    examples = as_examples(encodings)
    if per_residue:
        targets = [
            token_targets(e, split.labels[r][o:], task, class_of)
            for e, r, o in zip(examples.encodings, examples.records, examples.offsets)
        ]
        if task == "classification":
            return targets, 0.0, 1.0
        mean, sd = standardise(np.concatenate([t[~np.isnan(t)] for t in targets]))
        return [(t - mean) / sd for t in targets], mean, sd
    labels = [split.labels[r] for r in examples.records]
    if task == "classification":
        return np.array([class_of[v] for v in labels]), 0.0, 1.0
    values = np.array(labels, dtype=np.float64)
    mean, sd = standardise(values)
    return ((values - mean) / sd).astype(np.float32), mean, sd


# ------------------------------------------------------------------------------------------------ training
@dataclass
class TaskResult:
    head: LinearHead
    epochs: list[dict] = field(default_factory=list)  # per epoch: train loss, dev metrics
    best_epoch: int = 0
    test: dict[str, float] = field(default_factory=dict)
    test_predictions: list = field(default_factory=list)
    target_mean: float = 0.0
    target_sd: float = 1.0


def predict_split(
    model,
    head,
    objective: Task,
    split: Split,
    encodings: EncodedSplit | list[Encoding],
    pad_id: int,
    device,
    task: str,
    per_residue: bool,
    mean: float,
    sd: float,
    classes: list[str] | None = None,
) -> list:
    """Predictions in the labels' terms: per record a class index or value, or for residue tasks an
    array with one per residue (the mean over the windows holding it, see :func:`residue_answers`; NaN
    for residues cut by truncation)."""
    examples = as_examples(encodings)
    if not per_residue:
        if len(examples) != len(split.ids) or examples.records != list(range(len(split.ids))):
            raise ValueError("a sequence task reads one example per record")
        predicted = objective.predict(model, head, examples.ids, pad_id, device)
        return list(predicted if task == "classification" else predicted * sd + mean)
    reading = FineTunedTask(True, tuple(classes) if task == "classification" else None, mean, sd, "first")
    answers = residue_answers(model, head, reading, examples, [len(s) for s in split.sequences], pad_id, device)
    if task == "classification":
        return [np.where(np.isnan(a[:, 0]), np.nan, np.argmax(np.nan_to_num(a), axis=1)) for a in answers]
    return [a[:, 0] for a in answers]


def residue_answers(
    model, head, reading: FineTunedTask, examples: EncodedSplit, lengths: list[int], pad_id: int, device
) -> list[np.ndarray]:
    """Per record, (n_residues, n_answers): the mean over the examples holding each residue of what `obte
    predict` averages (``reading.answers``: class probabilities, or values in the labels' units); NaN rows
    for residues no example holds."""
    outputs = predict_token_outputs(model, head, examples.ids, pad_id, device)
    width = len(reading.classes) if reading.classification else 1
    sums = [np.zeros((n, width)) for n in lengths]
    counts = [np.zeros(n) for n in lengths]
    for encoding, record, offset, out in zip(examples.encodings, examples.records, examples.offsets, outputs):
        values = token_values_to_residues(encoding, reading.answers(out.numpy()), lengths[record] - offset)
        where = np.flatnonzero(~np.isnan(values[:, 0]))
        sums[record][where + offset] += values[where]
        counts[record][where + offset] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return [s / c[:, None] for s, c in zip(sums, counts)]


def train_task(
    model,
    tokenizer,
    splits: dict[str, Split],
    encodings: dict[str, EncodedSplit | list[Encoding]],
    task: str,
    per_residue: bool,
    classes: list[str] | None,
    settings: FinetuneSettings,
    device="cpu",
    on_step=None,
    readout: str = "first",
) -> TaskResult:
    """Fine-tune on ``splits['train']``, keep the best epoch on dev, score it on test (see module docstring).
    ``encodings``: per split, one encoding per record, or an :class:`EncodedSplit` (windows of long records).
    ``readout`` (sequence tasks): what the head reads, ``first`` or ``mean`` (:class:`Readout`)."""
    device = torch.device(device)
    class_of = {c: i for i, c in enumerate(classes or [])}
    n_outputs = len(classes) if task == "classification" else 1
    torch.manual_seed(settings.seed)
    head = LinearHead(model.config.width, n_outputs)
    loss_name = "cross_entropy" if task == "classification" else "mse"
    objective = TokenTask(loss_name) if per_residue else SequenceTask(loss_name, Readout(readout))
    targets, mean, sd = training_targets(splits["train"], encodings["train"], task, per_residue, class_of)
    result = TaskResult(head, target_mean=mean, target_sd=sd)
    best = {"score": -math.inf, "state": None}

    def evaluate(split: str) -> tuple[dict, list]:
        predicted = predict_split(
            model,
            head,
            objective,
            splits[split],
            encodings[split],
            tokenizer.pad_id,
            device,
            task,
            per_residue,
            mean,
            sd,
            classes,
        )
        return split_metrics(splits[split], predicted, task, per_residue, class_of), predicted

    history: list[dict] = []

    def on_epoch(epoch: int) -> None:
        metrics, _ = evaluate("dev")
        losses = [h["loss"] for h in history if h["epoch"] == epoch]
        result.epochs.append(
            {
                "epoch": epoch,
                "train_loss": float(np.mean(losses)) if losses else float("nan"),
                **{f"dev_{k}": v for k, v in metrics.items()},
            }
        )
        score = selection_score(metrics, task)
        if score > best["score"] or best["state"] is None:
            best.update(
                score=score, epoch=epoch, state=(copy.deepcopy(model.state_dict()), copy.deepcopy(head.state_dict()))
            )

    def record_step(record: dict) -> None:
        history.append(record)
        if on_step is not None:
            on_step(record)

    fine_tune(
        model,
        head,
        objective,
        as_examples(encodings["train"]).ids,
        targets,
        settings,
        tokenizer.pad_id,
        device,
        record_step,
        on_epoch,
    )
    model.load_state_dict(best["state"][0])
    head.load_state_dict(best["state"][1])
    result.best_epoch = best["epoch"]
    result.test, result.test_predictions = evaluate("test")
    return result


# ------------------------------------------------------------------------------------------------ one run
@dataclass(frozen=True)
class FineTuneTask:
    """A sequence or per-residue task as `obte finetune classify|residue` runs it: which files it reads, the
    head it trains and describes in ``config.json`` (what `obte predict` reads back), and its prediction file."""

    kind: str  # "classify" (one label per sequence) or "residue" (one per residue)
    task: str  # "classification" or "regression"
    readout: str = "first"  # sequence tasks: what the head reads, "first" or "mean"

    @property
    def per_residue(self) -> bool:
        return self.kind == "residue"

    @property
    def long_records(self) -> str:
        """What a record longer than the context becomes unless told otherwise (:data:`LONG_RECORDS`): windows
        for a per-residue task, its first residues for a sequence task."""
        return "window" if self.per_residue else "cut"

    @property
    def refusal(self) -> str:
        """How to let through a record that an explicit refusal (``error``) stopped."""
        if self.per_residue:
            return (
                "--no-window refuses such records; leave it out to train and score them in windows, or use --truncate"
            )
        return "--no-truncate refuses such records; leave it out to cut them to the context"

    def read_split(self, path: str | Path, name: str) -> Split:
        reader = read_residue_split if self.per_residue else read_sequence_split
        return reader(path, name, self.task)

    def head_description(self, result: TaskResult, classes: list[str] | None) -> dict:
        """The ``head`` section of the fine-tuned model's config.json."""
        return {
            **result.head.describe(),
            **({} if self.per_residue else {"readout": self.readout}),
            "task": f"{self.kind}-{self.task}",
            "per_residue": self.per_residue,
            "classes": classes,
            "target_mean": result.target_mean,
            "target_sd": result.target_sd,
        }

    def write_test_predictions(self, path: Path, split: Split, predicted: list, classes: list[str] | None) -> None:
        """``id, label, predicted`` per test record; residue tasks space-separate one value per residue (NA where
        a cut (``--truncate``) left a residue without a prediction)."""

        def shown(value) -> str:
            if value != value:
                return "NA"
            return classes[int(value)] if classes else f"{value:.4g}"

        with atomic_file(path) as handle:
            handle.write("id\tlabel\tpredicted\n")
            for record, truth, values in zip(split.ids, split.labels, predicted):
                if self.per_residue:
                    handle.write(f"{record}\t{' '.join(map(str, truth))}\t{' '.join(shown(v) for v in values)}\n")
                else:
                    handle.write(f"{record}\t{truth}\t{shown(values)}\n")


@dataclass
class TaskRun:
    """What :func:`run_finetune_task` trained, and on what."""

    splits: dict[str, Split]
    classes: list[str] | None
    result: TaskResult


def read_task_splits(
    spec: FineTuneTask, files: dict[str, str | Path]
) -> tuple[dict[str, Split], list[str] | None]:
    """The train/dev/test splits of ``files`` and, for a classification, the training classes (a dev or
    test label outside them is an error naming file and record)."""
    sources = {name: str(path) for name, path in files.items()}
    splits = {name: spec.read_split(files[name], name) for name in ("train", "dev", "test")}
    if spec.task != "classification":
        return splits, None
    return splits, class_index(splits["train"], [splits["dev"], splits["test"]], spec.per_residue, sources)


def encode_task_splits(
    spec: FineTuneTask,
    splits: dict[str, Split],
    files: dict[str, str | Path],
    loaded,
    molecule: str = "auto",
    long: str | None = None,
    on_unknown: str = "error",
) -> dict[str, EncodedSplit]:
    """Every split encoded for ``loaded``'s tokenizer and context (errors name the split's file); ``long``:
    what a record longer than the context becomes (:data:`LONG_RECORDS`; None: ``spec.long_records``)."""
    long = long or spec.long_records
    if long == "window" and not spec.per_residue:
        raise ValueError("a sequence task reads one example per record: its long records are cut or refused")
    context = loaded.model.config.max_positions
    return {
        name: encode_examples(
            loaded.tokenizer, split, molecule, context, long, str(files[name]), on_unknown, spec.refusal
        )
        for name, split in splits.items()
    }


def run_finetune_task(
    spec: FineTuneTask,
    splits: dict[str, Split],
    classes: list[str] | None,
    encodings: dict[str, EncodedSplit],
    loaded,
    settings: FinetuneSettings,
    device="cpu",
    on_step=None,
) -> TaskRun:
    """:func:`train_task` on read and encoded splits: best dev epoch, scored on test."""
    result = train_task(
        loaded.model,
        loaded.tokenizer,
        splits,
        encodings,
        spec.task,
        spec.per_residue,
        classes,
        settings,
        device,
        on_step,
        spec.readout,
    )
    return TaskRun(splits, classes, result)


def save_task_run(
    directory: Path, spec: FineTuneTask, run: TaskRun, loaded, settings: FinetuneSettings, train: str | Path
) -> None:
    """Write a run's outputs into ``directory`` (a staging directory): ``model/`` (backbone + head, what
    `obte predict` loads), ``metrics.tsv`` (per epoch on dev, then the best epoch on test),
    ``test_predictions.tsv`` and ``learning_curve.png``."""
    from obte_cli.engine.core.plots import learning_curve
    from obte_cli.engine.core.tables import write_tsv
    from obte_cli.engine.model.directory import save_model

    result = run.result
    save_model(
        directory / "model",
        loaded.model,
        loaded.tokenizer,
        head=spec.head_description(result, run.classes),
        head_state=result.head.state_dict(),
        metadata={
            "task": spec.kind,
            "train": str(train),
            "best_epoch": result.best_epoch,
            "test_metrics": result.test,
            "finetune": settings.to_dict(),
        },
    )
    epochs = pd.DataFrame(result.epochs)
    test_row = {"epoch": f"test (epoch {result.best_epoch})", **{f"dev_{k}": v for k, v in result.test.items()}}
    table = pd.concat([epochs.astype({"epoch": str}), pd.DataFrame([test_row])], ignore_index=True)
    table = table.rename(columns=lambda c: c.replace("dev_", "") if c != "train_loss" else c)
    write_tsv(table, directory / "metrics.tsv")
    predictions = directory / "test_predictions.tsv"
    spec.write_test_predictions(predictions, run.splits["test"], result.test_predictions, run.classes)
    title = f"finetune {spec.kind} ({spec.task}): {Path(train).name}"
    learning_curve(result.epochs, directory / "learning_curve.png", title)

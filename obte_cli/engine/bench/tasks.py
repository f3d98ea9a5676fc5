"""`obte bench tasks`: fine-tune models on the single-omic benchmark suites, each beside a fresh-init control.

One recipe for every task and model (the paper's fine-tuning recipe as `obte finetune classify|residue`
runs it, :func:`~obte_cli.engine.finetuning.tasks.train_task`): a linear head on the first token (per
sequence) or on every residue token, AdamW with the three learning rates, OneCycleLR, ``epochs`` passes,
the epoch with the best dev score kept (MCC for classes, Spearman ρ for values) and scored on test.

A CPU budget keeps a whole suite finishing on a laptop, and is written into every output row:

* each epoch trains on a seeded random subset of the training examples holding at most
  ``max_train_tokens`` tokens (the whole split when it is smaller);
* dev and test are seeded random subsets of at most ``max_eval_examples`` examples (for classes per
  sequence, of the examples whose class the training subset holds: remote homology has 78 folds, and a
  small budget may not train on every one);
* sequences longer than the model's context are cut at their end.

The control of every model is a *fresh* model of the same architecture and tokenizer (μP initialisation,
``seed``), trained with the same recipe on the same examples: the difference between the two rows is what
pretraining brings to that task. Models of one architecture share one fresh control (trained once per
task, its row repeated under each model's name).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from obte_cli.engine.bench.suites import BenchTask
from obte_cli.engine.finetuning.tasks import Split, class_index, encode_split, train_task
from obte_cli.engine.finetuning.trainer import FinetuneSettings
from obte_cli.engine.model.directory import LoadedModel, load_model
from obte_cli.engine.model.encoder import ObteModel

RESULT_COLUMNS = [
    "suite",
    "task",
    "metric",
    "model",
    "init",
    "score",
    "best_epoch",
    "train_examples",
    "train_tokens",
    "train_available",
    "dev_examples",
    "test_examples",
    "test_available",
    "max_train_tokens",
    "max_eval_examples",
    "epochs",
    "seconds",
]
PRETRAINED, FRESH = "as given", "fresh"


@dataclass
class TaskBudget:
    max_train_tokens: int = 100_000  # per epoch
    max_eval_examples: int = 1_000  # dev and test each

    def to_dict(self) -> dict:
        return asdict(self)


def fresh_copy(loaded: LoadedModel, seed: int) -> LoadedModel:
    """A freshly initialised model of ``loaded``'s architecture, with its tokenizer (the control)."""
    torch.manual_seed(seed)
    return replace(loaded, model=ObteModel(loaded.model.config).eval(), head=None, head_state={}, metadata={})


def architecture_key(loaded: LoadedModel) -> str:
    """Models with equal keys have equal fresh controls (same architecture, tokenizer and seed)."""
    return json.dumps([asdict(loaded.model.config), loaded.tokenizer.to_config()], sort_keys=True, default=str)


def _subset(split: Split, keep: list[int]) -> Split:
    return Split(
        split.name,
        [split.ids[i] for i in keep],
        [split.sequences[i] for i in keep],
        [split.labels[i] for i in keep],
    )


def budget_splits(task: BenchTask, budget: TaskBudget, context: int, seed: int) -> dict[str, Split]:
    """The examples the budget allows (see module docstring); token counts estimated as residues + 2,
    capped at ``context`` (exact for per-residue tokenizers, an upper bound for BPE)."""
    rng = random.Random(seed)
    chosen = {}
    train = task.splits["train"]
    order = list(range(len(train.ids)))
    rng.shuffle(order)
    keep, tokens = [], 0
    for i in order:
        cost = min(len(train.sequences[i]) + 2, context)
        if keep and tokens + cost > budget.max_train_tokens:
            break
        keep.append(i)
        tokens += cost
    chosen["train"] = _subset(train, sorted(keep))
    trained_classes = set(chosen["train"].labels) if task.task == "classification" and not task.per_residue else None
    for name in ("dev", "test"):
        split = task.splits[name]
        candidates = range(len(split.ids))
        if trained_classes is not None:  # a class the training subset lacks cannot be predicted: not scored
            candidates = [i for i in candidates if split.labels[i] in trained_classes]
        n = len(candidates)
        picked = (
            sorted(rng.sample(candidates, budget.max_eval_examples)) if n > budget.max_eval_examples else candidates
        )
        chosen[name] = _subset(split, list(picked))
    return chosen


def run_task(
    loaded: LoadedModel,
    task: BenchTask,
    splits: dict[str, Split],
    settings: FinetuneSettings,
    device: torch.device | str = "cpu",
    on_step: Callable[[dict], None] | None = None,
) -> tuple[float, int]:
    """Fine-tune ``loaded`` (changed in place) on ``splits``; returns (test score in the task's metric, best epoch)."""
    context = loaded.model.config.max_positions
    encodings = {
        name: encode_split(
            loaded.tokenizer, split, task.molecule, context, True, task.source.get(name, task.name), "unk"
        )
        for name, split in splits.items()
    }
    classes = (
        class_index(splits["train"], [splits["dev"], splits["test"]], task.per_residue, task.source)
        if task.task == "classification"
        else None
    )
    result = train_task(
        loaded.model,
        loaded.tokenizer,
        splits,
        encodings,
        task.task,
        task.per_residue,
        classes,
        settings,
        device,
        on_step,
    )
    metric = {"q3": "accuracy"}.get(task.metric, task.metric)
    return float(result.test[metric]), result.best_epoch


def run_task_bench(
    models: dict[str, Path],
    tasks: list[BenchTask],
    settings: FinetuneSettings,
    budget: TaskBudget,
    device: torch.device | str = "cpu",
    fresh_control: bool = True,
    on_run: Callable[[str, str, str], None] | None = None,
    on_step: Callable[[dict], None] | None = None,
    on_result: Callable[[dict], None] | None = None,
) -> pd.DataFrame:
    """Every model (name → directory) and, with ``fresh_control``, its fresh twin, on every task: one
    row each (:data:`RESULT_COLUMNS`). ``on_run(task, model, init)`` is called before each fine-tune and
    ``on_result(row)`` after it."""
    rows = []
    for task in tasks:
        fresh_rows: dict[str, dict] = {}  # architecture + tokenizer → the fresh control's row
        for name, directory in models.items():
            for init in (PRETRAINED, FRESH) if fresh_control else (PRETRAINED,):
                loaded = load_model(directory)
                if init == FRESH:
                    shape = architecture_key(loaded)
                    if shape in fresh_rows:  # the same fresh model, already trained on this task
                        rows.append({**fresh_rows[shape], "model": name})
                        if on_result is not None:
                            on_result(rows[-1])
                        continue
                    loaded = fresh_copy(loaded, settings.seed)
                context = loaded.model.config.max_positions
                splits = budget_splits(task, budget, context, settings.seed)
                if on_run is not None:
                    on_run(task.name, name, init)
                started = time.perf_counter()
                score, best_epoch = run_task(loaded, task, splits, settings, device, on_step)
                row = {
                    "suite": task.suite,
                    "task": task.name,
                    "metric": task.metric,
                    "model": name,
                    "init": init,
                    "score": score,
                    "best_epoch": best_epoch,
                    "train_examples": len(splits["train"].ids),
                    "train_tokens": int(sum(min(len(s) + 2, context) for s in splits["train"].sequences)),
                    "train_available": len(task.splits["train"].ids),
                    "dev_examples": len(splits["dev"].ids),
                    "test_examples": len(splits["test"].ids),
                    "test_available": len(task.splits["test"].ids),
                    "max_train_tokens": budget.max_train_tokens,
                    "max_eval_examples": budget.max_eval_examples,
                    "epochs": settings.epochs,
                    "seconds": round(time.perf_counter() - started, 1),
                }
                rows.append(row)
                if init == FRESH:
                    fresh_rows[architecture_key(loaded)] = row
                if on_result is not None:
                    on_result(row)
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def score_matrix(results: pd.DataFrame) -> pd.DataFrame:
    """Tasks × (model, init) scores, for the plot and the README table."""
    labels = results["model"] + np.where(results["init"] == FRESH, " (fresh)", "")
    frame = results.assign(column=labels)
    return frame.pivot_table(index="task", columns="column", values="score", sort=False)

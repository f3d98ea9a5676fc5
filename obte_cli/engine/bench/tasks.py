"""`obte bench tasks`: the single-omic benchmark suites, every model beside a fresh-init control.

Two recipes, one for every task and model of a run:

* ``probe`` (:func:`probe_task`) — the model stays frozen; a linear model (logistic regression for classes,
  ridge for values) reads its final states, the mean over a sequence's tokens or each residue token, with
  its L2 penalty chosen on dev. It asks what the representation already holds, and a CPU affords it on
  thousands of examples per task.
* ``finetune`` (:func:`run_task`) — the paper's fine-tuning recipe as `obte finetune classify|residue`
  runs it (:func:`~obte_cli.engine.finetuning.tasks.train_task`): a linear head on the mean state or the
  first token (per sequence) or on every residue token, AdamW with the three learning rates,
  OneCycleLR, ``epochs`` passes, the epoch with the best dev score kept (MCC for classes, Spearman ρ for
  values) and scored on test. On a CPU budget of a few dozen steps a tiny model stays near chance
  (measured: MCC 0.00 on GUE tf/0 after 50,000 tokens × 2 epochs, pretrained and fresh alike); it is
  the recipe for a GPU.

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
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from obte_cli.engine.bench.suites import BenchTask
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.progress import ProgressFactory, no_progress
from obte_cli.engine.core.tables import read_table
from obte_cli.engine.finetuning.tasks import (
    Split,
    class_index,
    encode_split,
    split_metrics,
    token_targets,
    train_task,
)
from obte_cli.engine.finetuning.trainer import NO_CLASS, FinetuneSettings
from obte_cli.engine.model.directory import LoadedModel, load_model
from obte_cli.engine.model.encoder import ObteModel
from obte_cli.engine.model.inference import Readout, predict_sequence_task, predict_token_outputs
from obte_cli.engine.tokenizers.residues import token_values_to_residues

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
    "recipe",
    "epochs",
    "readout",
    "batch_size",
    "seed",
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


def estimated_tokens(sequence: str, context: int) -> int:
    """Tokens of one encoded sequence as the budget counts them: residues + tag + <EOS>, cut at ``context``
    (exact for per-residue tokenizers, an upper bound for BPE)."""
    return min(len(sequence) + 2, context)


def budget_splits(task: BenchTask, budget: TaskBudget, context: int, seed: int) -> dict[str, Split]:
    """The examples the budget allows (see module docstring), training tokens counted by :func:`estimated_tokens`."""
    rng = random.Random(seed)
    chosen = {}
    train = task.splits["train"]
    order = list(range(len(train.ids)))
    rng.shuffle(order)
    keep, tokens = [], 0
    for i in order:
        cost = estimated_tokens(train.sequences[i], context)
        if keep and tokens + cost > budget.max_train_tokens:
            break
        keep.append(i)
        tokens += cost
    chosen["train"] = train.subset(sorted(keep))
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
        chosen[name] = split.subset(list(picked))
    return chosen


def _encode_task(loaded: LoadedModel, task: BenchTask, splits: dict[str, Split]) -> tuple[dict, list[str] | None]:
    """Every split encoded for ``loaded`` (cut at its context; unknown letters read as <unk>), and the
    training classes of a classification task (None for values)."""
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
    return encodings, classes


def run_task(
    loaded: LoadedModel,
    task: BenchTask,
    splits: dict[str, Split],
    settings: FinetuneSettings,
    device: torch.device | str = "cpu",
    on_step: Callable[[dict], None] | None = None,
    readout: str = "mean",
) -> tuple[float, int]:
    """Fine-tune ``loaded`` (changed in place) on ``splits``; returns (test score in the task's metric, best epoch)."""
    encodings, classes = _encode_task(loaded, task, splits)
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
        readout,
    )
    return float(result.test[task.score_key]), result.best_epoch


PROBE_C = (0.01, 0.1, 1.0, 10.0)  # inverse L2 penalties tried for a classification probe
PROBE_ALPHA = (0.1, 1.0, 10.0, 100.0, 1000.0)  # L2 penalties tried for a regression probe
MAX_PROBE_TOKENS = 100_000  # per-residue probes fit on at most this many training residues (seeded)


def _frozen_states(loaded: LoadedModel, encodings: list, per_residue: bool, device) -> list[np.ndarray]:
    """Final hidden states of a frozen model: one mean vector per sequence, or one per token."""
    model, pad_id, ids = loaded.model, loaded.tokenizer.pad_id, [e.ids for e in encodings]
    if per_residue:
        return [s.numpy() for s in predict_token_outputs(model, torch.nn.Identity(), ids, pad_id, device)]
    return list(predict_sequence_task(model, torch.nn.Identity(), ids, pad_id, device, readout=Readout("mean")))


def probe_task(
    loaded: LoadedModel, task: BenchTask, splits: dict[str, Split], seed: int, device: torch.device | str = "cpu"
) -> float:
    """The ``probe`` recipe: the model stays frozen; a linear model on its final states (mean over a sequence's
    tokens, or each residue token) is fitted on train with its L2 penalty chosen on dev (logistic regression
    for classes, ridge for values), and scored on test in the task's metric."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    encodings, classes = _encode_task(loaded, task, splits)
    class_of = {c: i for i, c in enumerate(classes or [])}
    states = {name: _frozen_states(loaded, encodings[name], task.per_residue, device) for name in splits}

    def design(name: str) -> tuple[np.ndarray, np.ndarray]:
        """Features and targets of a split (per residue token: only tokens with a target)."""
        if not task.per_residue:
            labels = splits[name].labels
            y = np.array([class_of[v] for v in labels] if classes else labels, dtype=np.float64)
            return np.stack(states[name]), y
        xs, ys = [], []
        for encoding, labels, x in zip(encodings[name], splits[name].labels, states[name]):
            y = token_targets(encoding, labels, task.task, class_of)
            keep = y != NO_CLASS if classes else ~np.isnan(y)
            xs.append(x[keep])
            ys.append(y[keep])
        return np.concatenate(xs), np.concatenate(ys)

    x_train, y_train = design("train")
    if task.per_residue and len(y_train) > MAX_PROBE_TOKENS:
        keep = np.random.default_rng(seed).choice(len(y_train), MAX_PROBE_TOKENS, replace=False)
        x_train, y_train = x_train[keep], y_train[keep]

    def fit(penalty: float):
        if classes:
            estimator = LogisticRegression(C=penalty, max_iter=500, random_state=seed)
        else:
            estimator = Ridge(alpha=penalty)
        # At the weakest penalties a separable training set keeps lbfgs from converging in 500 iterations.
        # That fit is still a valid (less regularised) candidate, scored on dev like the others, so its
        # warning (a dozen lines per task on the user's terminal) says nothing actionable.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return make_pipeline(StandardScaler(), estimator).fit(x_train, y_train)

    def score(model, name: str) -> float:
        if not task.per_residue:
            predicted = model.predict(np.stack(states[name]))
            predicted = list(predicted.astype(int) if classes else predicted)
        else:
            predicted = [
                token_values_to_residues(e, model.predict(x).astype(float), len(seq))
                for e, x, seq in zip(encodings[name], states[name], splits[name].sequences)
            ]
        metrics = split_metrics(splits[name], predicted, task.task, task.per_residue, class_of)
        return float(metrics[task.score_key])

    best_model, best_dev = None, -np.inf
    for penalty in PROBE_C if classes else PROBE_ALPHA:
        model = fit(penalty)
        dev = score(model, "dev")
        if best_model is None or (dev == dev and dev > best_dev):
            best_model, best_dev = model, dev
    return score(best_model, "test")


def run_task_bench(
    models: dict[str, Path],
    tasks: list[BenchTask],
    settings: FinetuneSettings,
    budget: TaskBudget,
    device: torch.device | str = "cpu",
    fresh_control: bool = True,
    readout: str = "mean",
    recipe: str = "finetune",
    on_run: Callable[[str, str, str], None] | None = None,
    on_step: Callable[[dict], None] | None = None,
    on_result: Callable[[dict], None] | None = None,
    done: dict[tuple[str, str, str], dict] | None = None,
    progress: ProgressFactory = no_progress,
) -> pd.DataFrame:
    """Every model (name → directory) and, with ``fresh_control``, its fresh twin, on every task: one
    row each (:data:`RESULT_COLUMNS`). ``on_run(task, model, init)`` is called before each fine-tune and
    ``on_result(row)`` after it. ``done`` holds rows of an earlier run by (task, model, init)
    (:func:`resumable_rows`, checked by :func:`check_resumable`): they are taken as they are, not run again.
    ``progress(total, "runs")`` hears each (task, model, init) as its row is done."""
    with progress(len(tasks) * len(models) * (2 if fresh_control else 1), "runs") as advance:
        return _run_task_bench(
            models, tasks, settings, budget, device, fresh_control, readout, recipe, on_run, on_step,
            _counted(on_result, advance), done,
        )  # fmt: skip


def _counted(on_result: Callable[[dict], None] | None, advance) -> Callable[[dict], None]:
    def counted(row: dict) -> None:
        if on_result is not None:
            on_result(row)
        advance(1)

    return counted


def _run_task_bench(
    models, tasks, settings, budget, device, fresh_control, readout, recipe, on_run, on_step, on_result, done
) -> pd.DataFrame:
    rows = []
    done = done or {}
    for task in tasks:
        fresh_rows: dict[str, dict] = {}  # architecture + tokenizer → the fresh control's row
        for name, directory in models.items():
            for init in (PRETRAINED, FRESH) if fresh_control else (PRETRAINED,):
                loaded = load_model(directory)
                earlier = done.get((task.name, name, init))
                if earlier is not None:
                    rows.append(dict(earlier))
                    if init == FRESH:
                        fresh_rows.setdefault(architecture_key(loaded), rows[-1])
                    if on_result is not None:
                        on_result(rows[-1])
                    continue
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
                if recipe == "probe":
                    score, best_epoch = probe_task(loaded, task, splits, settings.seed, device), 0
                else:
                    score, best_epoch = run_task(loaded, task, splits, settings, device, on_step, readout)
                row = {
                    "suite": task.suite,
                    "task": task.name,
                    "metric": task.metric,
                    "model": name,
                    "init": init,
                    "score": score,
                    "best_epoch": best_epoch,
                    "train_examples": len(splits["train"].ids),
                    "train_tokens": sum(estimated_tokens(s, context) for s in splits["train"].sequences),
                    "train_available": len(task.splits["train"].ids),
                    "dev_examples": len(splits["dev"].ids),
                    "test_examples": len(splits["test"].ids),
                    "test_available": len(task.splits["test"].ids),
                    **_row_settings(task, budget, settings, recipe, readout),
                    "seconds": round(time.perf_counter() - started, 1),
                }
                rows.append(row)
                if init == FRESH:
                    fresh_rows[shape] = row
                if on_result is not None:
                    on_result(row)
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def _run_settings(budget: TaskBudget, settings: FinetuneSettings, recipe: str) -> dict:
    """The settings every row of a run records alike."""
    return {
        "max_train_tokens": budget.max_train_tokens,
        "max_eval_examples": budget.max_eval_examples,
        "recipe": recipe,
        "epochs": settings.epochs if recipe == "finetune" else 0,
        "batch_size": settings.batch_size if recipe == "finetune" else 0,
        "seed": settings.seed,
    }


def _row_readout(task: BenchTask, recipe: str, readout: str) -> str:
    return ("mean" if recipe == "probe" else readout) if not task.per_residue else "per-residue"


def _row_settings(task: BenchTask, budget: TaskBudget, settings: FinetuneSettings, recipe: str, readout: str) -> dict:
    """The settings a row records: what an earlier row must match to be taken into a resumed run."""
    return {**_run_settings(budget, settings, recipe), "readout": _row_readout(task, recipe, readout)}


_KEY_COLUMNS = ("task", "model", "init")


def resumable_rows(path: Path) -> dict[tuple[str, str, str], dict]:
    """The rows of an earlier ``tasks.tsv`` by (task, model, init), for ``run_task_bench(done=...)``. Names
    are read as written (a model called ``2024`` or ``NA`` stays that string); a key present twice, or a
    missing column, is an :class:`InputError`."""
    numbers_missing = {c: ["NA", "NaN", "nan", ""] for c in RESULT_COLUMNS if c not in _KEY_COLUMNS}
    try:
        previous = read_table(
            path, dtype={c: str for c in _KEY_COLUMNS}, keep_default_na=False, na_values=numbers_missing
        )
    except ValueError as exc:  # a number column holding text
        raise InputError(f"{path}: not a readable tasks.tsv ({exc})") from None
    missing = [c for c in RESULT_COLUMNS if c not in previous.columns]
    if missing:
        raise InputError(f"{path}: not a tasks.tsv of this obte version (no {missing[0]!r} column)")
    twice = previous[previous.duplicated(list(_KEY_COLUMNS))]
    if len(twice):
        task, model, init = twice.iloc[0][list(_KEY_COLUMNS)]
        raise InputError(f"{path}: {task}, {model} ({init}) is there twice")
    return {(r["task"], r["model"], r["init"]): r for r in previous[RESULT_COLUMNS].to_dict("records")}


def check_resumable(
    done: dict[tuple[str, str, str], dict],
    tasks: list[BenchTask],
    budget: TaskBudget,
    settings: FinetuneSettings,
    recipe: str,
    readout: str,
    where: str,
) -> None:
    """Every earlier row must have been made with this run's budget, recipe, epochs, batch size and seed (and
    the rows of this run's tasks with its readout): otherwise the file would mix scores that cannot be
    compared. Raises an :class:`InputError` naming the first difference."""
    by_name = {task.name: task for task in tasks}
    run_settings = _run_settings(budget, settings, recipe)
    for (task_name, name, init), earlier in done.items():
        expected = dict(run_settings)
        if task_name in by_name:  # a task of this run: its readout too (rows of other tasks are kept as they are)
            expected["readout"] = _row_readout(by_name[task_name], recipe, readout)
        for column, value in expected.items():
            if str(earlier[column]) != str(value):
                raise InputError(
                    f"{where}: {task_name}, {name} ({init}) was made with {column} {earlier[column]}, "
                    f"this run has {value} (resume with the same settings, or use another --out)"
                )


def wins_over_fresh(results: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """Per model: (tasks where it scores above its fresh-init control, tasks with both scores)."""
    given = results[results["init"] == PRETRAINED].set_index(["task", "model"])["score"]
    fresh = results[results["init"] == FRESH].set_index(["task", "model"])["score"]
    both = pd.concat([given.rename("given"), fresh.rename("fresh")], axis=1, join="inner").dropna()
    return {
        model: (int((rows["given"] > rows["fresh"]).sum()), len(rows))
        for model, rows in both.groupby(level="model", sort=False)
    }


METRIC_LABELS = {"mcc": "MCC", "q3": "Q3 (per residue)", "spearman": "Spearman ρ", "accuracy": "accuracy"}


def score_matrix(results: pd.DataFrame) -> pd.DataFrame:
    """Tasks × (model, init) scores, for the plot and the README table."""
    labels = results["model"] + np.where(results["init"] == FRESH, " (fresh)", "")
    frame = results.assign(column=labels)
    return frame.pivot_table(index="task", columns="column", values="score", sort=False)


def resume_rows(
    path: Path,
    resume: bool,
    tasks: list[BenchTask],
    names: list[str],
    fresh_control: bool,
    budget: TaskBudget,
    settings: FinetuneSettings,
    recipe: str,
    readout: str,
) -> tuple[dict, list[dict]]:
    """For ``--resume``: the rows of an earlier ``tasks.tsv`` (checked to share this run's budget, recipe and
    seed) by (task, model, init), and those of them this run does not redo (other tasks or models: kept as
    they are). Without ``resume``: nothing."""
    earlier = resumable_rows(path) if resume and path.is_file() else {}
    check_resumable(earlier, tasks, budget, settings, recipe, readout, str(path))
    inits = (PRETRAINED, FRESH) if fresh_control else (PRETRAINED,)
    this_run = {(t.name, name, init) for t in tasks for name in names for init in inits}
    return earlier, [row for key, row in earlier.items() if key not in this_run]


def write_task_bench_outputs(
    results: pd.DataFrame, kept: list[dict], out: Path, budget: TaskBudget
) -> dict[str, tuple[int, int]]:
    """``tasks.png`` (every row: this run's and the kept ones; one panel per metric) in ``out``; returns
    :func:`wins_over_fresh`."""
    from obte_cli.engine.core.plots import score_grid

    if kept:
        results = pd.concat([results, pd.DataFrame(kept, columns=RESULT_COLUMNS)], ignore_index=True)
    title = (
        f"single-omic tasks ({budget.max_train_tokens:,} training tokens per epoch, "
        f"≤ {budget.max_eval_examples:,} test examples)"
    )
    panels = [
        (METRIC_LABELS.get(metric, metric), score_matrix(results[results["metric"] == metric]))
        for metric in dict.fromkeys(results["metric"])
    ]
    score_grid(panels, out / "tasks.png", title)
    return wins_over_fresh(results)

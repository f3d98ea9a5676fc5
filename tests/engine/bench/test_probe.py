"""The probe recipe of `obte bench tasks` on real sequences (tests/data/tasks): a linear model on frozen states."""

import csv

import pytest
import torch
from conftest import DATA

from obte_cli.engine.bench.suites import BenchTask
from obte_cli.engine.bench.tasks import TaskBudget, budget_splits, probe_task
from obte_cli.engine.finetuning.tasks import read_residue_split, read_sequence_split
from obte_cli.engine.model.directory import LoadedModel
from obte_cli.engine.model.encoder import ObteModel, padded_vocab_size, preset_config
from obte_cli.engine.tokenizers.loading import load_tokenizer

SPLITS = ("train", "dev", "test")


@pytest.fixture(scope="module")
def fresh_micro():
    tokenizer = load_tokenizer("residue")
    torch.manual_seed(0)
    model = ObteModel(preset_config("micro", padded_vocab_size(tokenizer.vocab_size), max_positions=256)).eval()
    return LoadedModel(model, tokenizer)


def test_probe_reads_what_a_random_encoder_keeps_of_composition(fresh_micro):
    """Coding vs non-coding chloroplast windows differ in base composition, which even random features keep:
    the probe must find it on test (MCC well above 0), and a probe of labels shuffled in training must not."""
    splits = {s: read_sequence_split(DATA / "tasks" / f"coding_{s}.csv", s, "classification") for s in SPLITS}
    task = BenchTask("gue", "gue/coding", "classification", False, "DNA", "mcc", splits)
    assert probe_task(fresh_micro, task, splits, seed=0) > 0.3
    shuffled = dict(splits)
    labels = list(splits["train"].labels)
    labels = labels[1:] + labels[:1]  # each window given its neighbour's label: no relation left
    shuffled["train"] = type(splits["train"])("train", splits["train"].ids, splits["train"].sequences, labels)
    assert abs(probe_task(fresh_micro, task, shuffled, seed=0)) < 0.25


def test_per_residue_probe_scores_every_labelled_residue(fresh_micro):
    splits = {s: read_residue_split(DATA / "tasks" / f"hydropathy_{s}.tsv", s, "classification") for s in SPLITS}
    task = BenchTask("ss3", "ss3/hydropathy", "classification", True, "protein", "q3", splits)
    q3 = probe_task(fresh_micro, task, splits, seed=0)
    with open(DATA / "tasks" / "hydropathy_test.tsv") as handle:
        labels = "".join(r["labels"] for r in csv.DictReader(handle, delimiter="\t"))
    majority = max(labels.count("H"), labels.count("P")) / len(labels)
    # a residue's own letter decides its hydropathy class, and its token state keeps the letter
    assert q3 > max(0.8, majority + 0.1)


def test_budget_keeps_dev_and_test_to_trained_classes():
    splits = {s: read_sequence_split(DATA / "tasks" / f"coding_{s}.csv", s, "classification") for s in SPLITS}
    task = BenchTask("gue", "gue/coding", "classification", False, "DNA", "mcc", splits)
    chosen = budget_splits(task, TaskBudget(max_train_tokens=1000, max_eval_examples=10), context=256, seed=0)
    assert sum(len(s) + 2 for s in chosen["train"].sequences) <= 1000
    assert len(chosen["dev"].ids) == len(chosen["test"].ids) == 10
    assert set(chosen["test"].labels) <= set(chosen["train"].labels)
    again = budget_splits(task, TaskBudget(max_train_tokens=1000, max_eval_examples=10), context=256, seed=0)
    assert again["train"].ids == chosen["train"].ids and again["test"].ids == chosen["test"].ids  # seeded


def test_probe_keeps_sklearn_convergence_warnings_off_the_terminal(fresh_micro, monkeypatch):
    """At the weakest penalties lbfgs can stop at its iteration limit (GUE tasks do, a dozen warning lines each);
    those fits stay candidates, but their warnings must not reach the user's stderr. Here every fit is cut to
    one iteration, so each one warns."""
    import warnings

    import sklearn.linear_model
    from sklearn.exceptions import ConvergenceWarning

    class OneIteration(sklearn.linear_model.LogisticRegression):
        def __init__(self, C=1.0, max_iter=100, random_state=None):
            super().__init__(C=C, max_iter=1, random_state=random_state)

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        OneIteration().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    assert any(issubclass(w.category, ConvergenceWarning) for w in seen)  # the patched fit does warn

    monkeypatch.setattr(sklearn.linear_model, "LogisticRegression", OneIteration)
    splits = {s: read_sequence_split(DATA / "tasks" / f"coding_{s}.csv", s, "classification") for s in SPLITS}
    task = BenchTask("gue", "gue/coding", "classification", False, "DNA", "mcc", splits)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probe_task(fresh_micro, task, splits, seed=0)

"""`obte finetune classify` / `obte finetune residue` on real-sequence fixtures (tests/data/tasks)."""

import numpy as np
import pandas as pd
import pytest
from conftest import DATA, obte

from obte_cli.engine.finetuning.tasks import token_targets
from obte_cli.engine.model.directory import load_model
from obte_cli.engine.tokenizers.base import Segment
from obte_cli.engine.tokenizers.residues import token_values_to_residues

TASKS = DATA / "tasks"


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    root = tmp_path_factory.mktemp("backbones")
    for name, tok in (("residue", "residue"), ("bpe", "omnibiote-mixed")):
        assert (
            obte(
                "model", "init", "--preset", "micro", "-t", tok, "--context", "256", "-o", root / name, "--seed", "2"
            ).exit_code
            == 0
        )
    return {"residue": root / "residue", "bpe": root / "bpe"}


def _splits(stem, suffix):
    return [
        "--train",
        TASKS / f"{stem}_train.{suffix}",
        "--dev",
        TASKS / f"{stem}_dev.{suffix}",
        "--test",
        TASKS / f"{stem}_test.{suffix}",
    ]


def test_classification_beats_the_majority_class(backbones, tmp_path):
    out = tmp_path / "cls"
    result = obte(
        "finetune",
        "classify",
        *_splits("coding", "csv"),
        "-m",
        backbones["residue"],
        "-o",
        out,
        "--epochs",
        "4",
        "--batch-size",
        "16",
        "--seed",
        "0",
    )
    assert result.exit_code == 0, result.output
    metrics = pd.read_csv(out / "metrics.tsv", sep="\t", dtype={"epoch": str})
    test = metrics[metrics["epoch"].str.startswith("test")].iloc[0]
    majority = pd.read_csv(TASKS / "coding_test.csv")["label"].value_counts(normalize=True).max()
    assert test["accuracy"] > majority + 0.1 and test["mcc"] > 0.2
    best = int(test["epoch"].split()[-1].rstrip(")"))
    dev = metrics[~metrics["epoch"].str.startswith("test")]
    assert dev["mcc"].idxmax() == best - 1  # the kept model is the best dev epoch
    loaded = load_model(out / "model")
    assert loaded.head["classes"] == ["coding", "noncoding"] and loaded.head_state["proj.weight"].shape[0] == 2
    predictions = pd.read_csv(out / "test_predictions.tsv", sep="\t")
    assert len(predictions) == 92 and set(predictions["predicted"]) <= {"coding", "noncoding"}
    assert (out / "learning_curve.png").is_file()


def test_sequence_regression(backbones, tmp_path):
    for name in ("train", "dev", "test"):
        table = pd.read_csv(TASKS / f"coding_{name}.csv")
        table["label"] = table["sequence"].map(lambda s: (s.count("G") + s.count("C")) / len(s))
        table.to_csv(tmp_path / f"gc_{name}.csv", index=False)
    args = ["--train", tmp_path / "gc_train.csv", "--dev", tmp_path / "gc_dev.csv", "--test", tmp_path / "gc_test.csv"]
    result = obte(
        "finetune",
        "classify",
        *args,
        "--task",
        "regression",
        "-m",
        backbones["residue"],
        "-o",
        tmp_path / "reg",
        "--epochs",
        "4",
        "--batch-size",
        "16",
    )
    assert result.exit_code == 0, result.output
    test = pd.read_csv(tmp_path / "reg" / "metrics.tsv", sep="\t", dtype={"epoch": str}).iloc[-1]
    assert test["spearman"] > 0.5
    predictions = pd.read_csv(tmp_path / "reg" / "test_predictions.tsv", sep="\t")
    assert list(predictions["id"]) == list(pd.read_csv(tmp_path / "gc_test.csv")["id"])  # every record, in order
    assert load_model(tmp_path / "reg" / "model").head["readout"] == "first"
    mean = obte("finetune", "classify", *args, "--task", "regression", "-m", backbones["residue"], "-o",
                tmp_path / "mean", "--epochs", "4", "--batch-size", "16", "--readout", "mean")  # fmt: skip
    assert mean.exit_code == 0, mean.output
    assert load_model(tmp_path / "mean" / "model").head["readout"] == "mean"
    # GC content is a mean over the residues: the mean readout learns it at least as well as the tag does
    mean_test = pd.read_csv(tmp_path / "mean" / "metrics.tsv", sep="\t", dtype={"epoch": str}).iloc[-1]
    assert mean_test["spearman"] > 0.5


@pytest.mark.parametrize("kind", ["residue", "bpe"])
def test_per_residue_task_scores_every_residue(backbones, tmp_path, kind):
    out = tmp_path / kind
    result = obte(
        "finetune",
        "residue",
        *_splits("hydropathy", "tsv"),
        "-m",
        backbones[kind],
        "-o",
        out,
        "--epochs",
        "3",
        "--batch-size",
        "8",
    )
    assert result.exit_code == 0, result.output
    predictions = pd.read_csv(out / "test_predictions.tsv", sep="\t")
    truth = pd.read_csv(TASKS / "hydropathy_test.tsv", sep="\t")
    assert list(predictions["id"]) == list(truth["id"])  # one row per test record, in input order
    for (_, p), (_, t) in zip(predictions.iterrows(), truth.iterrows()):
        assert len(p["predicted"].split()) == len(t["sequence"])  # one prediction per residue, always
    test = pd.read_csv(out / "metrics.tsv", sep="\t", dtype={"epoch": str}).iloc[-1]
    if kind == "residue":
        # (a 65,536-piece BPE model sees too few repeats of each token in 60 proteins to generalise;
        # for it this test checks the token → residue bookkeeping, not accuracy)
        labels = "".join(truth["labels"])
        majority = max(labels.count("H"), labels.count("P")) / len(labels)
        assert test["accuracy"] > majority + 0.05


def test_bpe_span_targets_and_expansion(backbones):
    tok = load_model(backbones["bpe"]).tokenizer
    sequence = "MKKLLPTAAAGLLLLAAQPAMA"
    labels = list("PPPHHPPHHHHHHHHHHPPHPH")
    enc = tok.encode_one([Segment(sequence, "protein")])
    targets = token_targets(enc, labels, "classification", {"H": 0, "P": 1})
    assert targets[0] == -100 and targets[-1] == -100  # tag and <EOS> are not trained
    for t in np.flatnonzero(enc.is_residue):
        covered = labels[enc.start[t] : enc.end[t]]
        chosen = "HP"[int(targets[t])]
        assert covered.count(chosen) == max(covered.count("H"), covered.count("P"))  # a most common label
    expanded = token_values_to_residues(enc, np.arange(len(enc), dtype=float), len(sequence))
    assert len(expanded) == len(sequence) and not np.isnan(expanded).any()
    assert sorted(set(expanded.tolist())) == np.flatnonzero(enc.is_residue).tolist()


@pytest.mark.parametrize(
    "kind, files, message",
    [
        ("classify", {"train": "seq,cls\nACGT,a\n"}, "header must have 'sequence' and 'label'"),
        ("classify", {"test": "sequence,label\nACGTACGT,zzz\n"}, "label 'zzz' does not occur in the training split"),
        ("classify", {"dev": "sequence,label\n"}, "the dev split is empty"),
        ("residue", {"train": "id\tsequence\tlabels\np1\tMKV\tHH\n"}, "record 'p1' has 2 labels for 3 residues"),
    ],
)
def test_bad_task_files_are_one_line_errors(backbones, tmp_path, kind, files, message):
    stem, suffix = ("coding", "csv") if kind == "classify" else ("hydropathy", "tsv")
    paths = {}
    for split in ("train", "dev", "test"):
        path = tmp_path / f"{split}.{suffix}"
        path.write_text(files[split] if split in files else (TASKS / f"{stem}_{split}.{suffix}").read_text())
        paths[split] = path
    result = obte(
        "finetune",
        kind,
        "--train",
        paths["train"],
        "--dev",
        paths["dev"],
        "--test",
        paths["test"],
        "-m",
        backbones["residue"],
        "-o",
        tmp_path / "out",
    )
    assert result.exit_code == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and message in line and "Traceback" not in result.stderr

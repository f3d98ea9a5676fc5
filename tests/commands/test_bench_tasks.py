"""`obte bench tasks` end to end: one short fine-tune per suite on real benchmark rows from ../shared/data
(skipped without them), with a fresh-init control and the CPU budget recorded in every row."""

import shutil

import pandas as pd
import pytest
from conftest import SHARED_DATA, obte, shared_file

BUDGET = ["--max-train-tokens", "12000", "--max-eval-examples", "40", "--epochs", "1", "--batch-size", "16"]


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench-tasks") / "micro"
    assert obte("model", "init", "--preset", "micro", "--context", "256", "-o", path, "--seed", "2").exit_code == 0
    return path


@pytest.fixture(scope="module")
def suite_run(micro, tmp_path_factory):
    for part in ("gue", "flip", "scope"):
        shared_file(part)
    out = tmp_path_factory.mktemp("bench-tasks") / "out"
    tasks = ["gue/prom/prom_core_tata", "ss3/flip", "gb1/three_vs_rest", "homology/scope40-fold"]
    args = ["bench", "tasks", "--data", SHARED_DATA, "-m", micro, "--device", "cpu", "-o", out, *BUDGET]
    result = obte(*args, *[a for t in tasks for a in ("--task", t)])
    assert result.exit_code == 0, result.output
    return out, result, tasks


def test_every_suite_runs_beside_its_fresh_control(suite_run):
    out, result, tasks = suite_run
    table = pd.read_csv(out / "tasks.tsv", sep="\t")
    printed = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert printed[0] == list(table.columns) and len(printed) == len(table) + 1
    assert list(table["task"]) == [t for t in tasks for _ in range(2)]
    assert list(table["init"]) == ["as given", "fresh"] * len(tasks)
    assert list(table.drop_duplicates("task")["metric"]) == ["mcc", "q3", "spearman", "accuracy"]
    assert table["score"].between(-1, 1).all()
    # the budget is in every row, and was kept
    assert (table["max_train_tokens"] == 12000).all() and (table["max_eval_examples"] == 40).all()
    assert (table["train_tokens"] <= 12000).all() and (table["test_examples"] <= 40).all()
    assert (table["test_available"] >= table["test_examples"]).all()
    assert (out / "tasks.png").read_bytes()[:4] == b"\x89PNG"


def test_models_of_one_architecture_share_their_fresh_control(micro, tmp_path):
    shared_file("gue")
    twin = tmp_path / "twin"
    shutil.copytree(micro, twin)
    args = ["bench", "tasks", "--data", SHARED_DATA, "-m", micro, "-m", twin, "--device", "cpu", *BUDGET]
    result = obte(*args, "--suite", "gue", "--task", "gue/tf/2", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "out" / "tasks.tsv", sep="\t")
    assert list(zip(table["model"], table["init"])) == [
        ("micro", "as given"),
        ("micro", "fresh"),
        ("twin", "as given"),
        ("twin", "fresh"),
    ]
    assert result.stderr.count("(fresh)\n") + result.stderr.count("(fresh)") >= 1
    assert result.stderr.count("fine-tuning micro on gue/tf/2 (fresh)") == 1
    assert "fine-tuning twin on gue/tf/2 (fresh)" not in result.stderr  # trained once
    fresh = table[table["init"] == "fresh"]
    assert fresh["score"].nunique() == 1
    # two equal models trained alike score alike
    assert table[table["init"] == "as given"]["score"].nunique() == 1


def test_unknown_task_and_suite(micro, tmp_path):
    shared_file("gue")
    result = obte("bench", "tasks", "--data", SHARED_DATA, "-m", micro, "--suite", "gue", "--task", "gue/nope", "-o",
                  tmp_path / "x")  # fmt: skip
    assert result.exit_code == 1 and "--task gue/nope: no such task in gue" in result.stderr
    assert not (tmp_path / "x").exists()
    bad = obte("bench", "tasks", "--data", SHARED_DATA, "--suite", "protein", "-o", tmp_path / "y")
    assert bad.exit_code == 2


def test_missing_data_root_is_a_one_line_error(micro, tmp_path):
    result = obte("bench", "tasks", "--data", tmp_path / "none", "-m", micro, "--suite", "gb1", "-o", tmp_path / "x")
    assert result.exit_code == 1 and "no such file" in result.stderr and "Traceback" not in result.output

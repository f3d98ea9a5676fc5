"""`obte bench tasks` end to end: one short fine-tune per suite, with a fresh-init control and the CPU budget
recorded in every row, on a data root in the benchmarks' own layouts filled from tests/data (the loaders
on the real benchmark files are tests/engine/bench/test_suites.py)."""

import csv
import shutil

import pandas as pd
import pytest
from conftest import DATA, obte

BUDGET = ["--max-train-tokens", "12000", "--max-eval-examples", "40", "--epochs", "1", "--batch-size", "16"]
SPLITS = ("train", "dev", "test")


def _rows(name, split, delimiter):
    with open(DATA / "tasks" / f"{name}_{split}.{'csv' if delimiter == ',' else 'tsv'}", newline="") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def _write_data_root(root):
    """The layouts `obte bench tasks --data` reads (see obte_cli/engine/bench/suites.py), with the real sequences
    of tests/data/tasks: GUE = the chloroplast coding windows (label 1 inside a CDS), whole and cut to their
    first 50 nt; FLIP secondary structure = the hydropathy proteins, H residues as helix (H) and P as coil (C),
    the first residue of each masked as unresolved; FLIP GB1 = the same proteins, target their fraction of H
    residues; SCOPe = the same proteins, the more hydrophobic half in fold a.1, the rest in b.1, three
    superfamilies each."""
    for task, cut in (("coding", None), ("coding-50", 50)):
        for split in SPLITS:
            folder = root / "gue" / "chloroplast" / task
            folder.mkdir(parents=True, exist_ok=True)
            rows = _rows("coding", split, ",")
            lines = [f"{r['sequence'][:cut]},{int(r['label'] == 'coding')}\n" for r in rows]
            (folder / f"{split}.csv").write_text("sequence,label\n" + "".join(lines))
    proteins = {split: _rows("hydropathy", split, "\t") for split in SPLITS}
    flags = {
        "train": "SET=train VALIDATION=False",
        "dev": "SET=train VALIDATION=True",
        "test": "SET=test VALIDATION=False",
    }
    every = [(split, r) for split in SPLITS for r in proteins[split]]
    ss3 = root / "flip" / "secondary_structure"
    ss3.mkdir(parents=True)
    (ss3 / "sequences.fasta").write_text("".join(f">{r['id']}\n{r['sequence']}\n" for _, r in every))
    sampled = "".join(f">{r['id']} {flags[s]}\n{r['labels'].replace('P', 'C')}\n" for s, r in every)
    (ss3 / "sampled.fasta").write_text(sampled)
    (ss3 / "mask.fasta").write_text("".join(f">{r['id']}\n0{'1' * (len(r['sequence']) - 1)}\n" for _, r in every))
    gb1 = root / "flip" / "gb1"
    gb1.mkdir(parents=True)
    table = [
        f"{r['sequence']},{r['labels'].count('H') / len(r['labels']):.4f},{'test' if s == 'test' else 'train'},"
        f"{'True' if s == 'dev' else ''}\n"
        for s, r in every
    ]
    (gb1 / "three_vs_rest.csv").write_text("sequence,target,set,validation\n" + "".join(table))
    scope = root / "scope"
    scope.mkdir()
    hydrophobic = [r["labels"].count("H") / len(r["labels"]) for _, r in every]
    median = sorted(hydrophobic)[len(hydrophobic) // 2]
    domains = []
    for i, (_, r) in enumerate(every):
        fold = "a.1" if hydrophobic[i] >= median else "b.1"
        domains.append(f">d{i:04d}a_ {fold}.{i % 3 + 1}.1 (A:) {r['id']}\n{r['sequence'].lower()}\n")
    (scope / "astral_2.07_40.fa").write_text("".join(domains))
    return root


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return _write_data_root(tmp_path_factory.mktemp("bench-data"))


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench-tasks") / "micro"
    assert obte("model", "init", "--preset", "micro", "--context", "256", "-o", path, "--seed", "2").exit_code == 0
    return path


@pytest.fixture(scope="module")
def suite_run(micro, data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-tasks") / "out"
    tasks = ["gue/chloroplast/coding", "ss3/flip", "gb1/three_vs_rest", "homology/scope40-fold"]
    args = ["bench", "tasks", "--data", data_root, "-m", micro, "--device", "cpu", "-o", out, *BUDGET]
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
    # the default recipe: a linear probe of the frozen model (no epochs), mean states per sequence
    assert (table["recipe"] == "probe").all() and (table["epochs"] == 0).all()
    assert list(table["readout"]) == ["mean", "mean", "per-residue", "per-residue", "mean", "mean", "mean", "mean"]
    given, fresh = table[table["init"] == "as given"], table[table["init"] == "fresh"]
    wins = int((given["score"].to_numpy() > fresh["score"].to_numpy()).sum())
    assert f"micro beats its fresh-init control on {wins} of 4 tasks" in result.stderr


def test_the_finetune_recipe(micro, data_root, tmp_path):
    args = ["bench", "tasks", "--data", data_root, "-m", micro, "--device", "cpu", *BUDGET, "--no-fresh-control"]
    result = obte(*args, "--recipe", "finetune", "--readout", "first", "--task", "gue/chloroplast/coding",
                  "--task", "ss3/flip", "-o", tmp_path / "out")  # fmt: skip
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "out" / "tasks.tsv", sep="\t")
    assert list(table["init"]) == ["as given", "as given"] and (table["recipe"] == "finetune").all()
    assert list(table["readout"]) == ["first", "per-residue"] and (table["epochs"] == 1).all()
    assert (table["best_epoch"] == 1).all() and table["score"].between(-1, 1).all()
    assert "finetune: micro on ss3/flip (as given)" in result.stderr


def test_models_of_one_architecture_share_their_fresh_control(micro, data_root, tmp_path):
    twin = tmp_path / "twin"
    shutil.copytree(micro, twin)
    args = ["bench", "tasks", "--data", data_root, "-m", micro, "-m", twin, "--device", "cpu", *BUDGET]
    result = obte(*args, "--suite", "gue", "--task", "gue/chloroplast/coding-50", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "out" / "tasks.tsv", sep="\t")
    assert list(zip(table["model"], table["init"])) == [
        ("micro", "as given"),
        ("micro", "fresh"),
        ("twin", "as given"),
        ("twin", "fresh"),
    ]
    assert result.stderr.count("probe: micro on gue/chloroplast/coding-50 (fresh)") == 1
    assert "probe: twin on gue/chloroplast/coding-50 (fresh)" not in result.stderr  # trained once
    fresh = table[table["init"] == "fresh"]
    assert fresh["score"].nunique() == 1
    # two equal models trained alike score alike
    assert table[table["init"] == "as given"]["score"].nunique() == 1


def test_unknown_task_and_suite(micro, data_root, tmp_path):
    result = obte("bench", "tasks", "--data", data_root, "-m", micro, "--suite", "gue", "--task", "gue/nope", "-o",
                  tmp_path / "x")  # fmt: skip
    assert result.exit_code == 1 and "--task gue/nope: no such task in gue" in result.stderr
    assert not (tmp_path / "x").exists()
    bad = obte("bench", "tasks", "--data", data_root, "--suite", "protein", "-o", tmp_path / "y")
    assert bad.exit_code == 2


def test_missing_data_root_is_a_one_line_error(micro, tmp_path):
    result = obte("bench", "tasks", "--data", tmp_path / "none", "-m", micro, "--suite", "gb1", "-o", tmp_path / "x")
    assert result.exit_code == 1 and "no such file" in result.stderr and "Traceback" not in result.output


def test_resume_keeps_the_rows_done_and_runs_the_rest(micro, data_root, tmp_path):
    out = tmp_path / "out"
    args = ["bench", "tasks", "--data", data_root, "-m", micro, "--device", "cpu", *BUDGET, "-o", out]
    first = obte(*args, "--task", "gue/chloroplast/coding-50")
    assert first.exit_code == 0, first.output
    before = pd.read_csv(out / "tasks.tsv", sep="\t")
    assert (before["seed"] == 0).all()
    assert obte(*args, "--task", "gue/chloroplast/coding").exit_code == 1  # OUT exists: --force or --resume
    both = ("--task", "gue/chloroplast/coding", "--task", "gue/chloroplast/coding-50")
    resumed = obte(*args, *both, "--resume")
    assert resumed.exit_code == 0, resumed.output
    table = pd.read_csv(out / "tasks.tsv", sep="\t")
    assert list(table["task"]) == ["gue/chloroplast/coding"] * 2 + ["gue/chloroplast/coding-50"] * 2  # task order
    pd.testing.assert_frame_equal(table.iloc[2:].reset_index(drop=True), before)  # kept as they were
    assert (
        "on gue/chloroplast/coding-50" not in resumed.stderr and "micro on gue/chloroplast/coding (" in resumed.stderr
    )
    # a narrower resumed run keeps the rows it does not make
    narrower = obte(*args, "--task", "gue/chloroplast/coding", "--resume")
    assert narrower.exit_code == 0, narrower.output
    pd.testing.assert_frame_equal(pd.read_csv(out / "tasks.tsv", sep="\t"), table)
    # rows made otherwise are not mixed in, and --resume cannot be combined with --force
    other = obte(*[a if a != "12000" else "6000" for a in args], "--task", "gue/chloroplast/coding", "--resume")
    assert other.exit_code == 1 and "made with max_train_tokens 12000, this run has 6000" in other.stderr
    assert len(pd.read_csv(out / "tasks.tsv", sep="\t")) == 4
    assert "give one of them" in obte(*args, "--resume", "--force").stderr


def test_resumable_rows_reads_names_as_written_and_refuses_a_key_twice(tmp_path):
    from obte_cli.engine.bench.tasks import RESULT_COLUMNS, resumable_rows
    from obte_cli.engine.core.errors import InputError

    row = {c: "1" for c in RESULT_COLUMNS} | {"task": "gue/x", "model": "NA", "init": "fresh", "score": "NA"}
    path = tmp_path / "tasks.tsv"
    pd.DataFrame([row, row | {"model": "2024"}]).to_csv(path, sep="\t", index=False)
    rows = resumable_rows(path)
    assert set(rows) == {("gue/x", "NA", "fresh"), ("gue/x", "2024", "fresh")}
    assert pd.isna(rows[("gue/x", "NA", "fresh")]["score"])
    pd.DataFrame([row, row]).to_csv(path, sep="\t", index=False)
    with pytest.raises(InputError, match="gue/x, NA \\(fresh\\) is there twice"):
        resumable_rows(path)


def test_tasks_table_script_writes_the_readme_table(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from obte_cli.engine.bench.tasks import RESULT_COLUMNS

    rows = []
    for task, scores in (("gue/a", (0.5, 0.2, 0.1)), ("gue/b", (0.1, 0.4, 0.3))):
        for model, init, score in (("omni", "as given", scores[0]), ("omni", "fresh", scores[2]),
                                   ("other", "as given", scores[1]), ("other", "fresh", scores[2])):  # fmt: skip
            rows.append({c: 0 for c in RESULT_COLUMNS} | {"task": task, "metric": "mcc", "model": model,
                                                          "init": init, "score": score})  # fmt: skip
    first, second = tmp_path / "one.tsv", tmp_path / "two.tsv"
    pd.DataFrame(rows[:4]).to_csv(first, sep="\t", index=False)
    pd.DataFrame(rows[4:]).to_csv(second, sep="\t", index=False)
    script = Path(__file__).parents[2] / "scripts" / "tasks-table.py"
    run = subprocess.run([sys.executable, script, first, second], capture_output=True, text=True, check=True)
    lines = run.stdout.strip().splitlines()
    assert lines[0] == "| task | metric | omni | other | fresh init |"
    assert lines[2] == "| gue/a | mcc | **0.500** | 0.200 | 0.100 |"
    assert lines[3] == "| gue/b | mcc | 0.100 | **0.400** | 0.300 |"
    assert lines[4] == "| beats fresh init on | | 1/2 | 2/2 | |"
    twice = subprocess.run([sys.executable, script, first, first], capture_output=True, text=True)
    assert twice.returncode != 0 and "present twice" in twice.stderr

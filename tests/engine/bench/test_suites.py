"""Loaders of `obte bench tasks`: the real benchmark files in ../shared/data (skipped without them), and small
files in the same formats for the error paths and the split rules."""

import numpy as np
import pytest
from conftest import shared_file

from obte_cli.engine.bench.suites import gb1_task, gue_tasks, homology_task, read_scop_domains, ss3_task
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.finetuning.tasks import NO_CLASS, Split, class_index, split_metrics, token_targets
from obte_cli.engine.tokenizers.base import Segment
from obte_cli.engine.tokenizers.loading import load_tokenizer


# ------------------------------------------------------------------------------------------------ real files
# The whole benchmarks (tens of MB, ../shared/data only): their sizes and splits as published.
@pytest.mark.slow
def test_gue_has_its_13_tasks_with_binary_labels():
    tasks = gue_tasks(shared_file("gue"))
    assert len(tasks) == 13
    assert {t.name for t in tasks} >= {"gue/prom/prom_core_all", "gue/tf/0", "gue/mouse/4"}
    for task in tasks:
        assert (task.metric, task.molecule, task.per_residue) == ("mcc", "DNA", False)
        assert set(task.splits["train"].labels) == {"0", "1"}
        assert all(len(task.splits[s].ids) > 0 for s in ("train", "dev", "test"))


@pytest.mark.slow
def test_ss3_reads_flip_sets_and_masks():
    task = ss3_task(shared_file("flip", "secondary_structure"))
    assert {s: len(v.ids) for s, v in task.splits.items()} == {"train": 9712, "dev": 1080, "test": 364}
    masks = {}
    for line_id, line in zip(
        *[iter(open(shared_file("flip", "secondary_structure", "mask.fasta")).read().split())] * 2
    ):
        masks[line_id[1:]] = line
    chain = task.splits["train"].ids[0]
    labels = task.splits["train"].labels[0]
    assert [label is None for label in labels] == [m == "0" for m in masks[chain]]
    assert {v for v in labels if v is not None} <= {"H", "E", "C"}
    assert len(labels) == len(task.splits["train"].sequences[0])


@pytest.mark.slow
def test_gb1_three_vs_rest():
    task = gb1_task(shared_file("flip", "gb1"))
    assert {s: len(v.ids) for s, v in task.splits.items()} == {"train": 2691, "dev": 299, "test": 5743}
    assert task.metric == "spearman" and all(np.isfinite(task.splits["test"].labels))


@pytest.mark.slow
def test_homology_holds_out_whole_superfamilies():
    path = shared_file("scope", "astral_2.07_40.fa")
    task = homology_task(path, seed=0)
    superfamily = {d.id: d.superfamily for d in read_scop_domains(path)}
    train_sf = {superfamily[i] for i in task.splits["train"].ids + task.splits["dev"].ids}
    test_sf = {superfamily[i] for i in task.splits["test"].ids}
    assert not train_sf & test_sf  # no test superfamily was ever seen in training
    assert set(task.splits["test"].labels) <= set(task.splits["train"].labels)
    assert len(task.splits["test"].ids) > 300 and len(set(task.splits["train"].labels)) > 50
    again = homology_task(path, seed=0)
    assert again.splits["test"].ids == task.splits["test"].ids  # seeded
    assert homology_task(path, seed=1).splits["test"].ids != task.splits["test"].ids


# ------------------------------------------------------------------------------------------------ small files
def _write_flip_ss(folder, records, sampled_header="SET=train VALIDATION=False"):
    folder.mkdir()
    (folder / "sequences.fasta").write_text("".join(f">{i}\n{s}\n" for i, s, _, _ in records))
    (folder / "sampled.fasta").write_text("".join(f">{i} {h or sampled_header}\n{lab}\n" for i, _, lab, h in records))
    (folder / "mask.fasta").write_text("".join(f">{i}\n{'0' + '1' * (len(s) - 1)}\n" for i, s, _, _ in records))
    return folder


def test_ss3_small_file_and_its_errors(tmp_path):
    records = [
        ("a", "MKTAYIAK", "CHHHHHEC", "SET=train VALIDATION=False"),
        ("b", "GSHMLEDP", "CEEEECCC", "SET=train VALIDATION=True"),
        ("c", "MSDNELKK", "CCHHHHCC", "SET=test VALIDATION=False"),
    ]
    task = ss3_task(_write_flip_ss(tmp_path / "ok", records))
    assert [task.splits[s].ids for s in ("train", "dev", "test")] == [["a"], ["b"], ["c"]]
    assert task.splits["train"].labels[0] == [None, "H", "H", "H", "H", "H", "E", "C"]
    with pytest.raises(InputError, match=r"sampled.fasta: record 'a': header has no SET="):
        ss3_task(_write_flip_ss(tmp_path / "noset", [("a", "MKTA", "CHHC", "X=1")]))
    with pytest.raises(InputError, match=r"record 'a': 4 residues, 3 labels"):
        ss3_task(_write_flip_ss(tmp_path / "short", [("a", "MKTA", "CHH", None)]))
    with pytest.raises(InputError, match="labels must be H, E, C"):
        ss3_task(_write_flip_ss(tmp_path / "q8", [("a", "MKTA", "CGHC", None)]))


def test_gb1_small_file_and_its_errors(tmp_path):
    folder = tmp_path / "gb1"
    folder.mkdir()
    (folder / "three_vs_rest.csv").write_text(
        "sequence,target,set,validation\nMQYK,1.0,train,\nMQYA,0.5,train,True\nAQYK,0.1,test,\n"
    )
    task = gb1_task(folder)
    assert [task.splits[s].labels for s in ("train", "dev", "test")] == [[1.0], [0.5], [0.1]]
    (folder / "two_vs_rest.csv").write_text("sequence,target,set,validation\nMQYK,nan,train,\n")
    with pytest.raises(InputError, match=r"two_vs_rest.csv: line 2, column target: 'nan' is not a finite number"):
        gb1_task(folder, "two_vs_rest")
    (folder / "one_vs_rest.csv").write_text("sequence,target,set,validation\nMQYK,1,valid,\n")
    with pytest.raises(InputError, match=r"line 2: set must be train or test"):
        gb1_task(folder, "one_vs_rest")


@pytest.mark.parametrize("target", ["high", "1_000", "\u0661\u0662", "0x10", "", "1.0 fit"])
def test_gb1_string_labels_in_its_regression_column_name_file_line_and_column(tmp_path, target):
    """Issue #31 §4: a regression target is a decimal number, not what else Python's float() reads (1_000 and
    non-ASCII digits were read as numbers)."""
    folder = tmp_path / "gb1"
    folder.mkdir()
    (folder / "sampled.csv").write_text(f"sequence,target,set,validation\nMQYK,1.0,train,\nMQYA,{target},test,\n")
    with pytest.raises(InputError, match=rf"sampled.csv: line 3, column target: '{target}' is not a number$"):
        gb1_task(folder, "sampled")


def test_gb1_short_row_is_one_line(tmp_path):
    folder = tmp_path / "gb1"
    folder.mkdir()
    (folder / "sampled.csv").write_text("sequence,target,set,validation\nMQYK,1.0,train,\nMQYA\n")
    with pytest.raises(InputError, match=r"sampled.csv: line 3: set must be train or test \(got ''\)"):
        gb1_task(folder, "sampled")


def test_homology_split_rules_on_a_small_file(tmp_path):
    lines = []
    # fold a.1: superfamilies a.1.1 (12 domains) and a.1.2 (3); fold b.2: one superfamily (left out);
    # class h (coiled coil) is not a true class (skipped)
    for i in range(12):
        lines.append(f">d{i:03d}a_ a.1.1.{i % 2 + 1} (A:) x\nMKTAYIAKQR\n")
    for i in range(3):
        lines.append(f">d{i:03d}b_ a.1.2.1 (A:) x\nGSHMLEDPVA\n")
    for i in range(12):
        lines.append(f">d{i:03d}c_ b.2.1.1 (A:) x\nMSDNELKKAA\n")
    lines.append(">d999h_ h.1.1.1 (A:) x\nEEEEKKKK\n")
    path = tmp_path / "scop.fa"
    path.write_text("".join(lines))
    assert all(d.fold != "h.1" for d in read_scop_domains(path))
    counts = {}
    for seed in range(6):
        task = homology_task(path, seed=seed, min_train_per_fold=3)
        assert set(task.splits["train"].labels) | set(task.splits["test"].labels) == {"a.1"}  # b.2 untestable
        counts[len(task.splits["test"].ids)] = task
    # either superfamily of a.1 may be held out; holding out a.1.1 leaves 3 training domains (kept at min 3)
    assert set(counts) <= {3, 12}
    path.write_text(">d1xxxa_ nonsense\nMKT\n")
    with pytest.raises(InputError, match="no SCOPe class.fold.superfamily.family"):
        read_scop_domains(path)


def test_unresolved_residues_are_neither_trained_nor_scored():
    tokenizer = load_tokenizer("residue")
    labels = [None, "H", "H", None, "E"]
    encoding = tokenizer.encode_one([Segment("MKTAY", "protein")])
    train = Split("train", ["a"], ["MKTAY"], [labels])
    classes = class_index(train, [], True, {"train": "t"})
    assert classes == ["E", "H"]
    targets = token_targets(encoding, labels, "classification", {c: i for i, c in enumerate(classes)})
    assert list(targets) == [NO_CLASS, NO_CLASS, 1, 1, NO_CLASS, 0, NO_CLASS]  # tag, 5 residues, <EOS>
    predicted = [np.array([0.0, 1.0, 0.0, 0.0, 0.0])]  # right on residues 2 and 5, wrong on 3
    metrics = split_metrics(train, predicted, "classification", True, {c: i for i, c in enumerate(classes)})
    assert metrics["accuracy"] == pytest.approx(2 / 3)  # residues 1 and 4 have no label: not scored

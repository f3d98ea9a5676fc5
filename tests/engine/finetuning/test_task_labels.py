"""Labels of `obte finetune classify` / `obte finetune residue` files: NaN, infinite or empty labels
are errors naming file, line and column (they used to train silently and score "spearman nan")."""

import pytest
from conftest import obte

from obte_cli.engine.core.errors import InputError
from obte_cli.engine.finetuning.tasks import read_residue_split, read_sequence_split


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e999"])
def test_sequence_regression_label_must_be_finite(tmp_path, value):
    path = tmp_path / "train.csv"
    path.write_text(f"sequence,label\nACGTACGT,0.5\nACGTTTGA,{value}\n")
    with pytest.raises(InputError, match=rf"^{path}: line 3, column label: '{value}' is not a finite number"):
        read_sequence_split(path, "train", "regression")


def test_sequence_labels_that_are_not_numbers_or_empty(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("sequence,label\nACGTACGT,0.5\nACGTTTGA,high\n")
    with pytest.raises(InputError, match=r"line 3, column label: 'high' is not a number \(--task regression\)"):
        read_sequence_split(path, "train", "regression")
    path.write_text("sequence,label\nACGTACGT,1\nACGTTTGA,\n")
    for task in ("classification", "regression"):
        with pytest.raises(InputError, match=r"line 3, column label: empty label"):
            read_sequence_split(path, "train", task)


@pytest.mark.parametrize("value", ["1_000", "١٢"])  # what float() reads but a table of numbers does not hold
def test_sequence_regression_label_is_a_decimal_number(tmp_path, value):
    path = tmp_path / "train.csv"
    path.write_text(f"sequence,label\nACGTACGT,0.5\nACGTTTGA,{value}\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"line 3, column label: .* is not a number \(--task regression\)"):
        read_sequence_split(path, "train", "regression")


def test_a_symlink_loop_given_to_finetune_is_one_line(tmp_path):
    (tmp_path / "a.csv").symlink_to(tmp_path / "b.csv")
    (tmp_path / "b.csv").symlink_to(tmp_path / "a.csv")
    loop = tmp_path / "a.csv"
    result = obte("finetune", "classify", "--train", loop, "--dev", loop, "--test", loop, "-o", tmp_path / "out")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and "symbolic links" in result.stderr


def test_classification_labels_are_names_not_numbers(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("sequence,label\nACGTACGT,nan\nACGTTTGA,inf\n")
    assert read_sequence_split(path, "train", "classification").labels == ["nan", "inf"]


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity"])
def test_residue_regression_labels_must_be_finite(tmp_path, value):
    path = tmp_path / "train.tsv"
    path.write_text(f"id\tsequence\tlabels\np1\tMKV\t0.1 0.2 0.3\np2\tMKVL\t0.1 0.2 {value} 0.4\n")
    with pytest.raises(
        InputError, match=rf"^{path}: line 3 \(record 'p2'\), column labels, residue 3: '{value}' is not a finite"
    ):
        read_residue_split(path, "train", "regression")


def test_finetune_with_a_nan_label_is_a_one_line_error(tmp_path):
    backbone = tmp_path / "backbone"
    assert obte("model", "init", "--preset", "micro", "--context", "64", "-o", backbone).exit_code == 0
    splits = {}
    for name in ("train", "dev", "test"):
        splits[name] = tmp_path / f"{name}.tsv"
        splits[name].write_text("id\tsequence\tlabels\np1\tMKVL\t0.1 0.2 0.3 0.4\np2\tMKVA\t0.5 0.1 0.2 0.3\n")
    splits["dev"].write_text("id\tsequence\tlabels\np1\tMKVL\t0.1 NaN 0.3 0.4\n")
    result = obte(
        "finetune", "residue", "--task", "regression", "-m", backbone, "-o", tmp_path / "out",
        *(arg for name, path in splits.items() for arg in (f"--{name}", path)),
    )  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.output
    line = result.stderr.strip().splitlines()[-1]
    expected = "line 2 (record 'p1'), column labels, residue 2: 'NaN' is not a finite number (--task regression)"
    assert line == f"error: {splits['dev']}: {expected}"
    assert not (tmp_path / "out").exists()

"""`obte predict` on models fine-tuned by `obte finetune classify` / `residue` from the real-sequence fixtures
(tests/data/tasks: GUE-layout coding/non-coding DNA, per-residue hydropathy of UniProt proteins)."""

import io

import numpy as np
import pandas as pd
import pytest
from conftest import DATA, REPO, obte, one_error_line

TASKS = DATA / "tasks"
CONTEXT = 64  # a short context, so that real records are longer than it


def _splits(stem, suffix):
    return [f"--{name}" if i % 2 == 0 else TASKS / f"{stem}_{name}.{suffix}"
            for name in ("train", "dev", "test") for i in (0, 1)]  # fmt: skip


def _fasta(path, records):
    path.write_text("".join(f">{name}\n{sequence}\n" for name, sequence in records))
    return path


def _table(result) -> pd.DataFrame:
    assert result.exit_code == 0, result.output
    return pd.read_csv(io.StringIO(result.stdout), sep="\t", keep_default_na=False)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A micro backbone (context 64) fine-tuned for one epoch on each task kind."""
    root = tmp_path_factory.mktemp("predict")
    backbone = root / "backbone"
    init = ["model", "init", "--preset", "micro", "-t", "residue", "--context", CONTEXT, "-o", backbone, "--seed", "3"]
    assert obte(*init).exit_code == 0
    common = ["-m", backbone, "--epochs", "1", "--truncate", "--seed", "0"]
    classify = obte("finetune", "classify", *_splits("coding", "csv"), *common, "-o", root / "cls", "--batch-size", 16)
    assert classify.exit_code == 0, classify.output
    residue = obte("finetune", "residue", *_splits("hydropathy", "tsv"), *common, "-o", root / "res", "--batch-size", 8)
    assert residue.exit_code == 0, residue.output
    return {"backbone": backbone, "cls": root / "cls", "res": root / "res"}


def _windows(length: int, window: int) -> list[int]:
    """Window starts as `obte embed` and `obte predict` place them: every half window, the last flush with the end."""
    stride = window // 2
    starts = list(range(0, max(length - window, 0) + 1, stride))
    if starts[-1] + window < length:
        starts.append(length - window)
    return starts


def test_sequence_task_predicts_what_the_tuned_model_predicted(tuned, tmp_path):
    test = pd.read_csv(TASKS / "coding_test.csv")
    # the records as the tuned model's test saw them (--truncate: the residues that fit the context)
    prefixes = [sequence[: CONTEXT - 2] for sequence in test["sequence"]]
    fasta = _fasta(tmp_path / "short.fa", zip(test["id"], prefixes))
    table = _table(obte("predict", tuned["cls"] / "model", fasta))
    assert list(table.columns) == ["id", "length", "windows", "predicted", "p_coding", "p_noncoding"]
    assert list(table["id"]) == list(test["id"])  # every record, in input order
    assert (table["windows"] == 1).all()
    assert np.allclose(table["p_coding"] + table["p_noncoding"], 1, atol=2e-4)
    # the same labels `finetune classify` wrote for its test split (the kept model, in process)
    written = pd.read_csv(tuned["cls"] / "test_predictions.tsv", sep="\t").set_index("id")
    assert list(table["predicted"]) == list(written.loc[test["id"], "predicted"])


def test_a_sequence_longer_than_the_context_is_the_mean_of_its_windows(tuned, tmp_path):
    sequence = "".join(pd.read_csv(TASKS / "coding_test.csv")["sequence"][:2])  # 200 nt, context 64
    window = CONTEXT - 2
    starts = _windows(len(sequence), window)
    pieces = [(f"w{s}", sequence[s : s + window]) for s in starts]
    whole = _table(obte("predict", tuned["cls"] / "model", _fasta(tmp_path / "long.fa", [("long", sequence)])))
    alone = _table(obte("predict", tuned["cls"] / "model", _fasta(tmp_path / "pieces.fa", pieces)))
    assert whole.loc[0, "windows"] == len(starts) > 1 and whole.loc[0, "length"] == len(sequence)
    assert whole.loc[0, "p_coding"] == pytest.approx(alone["p_coding"].mean(), abs=2e-4)


def test_residue_task_one_row_per_residue_windows_averaged(tuned, tmp_path):
    test = pd.read_csv(TASKS / "hydropathy_test.tsv", sep="\t")
    protein = test.loc[test["sequence"].str.len().idxmax()]  # longer than the context
    window = CONTEXT - 2
    assert len(protein["sequence"]) > window
    result = obte("predict", tuned["res"] / "model", _fasta(tmp_path / "p.fa", [(protein["id"], protein["sequence"])]))
    table = _table(result)
    assert list(table.columns) == ["id", "position", "residue", "predicted", "p_H", "p_P"]
    assert list(table["position"]) == list(range(1, len(protein["sequence"]) + 1))
    assert "".join(table["residue"]) == protein["sequence"]
    starts = _windows(len(protein["sequence"]), window)
    pieces = [(f"w{s}", protein["sequence"][s : s + window]) for s in starts]
    alone = _table(obte("predict", tuned["res"] / "model", _fasta(tmp_path / "w.fa", pieces)))
    p_h = {}  # residue (0-based) → the first-window-alone predictions covering it
    for start, (name, _) in zip(starts, pieces):
        for _, row in alone[alone["id"] == name].iterrows():
            p_h.setdefault(start + row["position"] - 1, []).append(row["p_H"])
    expected = np.array([np.mean(p_h[i]) for i in range(len(protein["sequence"]))])
    assert np.allclose(table["p_H"], expected, atol=2e-4)
    assert set(table["predicted"]) <= {"H", "P"}


def test_residue_task_matches_the_tuned_models_test_predictions(tuned, tmp_path):
    test = pd.read_csv(TASKS / "hydropathy_test.tsv", sep="\t")
    prefixes = [sequence[: CONTEXT - 2] for sequence in test["sequence"]]  # what the truncated test saw
    table = _table(obte("predict", tuned["res"] / "model", _fasta(tmp_path / "s.fa", zip(test["id"], prefixes))))
    written = pd.read_csv(tuned["res"] / "test_predictions.tsv", sep="\t").set_index("id")
    for record, prefix in zip(test["id"], prefixes):
        shown = written.loc[record, "predicted"].split()[: len(prefix)]
        assert list(table.loc[table["id"] == record, "predicted"]) == shown


def test_unknown_letters_are_read_as_unk_and_counted(tuned, tmp_path):
    fasta = _fasta(tmp_path / "x.fa", [("p1", "MKTAYIAKQRXXISFVKSHFSRQB")])
    result = obte("predict", tuned["res"] / "model", fasta)
    assert len(_table(result)) == 24
    assert "3 non-standard letters read as <unk>: X ×2, B ×1" in result.stderr
    strict = obte("predict", tuned["res"] / "model", fasta, "--on-unknown", "error")
    assert strict.exit_code == 1
    one_error_line(strict, "x.fa", "record 'p1'", "'X' at position 11")


@pytest.mark.parametrize(
    "which, fragment",
    [
        ("backbone", "no task head to predict with"),
        ("affinity", "a ΔG model: predict with `obte affinity"),
        ("contacts", "a contact model: predict with `obte contacts predict"),
    ],
)
def test_models_it_cannot_predict_with_are_refused_in_one_line(tuned, tmp_path, which, fragment):
    model = {
        "backbone": tuned["backbone"],
        "affinity": REPO / "share" / "models" / "affinity",
        "contacts": REPO / "share" / "models" / "contacts",
    }[which]
    result = obte("predict", model, _fasta(tmp_path / "a.fa", [("a", "ACGTACGT")]))
    assert result.exit_code == 1
    one_error_line(result, fragment)
    assert result.stdout == ""


def test_the_output_may_not_be_an_input(tuned, tmp_path):
    fasta = _fasta(tmp_path / "in.fa", [("a", "ACGTACGTAC")])
    result = obte("predict", tuned["cls"] / "model", fasta, "-o", fasta)
    assert result.exit_code == 1
    assert fasta.read_text() == ">a\nACGTACGTAC\n"

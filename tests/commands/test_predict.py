"""`obte predict` on models fine-tuned by `obte finetune classify` / `residue` from the real-sequence fixtures
(tests/data/tasks: GUE-layout coding/non-coding DNA, per-residue hydropathy of UniProt proteins); and what those
fine-tunings do, by default, with records longer than the context: a sequence task cuts them, a residue task
trains and scores them in the windows `obte predict` uses."""

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


@pytest.mark.parametrize("which", ["cls", "res"])
def test_a_prediction_that_is_not_a_number_is_an_error_naming_model_and_record(tuned, tmp_path, which):
    """Issue #31 §4: embeddings of 3e38 (finite, so the model loads) overflow the first layer norm; the NaN
    that follows is one error line, never a `NA` or `nan` row with exit 0."""
    import shutil

    from safetensors.torch import load_file, save_file

    model = tmp_path / "spoiled"
    shutil.copytree(tuned[which] / "model", model)
    tensors = load_file(str(model / "model.safetensors"))
    tensors["embed.weight"][:] = 3e38
    save_file(tensors, str(model / "model.safetensors"), metadata={"format": "obte-model"})
    fasta = _fasta(tmp_path / "x.fa", [("x1", "MKVLAAGIVW" if which == "res" else "ACGTACGGTA")])
    assert obte("predict", tuned[which] / "model", fasta).exit_code == 0
    result = obte("predict", model, fasta)
    assert one_error_line(result).startswith(f"error: {model}: record 'x1': a prediction is nan (not a finite number)")
    assert not result.stdout


# ------------------------------------------------------------------------------------------------ long records
KYTE_DOOLITTLE = dict(zip("ARNDCQEGHILKMFPSTWYV", (1.8, -4.5, -3.5, -3.5, 2.5, -3.5, -3.5, -0.4, -3.2, 4.5, 3.8, -3.9,
                                                   1.9, 2.8, -1.6, -0.8, -0.7, -0.9, -1.3, 4.2)))  # fmt: skip


def test_classify_cuts_long_records_by_default_as_truncate_did(tuned, tmp_path):
    """Every coding record (100 nt) is longer than the context: with no option they are cut, counted per split,
    and the run is the one `--truncate` made (the tuned fixture)."""
    args = ["finetune", "classify", *_splits("coding", "csv"), "-m", tuned["backbone"], "--epochs", "1", "--seed", "0"]
    result = obte(*args, "--batch-size", 16, "-o", tmp_path / "cls")
    assert result.exit_code == 0, result.output
    for split, n in (("train", 276), ("dev", 92), ("test", 92)):
        assert f"{n} of {n} {split} records cut to the context of {CONTEXT} tokens" in result.stderr
    for name in ("test_predictions.tsv", "metrics.tsv"):
        assert (tmp_path / "cls" / name).read_text() == (tuned["cls"] / name).read_text()
    refused = obte(*args, "--no-truncate", "-o", tmp_path / "refused")
    one_error_line(refused, "coding_train.csv", "record 'NC_000932:42440-42539'", "102 tokens exceed the model's "
                   f"context of {CONTEXT}", "--no-truncate refuses such records")  # fmt: skip
    assert not (tmp_path / "refused").exists()


def test_residue_no_window_refuses_long_records(tuned, tmp_path):
    args = ["finetune", "residue", *_splits("hydropathy", "tsv"), "-m", tuned["backbone"], "-o", tmp_path / "r"]
    one_error_line(obte(*args, "--no-window"), "hydropathy_train.tsv", "record 'V4L6R8'", "154 tokens exceed")
    assert obte(*args, "--no-window", "--truncate").exit_code == 2


@pytest.fixture(scope="module")
def windowed(tuned, tmp_path_factory):
    """`finetune residue` with no option on a context of 64 (every test protein is longer): a classification
    (hydropathy classes) and a regression (the Kyte-Doolittle value of each residue), on the first 20 training
    proteins."""
    root = tmp_path_factory.mktemp("windowed")
    runs = {}
    for task in ("classification", "regression"):
        files = []
        for name in ("train", "dev", "test"):
            table = pd.read_csv(TASKS / f"hydropathy_{name}.tsv", sep="\t")
            table = table.head(20) if name == "train" else table
            if task == "regression":
                table["labels"] = table["sequence"].map(lambda s: " ".join(str(KYTE_DOOLITTLE[a]) for a in s))
            table.to_csv(root / f"{task}_{name}.tsv", sep="\t", index=False)
            files += [f"--{name}", root / f"{task}_{name}.tsv"]
        out = root / task
        result = obte("finetune", "residue", *files, "--task", task, "-m", tuned["backbone"], "-o", out,
                      "--epochs", "1", "--batch-size", "8", "--seed", "0")  # fmt: skip
        assert result.exit_code == 0, result.output
        runs[task] = (out, result.stderr)
    return runs


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_residue_windows_score_every_residue_as_obte_predict_does(windowed, tmp_path, task):
    out, stderr = windowed[task]
    test = pd.read_csv(TASKS / "hydropathy_test.tsv", sep="\t")
    starts = [_windows(len(s), CONTEXT - 2) for s in test["sequence"]]
    assert min(len(s) for s in starts) > 1  # every test protein is windowed
    assert (f"15 of 15 test records longer than the context of {CONTEXT} tokens split into overlapping windows "
            f"({sum(map(len, starts))} examples") in stderr  # fmt: skip
    train = pd.read_csv(TASKS / "hydropathy_train.tsv", sep="\t").head(20)
    windowed_train = int((train["sequence"].str.len() > CONTEXT - 2).sum())
    assert f"{windowed_train} of 20 train records longer than the context" in stderr
    written = pd.read_csv(out / "test_predictions.tsv", sep="\t", keep_default_na=False).set_index("id")
    predicted = _table(obte("predict", out / "model", _fasta(tmp_path / "t.fa", zip(test["id"], test["sequence"]))))
    assert (predicted["id"].value_counts()[test["id"]] == test["sequence"].str.len().values).all()
    for record, sequence in zip(test["id"], test["sequence"]):
        mine = written.loc[record, "predicted"].split()
        theirs = predicted.loc[predicted["id"] == record, "predicted"]
        assert len(mine) == len(sequence) and "NA" not in mine  # every residue scored
        if task == "classification":
            assert mine == list(theirs)
        else:  # test_predictions.tsv shows 4 significant digits, `obte predict` 6
            assert np.allclose(np.array(mine, dtype=float), theirs.astype(float), rtol=1e-3, atol=1e-3)
    metrics = pd.read_csv(out / "metrics.tsv", sep="\t", dtype={"epoch": str}).iloc[-1]
    if task == "classification":  # the test score is that of `obte predict`'s labels
        truth = list("".join(test["labels"]))
        assert metrics["accuracy"] == pytest.approx(np.mean(np.array(truth) == predicted["predicted"].values), abs=1e-4)


def test_a_secondary_structure_tagger_predicts_what_it_scored(tuned, tmp_path):
    """3-state secondary structure (FLIP/NetSurfP chains, tests/data/tasks/ss3_*.tsv): `finetune residue` with no
    option at context 64, then `obte predict` on the test chains gives, residue by residue, the labels its
    test_predictions.tsv holds (8 of the 10 chains are longer than the context: windows in both)."""
    files = [x for name in ("train", "dev", "test") for x in (f"--{name}", TASKS / f"ss3_{name}.tsv")]
    out = tmp_path / "ss3"
    run = obte("finetune", "residue", *files, "-m", tuned["backbone"], "-o", out, "--epochs", "1", "--seed", "0")
    assert run.exit_code == 0, run.output
    test = pd.read_csv(TASKS / "ss3_test.tsv", sep="\t")
    assert (test["sequence"].str.len() > CONTEXT - 2).sum() == 8  # all but two chains are windowed
    predicted = _table(obte("predict", out / "model", _fasta(tmp_path / "t.fa", zip(test["id"], test["sequence"]))))
    assert list(predicted.columns) == ["id", "position", "residue", "predicted", "p_C", "p_E", "p_H"]
    written = pd.read_csv(out / "test_predictions.tsv", sep="\t", keep_default_na=False).set_index("id")
    for record in test["id"]:
        assert list(predicted.loc[predicted["id"] == record, "predicted"]) == written.loc[record, "predicted"].split()

"""ΔG end to end: `obte finetune affinity` on real ProNAB rows, then `obte affinity` with the result."""

import math

import numpy as np
import pandas as pd
import pytest
from conftest import DATA, obte, one_error_line

from obte_cli.engine.affinity.complexes import RT_KCAL
from obte_cli.engine.affinity.data import load_pairs_tsv
from obte_cli.engine.affinity.ensemble import load_affinity_model

COLUMNS = ["protein_id", "na_id", "dG_kcal_mol", "dG_sd", "Kd_M", "na_type", "complement", "protein_truncated"]


@pytest.fixture(scope="module")
def small_pairs():
    """47 real ProNAB measurements of 12 short proteins (tests/data/pronab_sample.tsv), as a pairs TSV."""
    path = DATA / "pronab_sample.tsv"
    return path, load_pairs_tsv(path)[0]


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    path = tmp_path_factory.mktemp("affinity") / "backbone"
    result = obte("model", "init", "--preset", "micro", "--context", "384", "-o", path, "--seed", "3")
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def cv_run(small_pairs, backbone, tmp_path_factory):
    out = tmp_path_factory.mktemp("affinity") / "dg"
    result = obte(
        "finetune",
        "affinity",
        "--data",
        small_pairs[0],
        "--model",
        backbone,
        "--out",
        out,
        "--folds",
        "3",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--seed",
        "1",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    return out, result


def test_finetune_writes_fold_models_tables_and_plot(cv_run, small_pairs):
    out, result = cv_run
    table = small_pairs[1]
    assert sorted(p.name for p in out.iterdir()) == [
        "ensemble.json",
        "fold-01",
        "fold-02",
        "fold-03",
        "folds.tsv",
        "metrics.tsv",
        "predictions.tsv",
        "scatter.png",
    ]
    assert (out / "scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "homology guard" in result.output and "kept out of test folds" in result.output
    predictions = pd.read_csv(out / "predictions.tsv", sep="\t")
    # every row tested exactly once (none of these 12 proteins is homologous to another), in its own fold
    assert sorted(predictions["row"]) == list(range(1, len(table) + 1))
    assert np.allclose(predictions["dG_measured"], table["dG"].to_numpy()[predictions["row"] - 1])
    assert predictions.groupby("protein_id")["fold"].nunique().max() == 1
    metrics = pd.read_csv(out / "metrics.tsv", sep="\t", dtype={"fold": str}).set_index("fold")
    assert list(metrics.index) == ["1", "2", "3", "mean", "sem", "pooled"]
    fold_mae = metrics.loc[["1", "2", "3"], "mae"].astype(float)
    assert math.isclose(metrics.loc["mean", "mae"], fold_mae.mean(), abs_tol=1e-3)
    errors = (predictions["dG_predicted"] - predictions["dG_measured"]).abs()
    assert math.isclose(metrics.loc["pooled", "mae"], errors.mean(), abs_tol=1e-3)
    folds = pd.read_csv(out / "folds.tsv", sep="\t", dtype={"fold": str})
    assert folds["rows"].sum() == len(table)


def test_each_fold_model_predicts_what_the_cv_recorded(cv_run, small_pairs):
    """The saved fold model (weights, head, target scaling) reproduces its out-of-fold predictions."""
    out, _ = cv_run
    predictions = pd.read_csv(out / "predictions.tsv", sep="\t")
    table = small_pairs[1]
    from obte_cli.engine.affinity.cv import encode_affinity_table

    member = load_affinity_model(out / "fold-02")
    rows = predictions[predictions["fold"] == 2]
    tested = table.iloc[rows["row"] - 1].reset_index(drop=True)
    encoded = encode_affinity_table(member.tokenizer, tested, member.context, False)
    prepared = member.prepare_table(tested)
    assert [list(p.token_ids) for p in prepared] == [list(ids) for ids in encoded.token_ids]
    dg, sd = member.predict(prepared)
    assert np.allclose(dg, rows["dG_predicted"], atol=2e-3)
    assert np.isnan(sd).all()


def test_affinity_cli_on_real_pronab_sequences(cv_run, small_pairs, tmp_path):
    out, _ = cv_run
    table = small_pairs[1]
    proteins = tmp_path / "p.fa"
    acids = tmp_path / "na.fa"
    first = table.drop_duplicates("protein").head(3)
    proteins.write_text("".join(f">{r.protein_id}\n{r.protein}\n" for r in first.itertuples()))
    acids.write_text("".join(f">na{i}\n{r.nucleic_acid}\n" for i, r in enumerate(table.head(2).itertuples())))
    result = obte("affinity", proteins, acids, "--model", out, "--precision", "full", "-o", tmp_path / "dg.tsv")
    assert result.exit_code == 0, result.output
    dg = pd.read_csv(tmp_path / "dg.tsv", sep="\t")  # every digit: the Kd check below needs more than 0.1 kcal/mol
    assert list(dg.columns) == COLUMNS
    assert set(dg["na_type"]) <= {"DNA (assumed)", "RNA"} and set(dg["complement"]) == {"no"}
    assert set(dg["protein_truncated"]) == {"no"}
    assert len(dg) == 3 * 2 and list(dg["na_id"][:2]) == ["na0", "na1"]
    assert (dg["dG_sd"] > 0).all()  # three fold models disagree a little
    assert np.allclose(dg["Kd_M"], np.exp(dg["dG_kcal_mol"] / RT_KCAL), rtol=2e-3)
    # the ensemble mean is the mean of its fold models
    single = obte("affinity", proteins, acids, "--model", out / "fold-01")
    assert single.exit_code == 0
    rows = [line.split("\t") for line in single.stdout.strip().splitlines()]
    assert rows[0] == COLUMNS and rows[1][3] == "NA"


def test_affinity_pairing_and_complement_options(cv_run, tmp_path):
    out, _ = cv_run
    proteins = tmp_path / "p.fa"
    proteins.write_text(">p1\nMKRIAVLGAAGGIGQALALLLK\n>p2\nMSDNKKPRKTRTSFTAEQ\n")
    acids = tmp_path / "na.fa"
    acids.write_text(">d1\nACGTACGGTA\n>r1\nACGUUAGC\n")
    full = ("--precision", "full")  # ΔG to every digit: single- and double-stranded may differ by < 0.1 kcal/mol
    zipped = obte("affinity", proteins, acids, "--model", out, "--pairs", "zip", *full)
    assert zipped.exit_code == 0, zipped.output
    rows = [line.split("\t") for line in zipped.stdout.splitlines()[1:]]
    assert [r[:2] for r in rows] == [["p1", "d1"], ["p2", "r1"]]
    assert [r[5:] for r in rows] == [["DNA (assumed)", "no", "no"], ["RNA", "no", "no"]]  # nothing invented
    # An explicit complement file equal to the reverse complement gives the same answer as 'revcomp'.
    revcomp = obte("affinity", proteins, acids, "--model", out, "--pairs", "zip", "--complement", "revcomp", *full)
    comp = tmp_path / "comp.fa"
    comp.write_text(">c1\nTACCGTACGT\n>c2\n\nA\n")
    explicit = obte("affinity", proteins, acids, "--model", out, "--pairs", "zip", "--complement", comp, *full)
    assert explicit.exit_code == revcomp.exit_code == 0, explicit.output
    given, rc = ([line.split("\t") for line in r.stdout.splitlines()[1:]] for r in (explicit, revcomp))
    assert given[0][:5] == rc[0][:5] and (given[0][6], rc[0][6]) == ("given", "revcomp")
    assert given[0][2] != rows[0][2]  # double-stranded now
    assert given[1][2] != rows[1][2] and given[1][6] == "given"  # the RNA too: paired with 'A'
    none = obte("affinity", proteins, acids, "--model", out, "--pairs", "zip", "--complement", "none", *full)
    assert none.stdout == zipped.stdout


@pytest.mark.parametrize(
    "protein_text, acid_text, extra, message",
    [
        (
            ">p1\nMKRIAXLG\n",
            ">d1\nACGT\n",
            ["--on-unknown", "error"],
            "p.fa: record 1 ('p1'): non-standard amino acid 'X' at position 6",
        ),
        (
            ">p1\nMKRIAVLG\n>p2\nMKB\n",
            ">d1\nACGT\n",
            ["--on-unknown", "error"],
            "p.fa: record 2 ('p2'): non-standard amino acid 'B' at position 3",
        ),
        (
            ">p1\nMKRIAVLG\n",
            ">d1\nACGNT\n",
            ["--on-unknown", "error"],
            "na.fa: record 1 ('d1'): 'N' at position 4 is not a nucleotide",
        ),
        ("MKRIAVLG\n", ">d1\nACGT\n", [], "p.fa: line 'MKRIAVLG' comes before the first '>' header"),
        (">p1\nMKRIAVLG\n", ">d1\n", [], "na.fa: record 1 ('d1') has no sequence"),
        (
            ">d1\nACGTTGCA\n",
            ">d1\nACGT\n",
            [],
            "p.fa: record 1 ('d1'): looks like a nucleic acid, not a protein (only A, C, G, T, U and N; arguments",
        ),
        (
            ">p1\nMKRIAVLG\n",
            ">d1\nACGT\n>d2\nAC\n",
            ["--pairs", "zip"],
            "--pairs zip needs as many proteins as nucleic acids (1 vs 2)",
        ),
        (
            ">p1\n" + "M" * 400 + "\n",
            ">d1\nACGT\n",
            ["--no-truncate"],
            "record 'p1 + d1': 408 tokens exceed the model's context of 384",
        ),
    ],
)
def test_affinity_input_errors_are_one_line(cv_run, tmp_path, protein_text, acid_text, extra, message):
    out, _ = cv_run
    (tmp_path / "p.fa").write_text(protein_text)
    (tmp_path / "na.fa").write_text(acid_text)
    result = obte("affinity", tmp_path / "p.fa", tmp_path / "na.fa", "--model", out, *extra)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1], result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_device_is_a_usage_error(tmp_path):
    (tmp_path / "p.fa").write_text(">p1\nMKRIAVLG\n")
    (tmp_path / "na.fa").write_text(">d1\nACGT\n")
    result = obte("affinity", tmp_path / "p.fa", tmp_path / "na.fa", "--device", "tpu")
    assert result.exit_code == 2 and result.stdout == ""
    assert all(f"'{name}'" in result.stderr for name in ("tpu", "auto", "cpu", "cuda")), result.stderr


@pytest.mark.parametrize("option", [[], ["--truncate"]])
def test_truncate_cuts_the_protein_and_warns(cv_run, tmp_path, option):
    out, _ = cv_run
    (tmp_path / "p.fa").write_text(">p1\n" + "MKRIAVLG" * 60 + "\n>p2\nMKRIXVLG\n")
    (tmp_path / "na.fa").write_text(">d1\nACGTACGTAC\n")
    result = obte("affinity", tmp_path / "p.fa", tmp_path / "na.fa", "--model", out, *option)  # the default cuts
    assert result.exit_code == 0, result.output
    assert "1 of 2 complexes had their protein truncated" in result.stderr
    assert "1 non-standard letters read as <unk>: X ×1" in result.stderr  # read as <unk> by default, counted
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[1].split("\t")[5:] == ["DNA (assumed)", "no", "yes"]
    assert lines[2].split("\t")[7] == "no"


def test_folds_zero_trains_one_all_data_model(small_pairs, backbone, tmp_path):
    out = tmp_path / "all"
    result = obte(
        "finetune",
        "affinity",
        "--data",
        small_pairs[0],
        "--model",
        backbone,
        "--out",
        out,
        "--folds",
        "0",
        "--epochs",
        "1",
        "--batch-size",
        "16",
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["all-data", "ensemble.json"]
    model = load_affinity_model(out)
    assert len(model.members) == 1 and model.metadata["task"] == "affinity"
    again = obte("finetune", "affinity", "--data", small_pairs[0], "--model", backbone, "--out", out, "--folds", "0")
    assert again.exit_code == 1 and "already exists (use --force" in again.stderr


def test_finetune_rejects_a_model_without_head_for_prediction(backbone, tmp_path):
    (tmp_path / "p.fa").write_text(">p1\nMKRIAVLG\n")
    (tmp_path / "na.fa").write_text(">d1\nACGT\n")
    result = obte("affinity", tmp_path / "p.fa", tmp_path / "na.fa", "--model", backbone)
    assert result.exit_code == 1 and "not a ΔG model" in result.stderr


def test_bench_pronab_scores_a_cv_run_and_the_baseline_on_its_folds(cv_run, small_pairs, tmp_path):
    out, _ = cv_run
    result = obte("bench", "pronab", "--data", small_pairs[0], "--from-cv", out, "--out", tmp_path / "bench")
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert rows[0][:4] == ["method", "folds", "test_rows", "pcc_mean"]
    assert [r[0] for r in rows[1:]] == ["obte", "composition+GBM"]
    bench = pd.read_csv(tmp_path / "bench" / "bench.tsv", sep="\t").set_index("method")
    metrics = pd.read_csv(out / "metrics.tsv", sep="\t", dtype={"fold": str}).set_index("fold")
    # the bench's obte row is the CV run's own summary, recomputed from predictions.tsv
    assert math.isclose(bench.loc["obte", "mae_mean"], metrics.loc["mean", "mae"], abs_tol=1e-3)
    assert bench.loc["composition+GBM", "test_rows"] == bench.loc["obte", "test_rows"] == len(small_pairs[1])
    assert (tmp_path / "bench" / "bench.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_pronab_trains_its_own_cv_run(small_pairs, backbone, tmp_path):
    out = tmp_path / "bench"
    result = obte(
        "bench",
        "pronab",
        "--data",
        small_pairs[0],
        "--model",
        backbone,
        "--out",
        out,
        "--folds",
        "2",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--seed",
        "1",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    assert [line.split("\t")[0] for line in result.stdout.strip().splitlines()[1:]] == ["obte", "composition+GBM"]
    assert "homology guard" in result.stderr and "fold 2/2" in result.stderr and "baseline:" in result.stderr
    assert {"ensemble.json", "fold-01", "fold-02", "predictions.tsv"} <= {p.name for p in (out / "obte-cv").iterdir()}
    assert load_affinity_model(out / "obte-cv").metadata["task"] == "affinity"
    bench = pd.read_csv(out / "bench.tsv", sep="\t").set_index("method")
    assert bench.loc["obte", "folds"] == 2 and bench.loc["obte", "test_rows"] == len(small_pairs[1])
    again = obte("bench", "pronab", "--data", small_pairs[0], "--model", backbone, "--out", out)
    assert again.exit_code == 1 and "already exists (use --force" in again.stderr


def test_bench_refuses_predictions_from_other_data(cv_run, pronab_path, tmp_path, monkeypatch):
    from obte_cli.engine.core import resources

    out, _ = cv_run
    result = obte("bench", "pronab", "--data", pronab_path, "--from-cv", out, "--out", tmp_path / "bench")
    assert result.exit_code == 1
    assert "measured ΔG differs from the data's" in result.stderr
    both = obte("bench", "pronab", "--data", pronab_path, "--from-cv", out, "--model", out, "--out", tmp_path / "b2")
    assert both.exit_code == 2 and "--from-cv" in both.stderr and "--model" in both.stderr  # a usage error (#31 §6)
    # neither: the bundled backbone is fine-tuned; an installation without one says so
    monkeypatch.setattr(resources, "default_backbone_dir", lambda: None)
    neither = obte("bench", "pronab", "--data", pronab_path, "--out", tmp_path / "b3")
    assert neither.exit_code == 1 and "no --model given" in neither.stderr


def test_bundled_default_model_runs_the_readme_example():
    from obte_cli.engine.core.resources import default_affinity_model_dir, example_file

    ensemble = load_affinity_model(default_affinity_model_dir())
    assert len(ensemble.members) == 10 and ensemble.kind == "composition" and ensemble.context is None
    result = obte("affinity", example_file("dna_binding_proteins.fa"), example_file("dna.fa"))
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert rows[0] == COLUMNS and len(rows) == 1 + 4 * 5
    dg = np.array([float(r[2]) for r in rows[1:]])
    assert ((dg > -16) & (dg < -4)).all() and all(float(r[3]) > 0 for r in rows[1:])


def test_bundled_model_scores_are_its_own_out_of_fold_predictions():
    """The shipped metrics.tsv is recomputed from the shipped predictions.tsv (nothing typed in by hand)."""
    from obte_cli.engine.core.metrics import regression_metrics
    from obte_cli.engine.core.resources import default_affinity_model_dir

    folder = default_affinity_model_dir()
    predictions = pd.read_csv(folder / "predictions.tsv", sep="\t")
    metrics = pd.read_csv(folder / "metrics.tsv", sep="\t", dtype={"fold": str}).set_index("fold")
    for fold, rows in predictions.groupby("fold"):
        m = regression_metrics(rows["dG_measured"].to_numpy(), rows["dG_predicted"].to_numpy())
        assert math.isclose(float(metrics.loc[str(fold), "pcc"]), m["pcc"], abs_tol=2e-4)
        assert math.isclose(float(metrics.loc[str(fold), "mae"]), m["mae"], abs_tol=2e-4)
    folds = pd.read_csv(folder / "folds.tsv", sep="\t", dtype={"fold": str})
    tested = set(folds.loc[folds["fold"] != "train-only", "protein_id"])
    assert set(predictions["protein_id"]) <= tested  # no guarded protein was ever scored


def test_bench_jaspar_uses_only_held_out_proteins(pronab_path, tmp_path):
    """Of tests/data/motifs/core_sample.jaspar, Runx1 (MA0002.3) has no ProNAB sequence and the bundled model
    trained on ETV4 (MA0764.4): only CTCF (MA0139.2), which it tested and never trained on, is scanned."""
    result = obte(
        "bench",
        "jaspar",
        "--jaspar",
        DATA / "motifs" / "core_sample.jaspar",
        "--accessions",
        DATA / "motifs" / "matrices.tsv",
        "--data",
        pronab_path,
        "--mutants",
        "2",
        "--device",
        "cpu",
        "-o",
        tmp_path,
    )
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(tmp_path / "bench-jaspar.tsv", sep="\t")
    from obte_cli.engine.core.resources import default_affinity_model_dir

    folds = pd.read_csv(default_affinity_model_dir() / "folds.tsv", sep="\t", dtype={"fold": str})
    held_out = set(folds.loc[folds["fold"] != "train-only", "protein_id"])
    assert len(rows) > 0 and set(rows["protein_id"]) <= held_out
    assert set(rows["protein_id"]) == {"P49711"} and "P43268" not in held_out
    assert "skipped: 1 without a sequence, 1 whose protein the models trained on" in result.stderr
    summary = result.stdout.strip().splitlines()
    assert {"matrices", "mutants", "positive_mutants", "mean_ddG"} <= set(summary[0].split("\t"))
    assert (tmp_path / "bench-jaspar.png").is_file()


def test_unknown_letters_are_read_as_unk_by_default_and_refused_on_request(cv_run, tmp_path):
    out, _ = cv_run
    (tmp_path / "p.fa").write_text(">p1\nMKRIAXLGKRR\n")
    (tmp_path / "na.fa").write_text(">d1\nACGNTACG\n")
    refused = obte("affinity", tmp_path / "p.fa", tmp_path / "na.fa", "--model", out, "--on-unknown", "error")
    assert refused.exit_code == 1 and "(use --on-unknown unk to read such letters as <unk>)" in refused.stderr
    result = obte("affinity", tmp_path / "p.fa", tmp_path / "na.fa", "--model", out)
    assert result.exit_code == 0, result.output
    assert "2 non-standard letters read as <unk>: X ×1, N ×1" in result.stderr
    row = result.stdout.strip().splitlines()[1].split("\t")
    assert row[:2] == ["p1", "d1"] and math.isfinite(float(row[2]))


# ---- what is assumed: molecule type, complementary strand (the bundled default model) ----------------

PROTEIN = "MSDNKKPRKTRTSFTAEQLEELEKEFHFNRYLTRRRRIEIAHALCLTERQIKIWFQNRRMKWKK"


def _rows(result) -> list[list[str]]:
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].split("\t") == COLUMNS
    return [line.split("\t") for line in lines[1:]]


def test_single_stranded_unless_asked_and_rna_written_with_t(tmp_path):
    (tmp_path / "p.fa").write_text(f">hox\n{PROTEIN}\n")
    # an ssDNA aptamer, an RNA written with U, and the same RNA written with T (as ProNAB writes it)
    (tmp_path / "na.fa").write_text(">apt\nGGTTGGTGTGGTTGG\n>u\nACGUUAGCAU\n>t\nACGTTAGCAT\n")
    full = ("--precision", "full")  # the ΔGs compared below may differ by less than 0.1 kcal/mol
    default = _rows(obte("affinity", tmp_path / "p.fa", tmp_path / "na.fa", *full))
    assert [r[1] for r in default] == ["apt", "u", "t"]
    assert [r[5:] for r in default] == [
        ["DNA (assumed)", "no", "no"],
        ["RNA", "no", "no"],
        ["DNA (assumed)", "no", "no"],
    ]
    assert default[1][2] != default[2][2]  # T-written RNA taken as DNA (with a warning) ...
    warned = obte("affinity", tmp_path / "p.fa", tmp_path / "na.fa")
    assert "2 nucleic acid(s) without U taken as DNA" in warned.stderr and "--na-type RNA" in warned.stderr
    as_rna = _rows(obte("affinity", tmp_path / "p.fa", tmp_path / "na.fa", "--na-type", "RNA", *full))
    assert [r[5] for r in as_rna] == ["RNA"] * 3
    assert as_rna[1][2:5] == as_rna[2][2:5] == default[1][2:5]  # ... and as RNA once said so
    revcomp = _rows(obte("affinity", tmp_path / "p.fa", tmp_path / "na.fa", "--complement", "revcomp", *full))
    assert [r[6] for r in revcomp] == ["revcomp"] * 3
    assert all(r[2] != d[2] for r, d in zip(revcomp, default))
    auto = obte("affinity", tmp_path / "p.fa", tmp_path / "na.fa", "--complement", "auto")
    assert auto.exit_code == 1 and auto.stdout == ""
    assert auto.stderr.strip().splitlines()[-1].startswith("error: --complement auto is no more")


def test_one_call_mixes_single_and_double_strands(tmp_path):
    (tmp_path / "p.fa").write_text(f">hox\n{PROTEIN}\n")
    (tmp_path / "na.fa").write_text(">site\nTTAATGGCTAATTA\n>apt\nGGTTGGTGTGGTTGG\n")
    (tmp_path / "comp.fa").write_text(">site-rc\nTAATTAGCCATTAA\n>apt (single-stranded)\n")
    mixed = _rows(obte("affinity", tmp_path / "p.fa", tmp_path / "na.fa", "--complement", tmp_path / "comp.fa"))
    assert [r[6] for r in mixed] == ["given", "no"]
    revcomp = _rows(obte("affinity", tmp_path / "p.fa", tmp_path / "na.fa", "--complement", "revcomp"))
    single = _rows(obte("affinity", tmp_path / "p.fa", tmp_path / "na.fa"))
    assert mixed[0][:5] == revcomp[0][:5] and mixed[1][:5] == single[1][:5]


def test_complexes_tsv_predicts_what_the_fasta_call_does(tmp_path):
    proteins = {"hox": PROTEIN, "short": PROTEIN[:40]}
    (tmp_path / "p.fa").write_text("".join(f">{k}\n{v}\n" for k, v in proteins.items()))
    (tmp_path / "na.fa").write_text(">site\nTTAATGGCTAATTA\n>rna\nACGTTAGCAT\n")
    (tmp_path / "comp.fa").write_text(">site-rc\nTAATTAGCCATTAA\n>none\n")
    fasta = _rows(
        obte(
            "affinity",
            tmp_path / "p.fa",
            tmp_path / "na.fa",
            "--pairs",
            "zip",
            "--na-type",
            "RNA",
            "--complement",
            tmp_path / "comp.fa",
        )
    )
    # the pairs TSV `finetune affinity` reads (with a dG column, ignored here), in lower case
    (tmp_path / "c.tsv").write_text(
        "protein_id\tna_id\tprotein\tnucleic_acid\tcomplement\tna_type\tdG\n"
        f"hox\tsite\t{PROTEIN.lower()}\tttaatggctaatta\tTAATTAGCCATTAA\tRNA\t-9.1\n"
        f"short\trna\t{PROTEIN[:40]}\tACGTTAGCAT\t\tRNA\t-7\n"
    )
    tsv = _rows(obte("affinity", "--complexes", tmp_path / "c.tsv"))
    assert tsv == fasta and [r[5:] for r in tsv] == [["RNA", "given", "no"], ["RNA", "no", "no"]]
    # without ids and na_type: ids by line, the type guessed as for FASTA and said so
    (tmp_path / "bare.tsv").write_text(f"protein\tnucleic_acid\n{PROTEIN}\tTTAATGGCTAATTA\n")
    bare = obte("affinity", "--complexes", tmp_path / "bare.tsv")
    assert [r[:2] + r[5:] for r in _rows(bare)] == [["protein2", "na2", "DNA (assumed)", "no", "no"]]
    assert "an na_type column or --na-type RNA" in bare.stderr


@pytest.mark.parametrize(
    "tsv, args, message",
    [
        ("protein\tdG\nMKV\t-9\n", [], "c.tsv: missing column(s) nucleic_acid (need protein, nucleic_acid)"),
        ("protein\tnucleic_acid\tna_type\nMKV\tACGT\tssDNA\n", [], "c.tsv: line 2: na_type 'ssDNA' is not DNA or RNA"),
        ("protein\tnucleic_acid\n\tACGT\n", [], "c.tsv: line 2, protein: no protein sequence"),
        ("protein\tnucleic_acid\nMKV\tACGT\n", ["p.fa"], "give either --complexes TSV or the two FASTA files"),
        ("protein\tnucleic_acid\nMKV\tACGT\n", ["--pairs", "zip"], "'--pairs': does not apply to --complexes"),
        ("protein\tnucleic_acid\nMKV\tACGT\n", ["--complement", "revcomp"], "'--complement': does not apply"),
    ],
)
def test_complexes_tsv_errors_are_one_line(tmp_path, tsv, args, message):
    (tmp_path / "c.tsv").write_text(tsv)
    (tmp_path / "p.fa").write_text(">p1\nMKV\n")
    args = [tmp_path / a if a.endswith(".fa") else a for a in args]
    result = obte("affinity", "--complexes", tmp_path / "c.tsv", *args)
    assert result.exit_code == (2 if args else 1) and result.stdout == ""  # a usage error, or bad input
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1], result.stderr


def test_without_inputs_says_what_to_give():
    result = obte("affinity")
    assert result.exit_code == 2
    assert "give a protein and a nucleic-acid FASTA, or --complexes TSV" in result.stderr


def test_a_protein_given_as_the_nucleic_acid_is_refused_also_with_on_unknown_unk(tmp_path):
    (tmp_path / "p.fa").write_text(f">p1\n{PROTEIN}\n")
    result = obte("affinity", tmp_path / "p.fa", tmp_path / "p.fa", "--on-unknown", "unk")
    one_error_line(result, f"{tmp_path / 'p.fa'}: record 1 ('p1'): looks like a protein, not a nucleic acid")
    assert result.stdout == ""


def test_parts_mean_readout_end_to_end(small_pairs, backbone, tmp_path):
    """--readout parts-mean: recorded in each fold model's head, used again when the model predicts, and the
    bench prints the within-protein and per-protein PCC of its out-of-fold predictions."""
    from obte_cli.engine.core.metrics import group_mean_pcc, within_group_pcc

    out = tmp_path / "dg"
    args = ["--folds", "2", "--epochs", "1", "--batch-size", "16", "--seed", "1", "--device", "cpu"]
    result = obte(
        "finetune", "affinity", "--data", small_pairs[0], "--model", backbone, "--out", out, "--readout", "parts-mean",
        *args,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    model = load_affinity_model(out)
    assert {m.readout.kind for m in model.members} == {"parts-mean"} and model.metadata["readout"] == "parts-mean"
    assert model.members[0].head.proj.in_features == 2 * model.members[0].loaded.model.config.width
    predictions = pd.read_csv(out / "predictions.tsv", sep="\t")
    rows = predictions[predictions["fold"] == 1]
    table = small_pairs[1].iloc[rows["row"] - 1].reset_index(drop=True)
    fold_one = load_affinity_model(out / "fold-01")
    dg, _ = fold_one.predict(fold_one.prepare_table(table))
    assert np.allclose(dg, rows["dG_predicted"], atol=2e-3)

    bench = obte("bench", "pronab", "--data", small_pairs[0], "--from-cv", out, "--out", tmp_path / "bench")
    assert bench.exit_code == 0, bench.output
    assert "within-protein PCC" in bench.stderr and "per-protein PCC" in bench.stderr
    scores = pd.read_csv(tmp_path / "bench" / "bench.tsv", sep="\t").set_index("method")
    proteins = small_pairs[1]["protein"].to_numpy()[predictions["row"] - 1]
    within, n = within_group_pcc(predictions["dG_measured"], predictions["dG_predicted"], proteins)
    assert n >= 3 and scores.loc["obte", "within_protein_n"] == n
    assert scores.loc["obte", "within_protein_pcc"] == pytest.approx(within, abs=2e-4)  # bench.tsv has 4 decimals
    per_protein = group_mean_pcc(predictions["dG_measured"], predictions["dG_predicted"], proteins)
    assert scores.loc["obte", "per_protein_pcc"] == pytest.approx(per_protein, abs=2e-4)
    assert np.isfinite(scores.loc["composition+GBM", ["within_protein_pcc", "per_protein_pcc"]].astype(float)).all()


def test_readout_choice_is_a_usage_error(small_pairs, backbone, tmp_path):
    result = obte(
        "finetune", "affinity", "--data", small_pairs[0], "--model", backbone, "--out", tmp_path / "x",
        "--readout", "cls",
    )  # fmt: skip
    assert result.exit_code == 2 and "--readout" in result.output


def test_composition_method_end_to_end(small_pairs, tmp_path):
    """--method composition: the same outputs and protocol as the transformer, no backbone; its fold models
    reproduce the recorded out-of-fold predictions; `obte affinity` and the bench read it like any ΔG model."""
    out = tmp_path / "dg"
    result = obte(
        "finetune", "affinity", "--data", small_pairs[0], "--method", "composition", "--folds", "3", "-o", out
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "ensemble.json", "fold-01", "fold-02", "fold-03", "folds.tsv", "metrics.tsv", "predictions.tsv", "scatter.png"
    ]  # fmt: skip
    assert "PCC" in result.stderr and "homology guard" in result.stderr
    model = load_affinity_model(out)
    assert model.kind == "composition" and model.metadata["method"] == "composition"
    predictions = pd.read_csv(out / "predictions.tsv", sep="\t")
    for fold in (1, 2, 3):
        rows = predictions[predictions["fold"] == fold]
        member = load_affinity_model(out / f"fold-{fold:02d}")
        dg, _ = member.predict(member.prepare_table(small_pairs[1].iloc[rows["row"] - 1].reset_index(drop=True)))
        assert np.allclose(dg, rows["dG_predicted"], rtol=0, atol=5e-5)  # the TSV keeps 4 decimals

    (tmp_path / "p.fa").write_text(">p1\n" + "MKRIAVLG" * 300 + "\n")  # longer than any context: read whole
    (tmp_path / "na.fa").write_text(">d1\nACGTACGTAC\n>r1\nACGUUAGC\n")
    predicted = obte("affinity", tmp_path / "p.fa", tmp_path / "na.fa", "-m", out)
    assert predicted.exit_code == 0, predicted.output
    rows = [line.split("\t") for line in predicted.stdout.splitlines()]
    assert rows[0] == COLUMNS and len(rows) == 3 and {r[7] for r in rows[1:]} == {"no"}
    assert all(math.isfinite(float(r[2])) and float(r[3]) >= 0 for r in rows[1:])
    assert "composition, 3 member(s)" in predicted.stderr

    bench = obte("bench", "pronab", "--data", small_pairs[0], "--from-cv", out, "--out", tmp_path / "bench")
    assert bench.exit_code == 0, bench.output
    scores = pd.read_csv(tmp_path / "bench" / "bench.tsv", sep="\t").set_index("method")
    assert scores.loc["obte", "test_rows"] == len(predictions)


def test_composition_method_refuses_a_backbone(small_pairs, backbone, tmp_path):
    result = obte(
        "finetune", "affinity", "--data", small_pairs[0], "--method", "composition", "--model", backbone,
        "-o", tmp_path / "dg",
    )  # fmt: skip
    assert result.exit_code == 2 and "a composition model reads no backbone" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "dg").exists()


def test_composition_all_data_model(small_pairs, tmp_path):
    out = tmp_path / "all"
    result = obte(
        "finetune", "affinity", "--data", small_pairs[0], "--method", "composition", "--folds", "0", "-o", out
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["all-data", "ensemble.json"]
    model = load_affinity_model(out)
    assert model.kind == "composition" and model.members[0].model.metadata["train_rows"] == len(small_pairs[1])


def test_composition_method_on_too_few_proteins_is_a_one_line_error(small_pairs, tmp_path):
    table = small_pairs[1]
    one = table[table["protein"] == table["protein"].iat[0]]
    path = tmp_path / "one.tsv"
    one[["protein_id", "protein", "nucleic_acid", "complement", "na_type", "dG"]].to_csv(path, sep="\t", index=False)
    result = obte(
        "finetune", "affinity", "--data", path, "--method", "composition", "--folds", "0", "-o", tmp_path / "o"
    )
    assert result.exit_code == 1 and "at least 2 proteins" in result.stderr
    assert "Traceback" not in result.stderr and "at least 2" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "o").exists()

"""The contact commands end to end on real structures (tests/data/structures and the bundled example 1AZP):
`contacts labels` → `finetune contacts` → `contacts predict` (TSV + mmCIF B-factors) → `bench contacts`, and the
bundled contact model with its card."""

import gzip
import json
from pathlib import Path

import gemmi
import numpy as np
import pandas as pd
import pytest
from conftest import DATA, obte

from obte_cli.engine.contacts.io import sites_from_structure
from obte_cli.engine.contacts.sites import read_contact_labels
from obte_cli.engine.contacts.training import ContactTraining, train_contact_model
from obte_cli.engine.core.metrics import random_guess_f1
from obte_cli.engine.core.resources import example_file
from obte_cli.engine.finetuning.trainer import FinetuneSettings
from obte_cli.engine.model.directory import load_model

STRUCTURES = DATA / "structures"
NMR_1LCD = STRUCTURES / "1LCD.cif.gz"  # lac repressor headpiece on DNA, every NMR model
# protein–DNA (1LCD, 1AZP, the 1W0T dimer) and protein–RNA (3PF4)
TRAINING_STRUCTURES = [NMR_1LCD, example_file("1AZP.pdb.gz"), STRUCTURES / "1W0T.pdb.gz", STRUCTURES / "3PF4.pdb.gz"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):

    root = tmp_path_factory.mktemp("contacts")
    assert obte("contacts", "labels", *TRAINING_STRUCTURES, "--per-chain", "-o", root / "labels.tsv").exit_code == 0
    assert (
        obte("model", "init", "--preset", "micro", "--context", "512", "--seed", "0", "-o", root / "backbone").exit_code
        == 0
    )
    result = obte(
        "finetune",
        "contacts",
        "--labels",
        root / "labels.tsv",
        "--model",
        root / "backbone",
        "-o",
        root / "run",
        "--folds",
        "2",
        "--epochs",
        "2",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    return root


def test_finetune_contacts_writes_out_of_fold_tables_and_a_model(trained):
    sites, cutoffs = read_contact_labels(trained / "labels.tsv")
    predictions = pd.read_csv(trained / "run" / "predictions.tsv", sep="\t")
    assert len(predictions) == sum(len(s.protein) for s in sites)
    assert predictions[[f"p_{c:g}" for c in cutoffs]].notna().all().all()
    folds = pd.read_csv(trained / "run" / "folds.tsv", sep="\t").set_index("site")["fold"]
    by_sequence = {}
    for site in sites:  # identical chains (the 1W0T dimer) share a fold
        by_sequence.setdefault(site.protein, set()).add(folds[site.name])
    assert all(len(f) == 1 for f in by_sequence.values())
    metrics = pd.read_csv(trained / "run" / "metrics.tsv", sep="\t")
    assert list(metrics["cutoff"]) == [4, 6, 8]
    for row in metrics.itertuples():  # recomputed from the predictions table
        labels = predictions[f"contact_{row.cutoff:g}"]
        assert row.positive_rate == pytest.approx(labels.mean(), rel=1e-3)  # the table keeps 4 digits
        assert row.random_f1 == pytest.approx(random_guess_f1(labels.mean()), rel=1e-3)
    assert (trained / "run" / "model" / "model.safetensors").is_file()


def test_finetune_contacts_context_lets_a_short_backbone_read_whole_chains(trained, tmp_path):
    """A backbone made for 64 tokens cuts most chains; --context 512 fine-tunes it at 512, and the saved model
    (config and head) reads 512, so every residue of the training chains gets a prediction."""
    assert obte("model", "init", "--preset", "micro", "--context", "64", "-o", tmp_path / "short").exit_code == 0
    args = ["finetune", "contacts", "--labels", trained / "labels.tsv", "--model", tmp_path / "short"]
    args += ["--folds", "2", "--epochs", "1", "--device", "cpu"]
    cut = obte(*args, "-o", tmp_path / "cut")
    whole = obte(*args, "--context", "512", "-o", tmp_path / "whole")
    assert cut.exit_code == 0 and whole.exit_code == 0, cut.output + whole.output
    sites, _ = read_contact_labels(trained / "labels.tsv")
    tokenizer = load_model(tmp_path / "short").tokenizer
    too_long = sum(len(tokenizer.encode_one(s.segments(), on_unknown="unk")) > 64 for s in sites)
    assert too_long > 0  # the cut is said, counted, and not said where nothing is cut
    said = f"{too_long} of {len(sites)} sites had their protein cut at its C-terminus to the context of 64 tokens"
    assert said in cut.stderr
    assert "had their protein cut" not in whole.stderr
    config = json.loads((tmp_path / "whole" / "model" / "config.json").read_text())
    assert config["architecture"]["max_positions"] == 512 and config["head"]["context"] == 512
    predicted = {
        name: pd.read_csv(tmp_path / name / "predictions.tsv", sep="\t")["p_4"].notna().mean()
        for name in ("cut", "whole")
    }
    assert predicted["whole"] == 1.0 and predicted["cut"] < 0.75  # 64 tokens: 61% of residues


def test_predict_writes_mmcif_whose_bfactors_are_the_probabilities(trained, tmp_path):

    structure = NMR_1LCD
    result = obte(
        "contacts",
        "predict",
        "--structure",
        structure,
        "-m",
        trained / "run" / "model",
        "-o",
        tmp_path / "pred.tsv",
        "--cif-out",
        tmp_path / "1LCD.contacts.cif",
        "--bfactor-cutoff",
        "6",
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "pred.tsv", sep="\t", keep_default_na=False)
    assert list(table.columns[:3]) == ["site", "residue", "aa"] and set(table["site"]) == {"1LCD:A"}
    assert "".join(table["aa"]) == "MKPVTLYDVAEYAGVSYQTVSRVVNQASHVSAKTREKVEAAMAELNYIPNR"
    assert table[["contact_4", "contact_6", "contact_8"]].isin([0, 1]).all().all()  # observed labels alongside
    written = gemmi.read_structure(str(tmp_path / "1LCD.contacts.cif"))
    expected = dict(zip(table["residue"].astype(str), 100 * table["p_6"].astype(float)))
    assert len(written) == len(gemmi.read_structure(str(structure)))  # every NMR model kept
    seen = 0
    for model in written:
        for chain in model:
            for residue in chain:
                for atom in residue:
                    if chain.name == "A" and str(residue.seqid.num) in expected:
                        assert atom.b_iso == pytest.approx(expected[str(residue.seqid.num)], abs=1e-2)
                        seen += 1
                    else:  # nucleic acids, waters, ligands
                        assert atom.b_iso == 0.0
    assert seen > 0


def test_predict_from_fasta_maps_a_longer_construct_onto_the_chain(trained, tmp_path):

    chain = "MKPVTLYDVAEYAGVSYQTVSRVVNQASHVSAKTREKVEAAMAELNYIPNR"
    (tmp_path / "p.fa").write_text(f">lacI_construct\nGS{chain}VAQQ\n")
    (tmp_path / "n.fa").write_text(">op1\nAATTGTGAGCG\n>op2\nCGCTCACAATT\n")
    result = obte(
        "contacts",
        "predict",
        "--protein",
        tmp_path / "p.fa",
        "--na",
        tmp_path / "n.fa",
        "-m",
        trained / "run" / "model",
        "--structure",
        NMR_1LCD,
        "--cif-out",
        tmp_path / "out.cif",
        "-o",
        tmp_path / "pred.tsv",
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "pred.tsv", sep="\t", keep_default_na=False)
    assert len(table) == len(chain) + 6
    mapped = table[table["chain_residue"] != "NA"]
    assert list(mapped["residue"].astype(int)) == list(range(3, 3 + len(chain)))  # GS precede residue 1
    assert list(mapped["chain_residue"].astype(int)) == list(range(1, len(chain) + 1))


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "nothing to predict"),
        (["--protein", "x.fa"], "'--protein' / '--na': give both"),
        (["--cif-out", "o.cif", "--protein", "a.fa", "--na", "b.fa"], "'--cif-out': needs --structure"),
    ],
)
def test_predict_missing_inputs_are_one_line_usage_errors(trained, args, message):
    result = obte("contacts", "predict", "-m", trained / "run" / "model", *args)
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output


def test_predict_refuses_a_structure_without_nucleic_acid_and_a_non_contact_model(trained, tmp_path):

    lines = [
        line
        for line in gzip.decompress((STRUCTURES / "1LCD.pdb.gz").read_bytes()).decode().splitlines()
        if not (line.startswith(("ATOM", "HETATM", "TER")) and line[21] in "BC")
    ]
    (tmp_path / "protein.pdb").write_text("\n".join(lines))
    result = obte("contacts", "predict", "--structure", tmp_path / "protein.pdb", "-m", trained / "run" / "model")
    assert result.exit_code == 1 and "no nucleic-acid chain" in result.stderr.strip().splitlines()[-1]
    wrong = obte("contacts", "predict", "--structure", NMR_1LCD, "-m", trained / "backbone")
    assert wrong.exit_code == 1 and "not a contact model" in wrong.stderr


def test_attention_probe_model_round_trips(trained, tmp_path):
    """The model that `finetune contacts --probe attention` saves predicts, through `contacts predict`, what the
    probe trained in process (by the engine, with the options' settings; never saved nor loaded) predicts."""
    training = ContactTraining(trained / "backbone", FinetuneSettings(epochs=1, batch_size=8), "attention", folds=0)
    as_trained = train_contact_model(trained / "labels.tsv", tmp_path / "in-process", training).predictor
    result = obte(
        "finetune",
        "contacts",
        "--labels",
        trained / "labels.tsv",
        "--model",
        trained / "backbone",
        "-o",
        tmp_path / "probe",
        "--folds",
        "0",
        "--epochs",
        "1",
        "--probe",
        "attention",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    predicted = obte("contacts", "predict", "--structure", NMR_1LCD, "-m", tmp_path / "probe" / "model")
    assert predicted.exit_code == 0, predicted.output
    table = pd.read_csv(pd.io.common.StringIO(predicted.stdout), sep="\t")
    assert table[["p_4", "p_6", "p_8"]].apply(lambda c: c.between(0, 1)).all().all()
    # the table is the probe as trained applied to the backbone's attention maps, residue by residue
    (site,) = sites_from_structure(NMR_1LCD)
    (expected,) = as_trained.predict([site])
    assert len(expected) == len(table) == len(site.protein)
    assert np.allclose(table[["p_4", "p_6", "p_8"]].to_numpy(), expected, atol=6e-5)  # the table keeps 4 digits
    assert (table[["p_4", "p_6", "p_8"]].std() > 0).all()  # it varies across residues


def test_bench_contacts_reports_every_predictor_beside_the_random_guess(trained, tmp_path):

    result = obte(
        "bench",
        "contacts",
        *TRAINING_STRUCTURES,
        "-m",
        trained / "backbone",
        "--methods",
        "head",
        "--methods",
        "propensity",
        "--folds",
        "2",
        "--epochs",
        "1",
        "-o",
        tmp_path / "bench",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    metrics = pd.read_csv(tmp_path / "bench" / "metrics.tsv", sep="\t")
    assert set(metrics["predictor"]) == {"propensity", "backbone head"}
    assert len(metrics) == 6 and metrics["f1"].between(0, 1).all()
    assert np.allclose(metrics["random_f1"], 2 * metrics["positive_rate"] / (1 + metrics["positive_rate"]), atol=1e-3)
    assert (tmp_path / "bench" / "contacts_f1.png").stat().st_size > 1000


def test_the_bundled_model_predicts_the_bundled_example_and_its_card_matches_its_metrics(tmp_path):
    from obte_cli.engine.core.resources import default_contacts_model_dir

    result = obte("contacts", "predict", "--structure", example_file("1AZP.pdb.gz"), "--cif-out", tmp_path / "1AZP.cif")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(pd.io.common.StringIO(result.stdout), sep="\t")
    assert len(table) == 66 and set(table["site"]) == {"1AZP:A"}
    assert gemmi.read_structure(str(tmp_path / "1AZP.cif"))[0]["A"][0][0].b_iso == pytest.approx(
        100 * table["p_4"][0], abs=1e-2
    )
    metrics = pd.read_csv(default_contacts_model_dir() / "metrics.tsv", sep="\t")
    card = (default_contacts_model_dir() / "README.md").read_text()
    for row in metrics.itertuples():
        assert f"| {row.cutoff:g} Å | {row.f1:.3f} ± {row.f1_sem:.3f} | {row.roc_auc:.3f} |" in card
        assert f"{row.random_f1:.3f} |" in card


def test_the_shipped_bench_agrees_with_the_model_card_and_the_models_own_cv():
    from obte_cli.engine.core.resources import default_contacts_model_dir

    root = default_contacts_model_dir()
    bench = pd.read_csv(root / "bench" / "metrics.tsv", sep="\t")
    own = pd.read_csv(root / "metrics.tsv", sep="\t")
    # the bundled model is the bench's head run of its first backbone: same sites, folds, seed, so the same numbers
    base = Path(bench["backbone"].dropna().iloc[0]).name
    base_head = bench[bench["predictor"] == f"{base} head"].reset_index(drop=True)
    assert len(base_head) == 3
    assert np.allclose(base_head["f1"], own["f1"]) and np.allclose(base_head["roc_auc"], own["roc_auc"])
    card = (root / "README.md").read_text()
    for name, rows in bench.groupby("predictor", sort=False):
        cells = " | ".join(f"{r.f1:.3f} ± {r.f1_sem:.3f}" for r in rows.sort_values("cutoff").itertuples())
        assert cells in card, name

"""`obte model info` (#33 §4): without a path it describes the default backbone; on the bundled backbone it says how
the weights were made (it printed `trained na`); on a ΔG ensemble it describes the ensemble (it said "not an obte
model directory")."""

from conftest import REPO, obte

from obte_cli.engine.model.description import training_record

MODELS = REPO / "share" / "models"


def _info(*args) -> dict[str, str]:
    result = obte("model", "info", *args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "key\tvalue"
    return dict(line.split("\t", 1) for line in lines[1:])


def test_without_a_path_it_describes_the_default_backbone():
    info = _info()
    assert info["name"] == "obte1_omni_t6_6M_DEB12" and info["path"].endswith("share/models/obte1_omni_t6_6M_DEB12")
    assert info == _info(MODELS / "obte1_omni_t6_6M_DEB12") | {"path": info["path"]}


def test_the_bundled_backbone_says_how_it_was_trained():
    info = _info(MODELS / "obte1_omni_t6_6M_DEB12")
    assert info["trained"] == "true", info
    assert info["training"] == "pretrained by `obte pretrain` on 382,320,640 tokens (omni)"
    assert info["description"] == "obte1_omni_t6_6M_DEB12 — obte's default pretrained backbone"  # the card's title
    assert float(info["heldout_protein_bits_per_residue"]) < 4.33  # below amino-acid frequencies alone (log2 20)
    assert (info["width"], info["n_layers"], info["head"]) == ("288", "6", "none")


def test_a_fresh_model_is_untrained(tmp_path):
    assert obte("model", "init", "--preset", "micro", "--context", "128", "-o", tmp_path / "micro").exit_code == 0
    info = _info(tmp_path / "micro")
    assert (info["trained"], info["training"]) == ("false", "initialised by `obte model init`, never trained")
    assert info["description"] == "NA"


def test_the_bundled_affinity_ensemble_is_described():
    info = _info(MODELS / "affinity")
    assert info["kind"] == "ΔG ensemble of 10 models" and info["members"] == "10"
    assert (info["model"], info["method"], info["head"]) == ("composition", "composition", "affinity")
    assert info["cv_mae_kcal_mol"].startswith("1.629 ± 0.080 (mean ± SEM over 10 folds")  # its metrics.tsv
    assert info["cv_pcc"].startswith("0.388 ± 0.026")
    member = _info(MODELS / "affinity" / "fold-01")
    assert member["kind"] == "ΔG model" and "cv_pcc" not in member


def test_a_directory_that_is_no_model_is_still_refused(tmp_path):
    result = obte("model", "info", tmp_path)
    assert result.exit_code == 1 and "no config.json" in result.stderr


def test_training_record_of_each_origin():
    assert training_record({"converted_from": "OmniBioTE-small.pt"}) == (
        "true",
        "converted from OmniBioTE-small.pt by `obte convert`",
    )
    assert training_record({"task": "classification", "best_epoch": 3})[1] == "fine-tuned (classification)"
    assert training_record({}) == ("unknown", "the config records no training")

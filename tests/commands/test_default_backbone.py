"""Commands that take a backbone use the bundled pretrained one when --model is not given."""

import numpy as np
import pytest
from conftest import DATA, obte

from obte_cli.engine.core import resources


@pytest.fixture(scope="module")
def micro_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("backbone") / "micro"
    assert obte("model", "init", "--preset", "micro", "--context", "256", "-o", path).exit_code == 0
    return path


def test_without_a_bundled_backbone_model_is_required(monkeypatch, tmp_path):
    monkeypatch.setattr(resources, "default_backbone_dir", lambda: None)
    for args in (
        ["embed", DATA / "pronab_ligands.fa", "-o", tmp_path / "e.npy"],
        ["score", DATA / "pronab_ligands.fa"],
    ):
        result = obte(*args)
        assert result.exit_code == 1 and "no --model given" in result.stderr and "--model DIR" in result.stderr
    assert not (tmp_path / "e.npy").exists()


def test_embed_and_score_use_the_bundled_backbone(monkeypatch, tmp_path, micro_model):
    monkeypatch.setattr(resources, "default_backbone_dir", lambda: micro_model)
    default = obte("embed", DATA / "pronab_ligands.fa", "-o", tmp_path / "default.npy")
    explicit = obte("embed", DATA / "pronab_ligands.fa", "-m", micro_model, "-o", tmp_path / "explicit.npy")
    assert default.exit_code == 0 and explicit.exit_code == 0, default.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "default.npy"), np.load(tmp_path / "explicit.npy"))
    assert (
        obte("score", DATA / "pronab_ligands.fa").stdout
        == obte("score", DATA / "pronab_ligands.fa", "-m", micro_model).stdout
    )


def test_the_bundled_backbone_is_resolved_only_when_shipped(tmp_path, monkeypatch):
    monkeypatch.setattr(resources, "share_dir", lambda: tmp_path)
    assert resources.default_backbone_dir() is None
    (tmp_path / "models" / resources.DEFAULT_BACKBONE).mkdir(parents=True)
    assert resources.default_backbone_dir() is None  # an empty directory is not a model
    (tmp_path / "models" / resources.DEFAULT_BACKBONE / "config.json").write_text("{}")
    assert resources.default_backbone_dir() == tmp_path / "models" / resources.DEFAULT_BACKBONE

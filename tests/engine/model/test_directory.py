import pytest
import torch
from conftest import edit_json
from safetensors.torch import load_file, save_file

from obte_cli.engine.core.errors import ModelFormatError
from obte_cli.engine.model.directory import WEIGHTS_FILE, load_model, save_model
from obte_cli.engine.model.encoder import ObteConfig, ObteModel
from obte_cli.engine.tokenizers.base import Segment


@pytest.fixture
def saved(tmp_path, residue_tokenizer):
    torch.manual_seed(0)
    model = ObteModel(ObteConfig(vocab_size=64, width=64, n_layers=2, n_heads=4))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    path = save_model(tmp_path / "m", model, residue_tokenizer, metadata={"preset": "test"})
    return path, model


def test_round_trip_gives_identical_outputs(saved, residue_tokenizer):
    path, model = saved
    loaded = load_model(path)
    ids = torch.as_tensor(residue_tokenizer.encode_one([Segment("MKVLAAGIVW", "protein"), Segment("ACGT", "DNA")]).ids)[
        None
    ]
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(ids).hidden, model(ids).hidden, atol=0, rtol=0)
    assert loaded.metadata["preset"] == "test"
    assert (
        loaded.tokenizer.encode_one([Segment("ACGT", "DNA")]).ids.tolist()
        == residue_tokenizer.encode_one([Segment("ACGT", "DNA")]).ids.tolist()
    )
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]


def test_head_weights_travel_with_the_model(tmp_path, residue_tokenizer):
    model = ObteModel(ObteConfig(vocab_size=64, width=32, n_layers=1, n_heads=4))
    head = {"proj.weight": torch.randn(1, 32), "proj.bias": torch.zeros(1)}
    description = {"kind": "sequence", "n_outputs": 1, "task": "affinity", "dg_mean": -9.5, "dg_sd": 2.0}
    save_model(tmp_path / "m", model, residue_tokenizer, head=description, head_state=head)
    loaded = load_model(tmp_path / "m")
    assert loaded.head == description
    torch.testing.assert_close(loaded.head_state["proj.weight"], head["proj.weight"])


def test_save_is_atomic_and_refuses_to_overwrite(saved, residue_tokenizer):
    path, model = saved
    with pytest.raises(FileExistsError):
        save_model(path, model, residue_tokenizer)
    save_model(path, model, residue_tokenizer, overwrite=True)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_missing_and_foreign_files(tmp_path, saved):
    path, _ = saved
    with pytest.raises(ModelFormatError, match="no such model directory"):
        load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFormatError, match="no config.json"):
        load_model(tmp_path / "empty")
    (path / WEIGHTS_FILE).unlink()
    with pytest.raises(ModelFormatError, match="model.safetensors is missing"):
        load_model(path)


def test_newer_format_is_refused(saved):
    path, _ = saved
    edit_json(path / "config.json", lambda config: config.__setitem__("format_version", 99))
    with pytest.raises(ModelFormatError, match="newer than this obte understands"):
        load_model(path)


def test_weights_that_disagree_with_config(saved):
    path, _ = saved
    tensors = load_file(str(path / WEIGHTS_FILE))
    tensors["blocks.0.mlp.fc.weight"] = torch.zeros(10, 64)
    save_file(tensors, str(path / WEIGHTS_FILE))
    with pytest.raises(ModelFormatError, match=r"blocks.0.mlp.fc.weight has shape \(10, 64\)"):
        load_model(path)
    del tensors["blocks.0.mlp.fc.weight"]
    tensors["extra.weight"] = torch.zeros(1)
    save_file(tensors, str(path / WEIGHTS_FILE))
    with pytest.raises(ModelFormatError, match="missing blocks.0.mlp.fc.weight; unexpected extra.weight"):
        load_model(path)


def test_tokenizer_larger_than_embedding_is_refused(saved):
    path, _ = saved
    edit_json(path / "config.json", lambda config: config["architecture"].__setitem__("vocab_size", 32))
    with pytest.raises(ModelFormatError, match="tokenizer has 49 ids but the model embeds only 32"):
        load_model(path)


def test_garbage_weights_file(saved):
    path, _ = saved
    (path / WEIGHTS_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(ModelFormatError, match="unreadable weights"):
        load_model(path)

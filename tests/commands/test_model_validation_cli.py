"""`obte model info` refuses what loading refuses (it validates the same way), and commands that load
a broken model directory end in one `error:` line naming the file and field, never a traceback."""

import shutil

import pytest
import torch
from conftest import edit_json, obte, one_error_line
from safetensors.torch import load_file, save_file

from obte_cli.engine.core.resources import default_contacts_model_dir


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "micro"
    assert obte("model", "init", "--preset", "micro", "--context", "128", "-o", path).exit_code == 0
    return path


def broken_copy(source, tmp_path, config_change=None, weights_change=None):
    path = tmp_path / "broken"
    shutil.copytree(source, path, ignore=shutil.ignore_patterns("bench"))
    if config_change is not None:
        edit_json(path / "config.json", config_change)
    if weights_change is not None:
        tensors = load_file(str(path / "model.safetensors"))
        weights_change(tensors)
        save_file(tensors, str(path / "model.safetensors"))
    return path


def test_model_info_accepts_a_good_model(micro):
    result = obte("model", "info", micro)
    assert result.exit_code == 0 and "n_heads\t4" in result.stdout


def arch(field, value):
    return lambda config: config["architecture"].__setitem__(field, value)


@pytest.mark.parametrize(
    "config_change, weights_change, message",
    [
        (arch("n_heads", 0), None, "architecture.n_heads must be a positive integer (got 0)"),
        (arch("width", -8), None, "architecture.width must be a positive integer (got -8)"),
        (arch("width", "abc"), None, "architecture.width must be a positive integer (got 'abc')"),
        (arch("dropout", 2), None, "architecture.dropout must be a number in [0, 1) (got 2)"),
        (lambda c: c["tokenizer"].__setitem__("vocab_size", 7), None, "tokenizer.vocab_size is 7 but tokenizer.json"),
        (None, lambda t: t.__setitem__("embed.weight", t["embed.weight"].long()), "embed.weight holds int64 values"),
        (None, lambda t: t.pop("ln_f.weight"), "weights do not match config.json (missing ln_f.weight)"),
        (None, lambda t: t.__setitem__("extra", torch.zeros(2)), "weights do not match config.json (unexpected extra)"),
    ],
)
def test_model_info_refuses_a_broken_model(micro, tmp_path, config_change, weights_change, message):
    path = broken_copy(micro, tmp_path, config_change, weights_change)
    line = one_error_line(obte("model", "info", path))
    assert message in line and str(path) in line


def test_model_info_refuses_a_negative_token_id(micro, tmp_path):
    path = broken_copy(micro, tmp_path)
    edit_json(path / "tokenizer.json", lambda vocab: vocab["specials"].__setitem__("unk", -1))
    line = one_error_line(obte("model", "info", path))
    assert line == f"error: {path / 'tokenizer.json'}: specials.unk must be a non-negative integer (got -1)"


def test_model_info_refuses_a_corrupt_sentencepiece_model(tmp_path):
    path = tmp_path / "bpe"
    assert (
        obte("model", "init", "--preset", "micro", "-t", "omnibiote-mixed", "--context", "64", "-o", path).exit_code
        == 0
    )
    (path / "mixed_bpe.model").write_bytes(b"garbage" * 10)
    assert "checksum differs" in one_error_line(obte("model", "info", path))
    edit_json(path / "tokenizer.json", lambda tokenizer: tokenizer["components"][0].pop("sha256"))
    line = one_error_line(obte("model", "info", path))
    assert line.startswith(f"error: {path / 'mixed_bpe.model'}: not a readable sentencepiece model")
    (path / "mixed_bpe.model").unlink()
    line = one_error_line(obte("model", "info", path))
    assert line == f"error: {path / 'mixed_bpe.model'}: tokenizer file listed in tokenizer.json is missing"


def test_contacts_predict_refuses_a_short_thresholds_list(tmp_path):
    """It used to write 7 fields under a 9-column header; now the model is refused on load."""
    path = broken_copy(default_contacts_model_dir(), tmp_path, lambda c: c["head"]["thresholds"].pop())
    (tmp_path / "p.fa").write_text(">p\nMKTAYIAKQRQISFVKSHFSRQ\n")
    (tmp_path / "n.fa").write_text(">n\nACGTACGTTT\n")
    for command in (
        ["model", "info", path],
        ["contacts", "predict", "-m", path, "--protein", tmp_path / "p.fa", "--na", tmp_path / "n.fa"],
    ):
        line = one_error_line(obte(*command))
        assert line == f"error: {path / 'config.json'}: head.thresholds must hold one threshold per cutoff, 3 (got 2)"

"""`obte model info` refuses what loading refuses (it validates the same way), and commands that load
a broken model directory end in one `error:` line naming the file and field, never a traceback."""

import json
import shutil

import pytest
import torch
from conftest import obte
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
        config = json.loads((path / "config.json").read_text())
        config_change(config)
        (path / "config.json").write_text(json.dumps(config))
    if weights_change is not None:
        tensors = load_file(str(path / "model.safetensors"))
        weights_change(tensors)
        save_file(tensors, str(path / "model.safetensors"))
    return path


def one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


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
    vocab = json.loads((path / "tokenizer.json").read_text())
    vocab["specials"]["unk"] = -1
    (path / "tokenizer.json").write_text(json.dumps(vocab))
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
    tokenizer = json.loads((path / "tokenizer.json").read_text())
    del tokenizer["components"][0]["sha256"]
    (path / "tokenizer.json").write_text(json.dumps(tokenizer))
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
        ["contacts", "predict", "-m", path, "-p", tmp_path / "p.fa", "-n", tmp_path / "n.fa"],
    ):
        line = one_error_line(obte(*command))
        assert line == f"error: {path / 'config.json'}: head.thresholds must hold one threshold per cutoff, 3 (got 2)"

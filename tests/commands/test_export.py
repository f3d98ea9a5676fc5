"""`obte export --format hf` (#33 §1): writes a Hugging Face directory, and guards its --out like `convert` does."""

from __future__ import annotations

import json

import pytest
from conftest import obte


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "micro"
    result = obte("model", "init", "--preset", "micro", "--context", "128", "-o", path)
    assert result.exit_code == 0, result.output
    return path


def test_it_writes_an_esm_directory(micro, tmp_path):
    out = tmp_path / "hf"
    result = obte("export", micro, "--format", "hf", "-o", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "obte-export.json",
        "tokenizer_config.json",
        "vocab.txt",
    ]
    config = json.loads((out / "config.json").read_text())
    assert (config["model_type"], config["hidden_size"], config["position_embedding_type"]) == ("esm", 64, "rotary")
    vocabulary = (out / "vocab.txt").read_text().splitlines()
    assert len(vocabulary) == config["vocab_size"]
    assert vocabulary[:5] == ["<pad>", "<mask>", "<eos>", "<unk>", "<protein>"]


def test_out_is_replaced_only_with_force_and_only_if_obte_wrote_it(micro, tmp_path):
    out = tmp_path / "hf"
    assert obte("export", micro, "-o", out).exit_code == 0
    again = obte("export", micro, "-o", out)
    assert again.exit_code == 1 and "already exists (use --force" in again.output
    assert obte("export", micro, "-o", out, "--force").exit_code == 0
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    refused = obte("export", micro, "-o", foreign, "--force")
    assert refused.exit_code == 1 and "notes.txt" in refused.output
    assert (foreign / "notes.txt").read_text() == "keep"
    itself = obte("export", micro, "-o", micro, "--force")
    assert itself.exit_code == 1 and "would replace the input" in itself.output


def test_an_unknown_format_is_a_usage_error(micro, tmp_path):
    result = obte("export", micro, "--format", "onnx", "-o", tmp_path / "x")
    assert result.exit_code == 2 and "--format" in result.output

"""A pretraining run's start and end (engine/pretraining/run.py): the corpora and starting model it checks,
and the model directory and loss curve it exports, on real sequences."""

import numpy as np
import pytest
import torch
from conftest import DATA, obte

from obte_cli.engine.core.errors import InputError
from obte_cli.engine.model.directory import load_model
from obte_cli.engine.pretraining.distributed import DistributedContext
from obte_cli.engine.pretraining.loop import PretrainSettings, pretrain, unigram_baselines
from obte_cli.engine.pretraining.run import (
    export_model,
    final_accuracies,
    full_state_dict,
    open_corpora,
    starting_model,
)
from obte_cli.engine.pretraining.token_files import open_corpus


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, protein_fasta):
    """Real proteins, chloroplast RNA genes and ProNAB ligands, prepared once and tokenized two ways."""
    root = tmp_path_factory.mktemp("run")
    prep = root / "prep"
    assert (
        obte("prep", protein_fasta, DATA / "chloroplast_rna.gb", DATA / "pronab_ligands.fa", "-o", prep).exit_code == 0
    )
    assert obte("tokenize", "corpus", prep, "-o", root / "residue").exit_code == 0
    assert obte("tokenize", "corpus", prep, "-t", "omnibiote-mixed", "-o", root / "bpe").exit_code == 0
    return root


def _settings(**overrides):
    base = dict(context=128, batch_tokens=1024, micro_batch_rows=4, total_tokens=1024 * 4, warmup_tokens=1024, seed=1)
    return PretrainSettings(**{**base, **overrides})


def test_final_accuracies_average_the_last_five_percent_of_steps():
    history = [
        {"masked_accuracy": i / 100, "protein_accuracy": i / 200, "nucleic_accuracy": None} for i in range(1, 41)
    ]
    history[-1]["protein_accuracy"] = None  # the last step masked no protein token
    assert final_accuracies(history) == {
        "steps": 2,  # 5% of 40
        "all": pytest.approx((0.39 + 0.40) / 2),
        "protein": pytest.approx(0.39 / 2),
        "nucleic": None,
    }
    assert final_accuracies(history[:3])["steps"] == 1 and final_accuracies(history[:3])["all"] == pytest.approx(0.03)


def test_the_exported_model_is_the_trained_one_with_the_run_in_its_metadata(prepared, tmp_path):
    corpus = open_corpus(prepared / "residue")
    model, context = starting_model(corpus, "micro", context=128, seed=3)
    settings = _settings()
    result = pretrain(model, corpus, settings, tmp_path, DistributedContext())
    trained = full_state_dict(result.model, fsdp=False)

    summary = export_model(result, corpus, settings, tmp_path, DistributedContext(), preset="micro")
    assert summary.model_dir == tmp_path / "model" and summary.last == result.history[-1]
    loaded = load_model(tmp_path / "model")
    assert loaded.tokenizer.to_config() == corpus.tokenizer.to_config()
    assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in trained.items())
    meta = loaded.metadata
    run = meta["pretraining"]
    assert meta["preset"] == "micro" and run["processes"] == 1 and run["corpus"] == str(prepared / "residue")
    assert run["tokens_seen"] == 4 * 1024 and run["final_loss"] == result.history[-1]["loss"]
    assert run["final_masked_accuracy"] == final_accuracies(result.history) == summary.accuracies
    assert run["unigram_baselines"] == unigram_baselines(corpus) == summary.baselines
    assert run["context"] == context == 128 and run["seed"] == 1
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_only_the_main_process_writes_and_a_one_modality_run_quotes_its_own_baseline(prepared, tmp_path):
    corpus = open_corpus(prepared / "residue")
    model, _ = starting_model(corpus, "micro", context=128)
    settings = _settings(modality="protein", total_tokens=2048)
    result = pretrain(model, corpus, settings, tmp_path, DistributedContext())
    assert export_model(result, corpus, settings, tmp_path, DistributedContext(rank=1, world_size=2)) is None
    assert not (tmp_path / "model").exists() and not (tmp_path / "loss.png").exists()
    summary = export_model(result, corpus, settings, tmp_path, DistributedContext())
    protein = unigram_baselines(corpus)["protein"]
    assert summary.baselines == {"protein": protein, "all": protein}
    assert load_model(tmp_path / "model").metadata["preset"] is None  # not named: e.g. a run from --init


def test_starting_model_fresh_or_from_a_model_directory(prepared, tmp_path):
    residue, bpe = open_corpus(prepared / "residue"), open_corpus(prepared / "bpe")
    fresh, context = starting_model(residue, "micro", seed=5)
    assert context == 2048 == fresh.config.max_positions and fresh.config.width == 64
    again, _ = starting_model(residue, "micro", seed=5)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), again.state_dict().values()))
    assert starting_model(bpe, "micro")[1] == 1024

    result = pretrain(
        starting_model(residue, "micro", context=128)[0],
        residue,
        _settings(total_tokens=1024),
        tmp_path,
        DistributedContext(),
    )
    export_model(result, residue, _settings(total_tokens=1024), tmp_path, DistributedContext())
    init, context = starting_model(residue, "tiny", init=tmp_path / "model")
    assert context == 128 and init.config.width == 64  # the directory's shape and context, not the preset's
    assert np.allclose(init.embed.weight.detach().numpy(), result.model.embed.weight.detach().numpy())
    with pytest.raises(InputError, match="exceeds the model's 128 positions"):
        starting_model(residue, "micro", init=tmp_path / "model", context=256)
    with pytest.raises(InputError, match="its tokenizer differs"):
        starting_model(bpe, "micro", init=tmp_path / "model")


def test_open_corpora_checks_the_held_out_corpus(prepared):
    corpus, none = open_corpora(prepared / "residue")
    assert none is None and corpus.path == prepared / "residue"
    _, held = open_corpora(prepared / "residue", prepared / "residue")
    assert held.manifest == corpus.manifest
    with pytest.raises(InputError, match="give one"):
        open_corpora(prepared / "residue", prepared / "residue", holdout=0.1)
    with pytest.raises(InputError, match="another tokenizer"):
        open_corpora(prepared / "residue", prepared / "bpe")

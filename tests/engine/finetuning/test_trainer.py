import numpy as np
import pytest
import torch

from obte_cli.engine.finetuning.trainer import (
    FinetuneSettings,
    finetune_param_groups,
    predict_sequence_task,
    train_sequence_task,
)
from obte_cli.engine.model.encoder import ObteConfig, ObteModel
from obte_cli.engine.model.heads import LinearHead
from obte_cli.engine.model.packing import microbatches
from obte_cli.engine.tokenizers.base import Segment


def small_model(seed=0):
    torch.manual_seed(seed)
    return ObteModel(ObteConfig(vocab_size=64, width=64, n_layers=2, n_heads=4))


@pytest.fixture(scope="module")
def gc_task(pronab, residue_tokenizer):
    """Real DNA ligands from ProNAB; target: standardised GC fraction (a property the model must read)."""
    strands = sorted(
        {row[0] for e in pronab.values() for row in e["binding data"] if row[0] and set(row[0]) <= set("ACGT")}
    )
    strands = [s for s in strands if 10 <= len(s) <= 40][:240]
    gc = np.array([(s.count("G") + s.count("C")) / len(s) for s in strands])
    target = (gc - gc.mean()) / gc.std()
    ids = [residue_tokenizer.encode_one([Segment(s, "DNA")]).ids for s in strands]
    return ids, target.astype(np.float32)


def test_param_groups_follow_the_paper_recipe():
    model, head = small_model(), LinearHead(64)
    groups = {g["role"]: g for g in finetune_param_groups(model, head, FinetuneSettings())}
    assert groups["head"]["lr"] == 1e-2 and groups["embedding"]["lr"] == 1e-3
    assert groups["body"]["lr"] == pytest.approx(1e-4 * 1024 / 64)
    assert not model.readout.weight.requires_grad
    trainable = {id(p) for g in groups.values() for p in g["params"]}
    assert id(model.readout.weight) not in trainable and id(model.embed.weight) in trainable


def test_microbatches_respect_the_token_budget():
    lengths = [5, 30, 12, 7, 40, 3]
    groups = microbatches(lengths, max_tokens=45)
    assert sorted(i for g in groups for i in g) == list(range(6))
    assert all(sum(lengths[i] for i in g) <= 45 or len(g) == 1 for g in groups)


@pytest.mark.slow
def test_regression_learns_a_real_sequence_property(gc_task, residue_tokenizer):
    ids, target = gc_task
    train, test = slice(0, 200), slice(200, None)
    model, head = small_model(), LinearHead(64)
    settings = FinetuneSettings(epochs=6, batch_size=16, seed=0, lr_body=4e-4)
    history = train_sequence_task(model, head, ids[train], target[train], settings, residue_tokenizer.pad_id)
    predicted = predict_sequence_task(model, head, ids[test], residue_tokenizer.pad_id)[:, 0]
    r = np.corrcoef(predicted, target[test])[0, 1]
    assert r > 0.8, r  # held-out strands
    first = np.mean([h["loss"] for h in history[:5]])
    last = np.mean([h["loss"] for h in history[-5:]])
    assert last < 0.3 * first


def test_training_is_reproducible_with_a_seed(gc_task, residue_tokenizer):
    ids, target = gc_task
    runs = []
    for _ in range(2):
        model, head = small_model(), LinearHead(64)
        settings = FinetuneSettings(epochs=1, batch_size=32, seed=5)
        runs.append(
            [
                h["loss"]
                for h in train_sequence_task(model, head, ids[:64], target[:64], settings, residue_tokenizer.pad_id)
            ]
        )
    assert runs[0] == runs[1]


def test_prediction_is_the_same_alone_or_batched(gc_task, residue_tokenizer):
    ids, _ = gc_task
    model, head = small_model(), LinearHead(64)
    with torch.no_grad():
        head.proj.weight.normal_()
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    together = predict_sequence_task(model, head, ids[:20], residue_tokenizer.pad_id, max_tokens=300)
    alone = np.concatenate([predict_sequence_task(model, head, [s], residue_tokenizer.pad_id) for s in ids[:20]])
    np.testing.assert_allclose(together, alone, atol=1e-5)

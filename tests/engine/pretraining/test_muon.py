"""Muon for hidden matrices beside AdamW (obte_cli.engine.pretraining.muon), checked by hand computation."""

import copy

import pytest
import torch

from obte_cli.engine.model.encoder import ObteModel, preset_config
from obte_cli.engine.model.mup import muon_param_groups
from obte_cli.engine.pretraining.muon import MuonAdamW, orthogonalize


@pytest.mark.parametrize("shape", [(64, 32), (32, 64), (48, 48)])
def test_orthogonalize_brings_every_singular_value_near_one(shape):
    gradient = torch.randn(*shape, generator=torch.Generator().manual_seed(0)) * 1e-3
    singular = torch.linalg.svdvals(orthogonalize(gradient))
    assert singular.min() > 0.5 and singular.max() < 1.3, singular
    # scale-invariant: only the direction of the gradient matters
    torch.testing.assert_close(orthogonalize(gradient * 1e4), orthogonalize(gradient), atol=1e-5, rtol=1e-4)


def test_orthogonalize_treats_each_block_of_a_batch_alone():
    blocks = torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(1))
    together = orthogonalize(blocks)
    for i in range(3):
        torch.testing.assert_close(together[i], orthogonalize(blocks[i]))


def _model():
    torch.manual_seed(0)
    return ObteModel(preset_config("micro", 64, max_positions=64))


def _optimizer(model, muon_lr=0.05):
    muon, adamw = muon_param_groups(model, lr=0.01, muon_lr=muon_lr, weight_decay=0.01)
    return MuonAdamW(muon, adamw)


def test_hidden_matrices_go_to_muon_and_the_rest_to_adamw():
    model = _model()
    muon, adamw = muon_param_groups(model, lr=0.01, muon_lr=0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    on_muon = {names[id(p)] for g in muon for p in g["params"]}
    on_adamw = {names[id(p)] for g in adamw for p in g["params"]}
    assert on_muon and on_adamw and not on_muon & on_adamw
    assert on_muon | on_adamw == set(names.values())
    assert all(model.get_parameter(n).ndim == 2 for n in on_muon)
    assert not any(n.startswith(("embed.", "readout.")) for n in on_muon)
    qkv = [g for g in muon if g["blocks"] == 3]
    assert qkv and all(names[id(p)].endswith("attn.qkv.weight") for p in qkv[0]["params"])
    assert {g["lr"] for g in muon} == {0.05}  # no μP width factor on Muon's LR


def test_first_muon_step_is_the_orthogonalized_gradient_by_hand():
    """With a fresh momentum the Nesterov direction is the gradient (times a scalar that orthogonalization
    removes): p ← p·(1 − lr·wd) − lr·√max(1, rows/cols)·orth(g), each q/k/v block on its own."""
    model = _model()
    optimizer = _optimizer(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    optimizer.step()
    lr, wd = 0.05, 0.01
    for name in ("blocks.0.mlp.fc.weight", "blocks.0.mlp.proj.weight", "blocks.0.attn.qkv.weight"):
        param, grad = model.get_parameter(name), grads[name]
        blocks = 3 if "qkv" in name else 1
        rows, cols = grad.shape[0] // blocks, grad.shape[1]
        direction = torch.cat([orthogonalize(chunk) for chunk in grad.split(rows)])
        expected = before[name] * (1 - lr * wd) - lr * max(1.0, rows / cols) ** 0.5 * direction
        torch.testing.assert_close(param.detach(), expected, atol=1e-6, rtol=1e-5)
    # an AdamW parameter took AdamW's first step: lr · sign(g) (bias-corrected m/√v)
    embed = model.get_parameter("embed.weight")
    torch.testing.assert_close(
        embed.detach(), before["embed.weight"] - 0.01 * grads["embed.weight"].sign(), atol=1e-6, rtol=1e-4
    )


def test_state_dict_round_trip_continues_exactly():
    torch.manual_seed(3)
    model = _model()
    optimizer = _optimizer(model)
    data = [[torch.randn_like(p) for p in model.parameters()] for _ in range(4)]

    def step(m, opt, grads):
        for p, g in zip(m.parameters(), grads):
            p.grad = g.clone()
        opt.step()

    step(model, optimizer, data[0])
    step(model, optimizer, data[1])
    saved_model, saved_state = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    assert any("momentum_buffer" in s for s in saved_state["state"].values())
    assert any("exp_avg" in s for s in saved_state["state"].values())
    for grads in data[2:]:
        step(model, optimizer, grads)
    restored = _model()
    restored.load_state_dict(saved_model)
    again = _optimizer(restored)
    again.load_state_dict(saved_state)
    for grads in data[2:]:
        step(restored, again, grads)
    for a, b in zip(model.parameters(), restored.parameters()):
        assert torch.equal(a, b)


def test_the_lr_scheduler_drives_both_parts():
    model = _model()
    optimizer = _optimizer(model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)
    assert {g["optimizer"] for g in optimizer.param_groups} == {"muon", "adamw"}
    assert all(g["lr"] in (0.025, 0.005) for g in optimizer.param_groups), scheduler.get_last_lr()
    # the inner AdamW sees the same (scheduled) group dicts
    assert all(any(g is h for h in optimizer.param_groups) for g in optimizer._adamw.param_groups)

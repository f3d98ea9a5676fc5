import pytest
import torch

from obte_cli.engine.model.encoder import ObteConfig, ObteModel
from obte_cli.engine.model.mup import mup_param_groups, parameter_role


def test_roles_from_names():
    assert parameter_role("embed.weight", 2) == "embedding"
    assert parameter_role("module.readout.weight", 2) == "readout"
    assert parameter_role("_orig_mod.blocks.0.ln_1.weight", 1) == "vector"
    assert parameter_role("blocks.3.attn.qkv.weight", 2) == "hidden"
    assert parameter_role("head.proj.weight", 2) == "head"


def test_learning_rates_and_decay_follow_the_mup_rule():
    model = ObteModel(ObteConfig(vocab_size=64, width=256, n_layers=2, n_heads=8, base_width=32))
    groups = {g["role"]: g for g in mup_param_groups(model, lr=0.05, weight_decay=0.01)}
    assert groups["embedding"]["lr"] == 0.05 and groups["embedding"]["weight_decay"] == 0.0
    assert groups["readout"]["lr"] == 0.05
    assert groups["hidden"]["lr"] == pytest.approx(0.05 * 32 / 256)
    assert groups["hidden"]["lr"] * groups["hidden"]["weight_decay"] == pytest.approx(0.05 * 0.01)
    assert groups["vector"]["weight_decay"] == 0.0
    n_grouped = sum(p.numel() for g in groups.values() for p in g["params"])
    assert n_grouped == sum(p.numel() for p in model.parameters())


def _coordinate_sizes(width: int, mup: bool, steps: int = 5) -> dict[str, float]:
    """Train a 2-layer model a few steps on fixed masked data; return mean |coordinate| of the
    block-1 residual stream and of the logits. base_width = width turns μP off (the control)."""
    torch.manual_seed(0)
    config = ObteConfig(vocab_size=64, width=width, n_layers=2, n_heads=8, base_width=32 if mup else width)
    model = ObteModel(config)
    optimizer = torch.optim.AdamW(mup_param_groups(model, lr=0.01), betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(29, 49, (8, 64), generator=g)
    masked = torch.rand(ids.shape, generator=g) < 0.15
    targets = torch.where(masked, ids, torch.full_like(ids, -100))
    inputs = torch.where(masked, torch.ones_like(ids), ids)
    for _ in range(steps):
        loss, _ = model.mlm_loss(inputs, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        out = model(inputs, layers=(1,))
        return {"block1": out.layers[1].abs().mean().item(), "logits": model.logits(out.hidden).abs().mean().item()}


@pytest.mark.slow
def test_coordinate_check_activations_stay_order_one_as_width_grows():
    widths = (128, 256, 512, 1024)
    mup = [_coordinate_sizes(w, mup=True) for w in widths]
    for key in ("block1", "logits"):
        sizes = [m[key] for m in mup]
        assert max(sizes) / min(sizes) < 2.0, (key, sizes)
        assert 0.05 < min(sizes) and max(sizes) < 5.0, (key, sizes)
    # Control: the same training without μP scaling blows up with width, so the check can fail.
    standard = [_coordinate_sizes(w, mup=False) for w in (128, 1024)]
    assert standard[1]["block1"] / standard[0]["block1"] > 5.0

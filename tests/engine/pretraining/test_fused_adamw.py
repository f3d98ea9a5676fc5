"""The fused AdamW of pretraining: the same updates as the per-tensor AdamW, and used only where it can run."""

import torch

from obte_cli.engine.model.encoder import ObteModel, preset_config
from obte_cli.engine.model.mup import mup_param_groups
from obte_cli.engine.pretraining.loop import PretrainSettings, fused_adamw_supported, make_optimizer


def _model(seed: int) -> ObteModel:
    torch.manual_seed(seed)
    return ObteModel(preset_config("micro", 64, max_positions=64))


def test_fused_steps_equal_the_plain_ones():
    settings = PretrainSettings(context=64, batch_tokens=256, total_tokens=256 * 10)
    fused_model, plain_model = _model(0), _model(0)
    fused = make_optimizer(fused_model, settings)
    assert fused.defaults["fused"] is True  # on CPU with this torch
    plain = torch.optim.AdamW(
        mup_param_groups(plain_model, settings.lr, settings.weight_decay), betas=settings.betas, eps=settings.eps
    )
    ids = torch.randint(4, 64, (2, 32), generator=torch.Generator().manual_seed(1))
    for _ in range(5):
        for model, optimizer in ((fused_model, fused), (plain_model, plain)):
            optimizer.zero_grad()
            hidden = model(ids).hidden
            (model.logits(hidden).logsumexp(-1).mean() + hidden.pow(2).mean()).backward()
            optimizer.step()
    # not bit-equal (another order of float32 operations, which Adam's 1/√v amplifies while v is small): after
    # five steps the weights agree to 1e-4, where a wrong LR (1e-2 per step), weight decay (4e-4 per step on
    # the embeddings) or bias correction would be far off
    for (name, a), (_, b) in zip(fused_model.named_parameters(), plain_model.named_parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg=name)


def test_fused_only_for_plain_float_parameters():
    assert fused_adamw_supported(_model(0))
    assert not fused_adamw_supported(torch.nn.Module())  # nothing to optimise
    half = _model(0).to(torch.float64)
    assert fused_adamw_supported(half)
    integer = torch.nn.Embedding(4, 4)
    integer.weight = torch.nn.Parameter(torch.zeros(4, 4, dtype=torch.int64), requires_grad=False)
    assert not fused_adamw_supported(integer)

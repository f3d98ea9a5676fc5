"""μP parameter groups: which learning rate and weight decay each parameter gets.

The rule (Yang et al., "Tensor Programs V"; the OmniBioTE recipe with ``base_width = 32``), for a
model of width ``d`` and base LR ``lr``:

=============  ===========================  ======================================================
role           parameters                   AdamW settings
=============  ===========================  ======================================================
embedding      ``embed.weight``             lr, no weight decay (its LR must not shrink with width)
readout        ``readout.weight``           lr, weight decay (μP scales its *output* by base/d instead)
vector         LayerNorm weights, biases    lr, no weight decay
hidden         every other matrix           lr · base/d, weight decay · d/base
head           task heads (``head.*``)      set by the fine-tuning recipe
=============  ===========================  ======================================================

Hidden weight decay is scaled up by ``d/base`` so that the decoupled decay step ``lr·wd`` stays
independent of width (as the reference does). Roles come from parameter *names*, so the grouping works
on wrapped (DDP), sharded (FSDP2) and compiled models alike.

With Muon (``obte pretrain --optimizer muon``) the *hidden* matrices leave AdamW for Muon at ``muon_lr``
with no width factor (why: :mod:`obte_cli.engine.pretraining.muon`); the other roles keep the table's
AdamW settings (:func:`muon_param_groups`).
"""

from __future__ import annotations

from torch import nn

ROLES = ("embedding", "readout", "vector", "hidden", "head")


def parameter_role(name: str, ndim: int) -> str:
    """The μP role of a parameter from its name (wrapper prefixes such as ``module.`` ignored)."""
    for prefix in ("module.", "_orig_mod.", "_fsdp_wrapped_module."):
        name = name.replace(prefix, "")
    if name.startswith("head."):
        return "head"
    if name.startswith("embed."):
        return "embedding"
    if name.startswith("readout."):
        return "readout"
    if ndim < 2:
        return "vector"
    return "hidden"


def mup_param_groups(model: nn.Module, lr: float, weight_decay: float = 0.01) -> list[dict]:
    """AdamW parameter groups for pretraining (see the table above). Each group carries its ``role``."""
    config = model.config if hasattr(model, "config") else model.module.config
    width_ratio = config.base_width / config.width
    settings = {
        "embedding": (lr, 0.0),
        "readout": (lr, weight_decay),
        "vector": (lr, 0.0),
        "hidden": (lr * width_ratio, weight_decay / width_ratio),
    }
    grouped: dict[str, list] = {role: [] for role in settings}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        role = parameter_role(name, param.ndim)
        if role == "head":
            raise ValueError("mup_param_groups is for backbones; fine-tuning builds head groups itself")
        grouped[role].append(param)
    return [
        {"role": role, "params": params, "lr": settings[role][0], "weight_decay": settings[role][1]}
        for role, params in grouped.items()
        if params
    ]


def muon_param_groups(
    model: nn.Module, lr: float, muon_lr: float, weight_decay: float = 0.01
) -> tuple[list[dict], list[dict]]:
    """``(muon_groups, adamw_groups)``: the hidden matrices for Muon at ``muon_lr`` and the plain
    ``weight_decay`` (a fused query/key/value projection in its own group with ``blocks=3``), and the
    embedding, readout and vector groups of :func:`mup_param_groups` for AdamW."""
    adamw = [group for group in mup_param_groups(model, lr, weight_decay) if group["role"] != "hidden"]
    stacked, single = [], []
    for name, param in model.named_parameters():
        if param.requires_grad and parameter_role(name, param.ndim) == "hidden":
            (stacked if name.endswith("attn.qkv.weight") else single).append(param)
    muon = [
        {"role": "hidden", "params": params, "lr": muon_lr, "weight_decay": weight_decay, "blocks": blocks}
        for params, blocks in ((single, 1), (stacked, 3))
        if params
    ]
    return muon, adamw

"""Muon for the hidden matrices, AdamW for everything else: one optimizer (``--optimizer muon``).

Muon (Jordan et al. 2024, "Muon: an optimizer for hidden layers"; used by the modded-nanoGPT and ESM
"speedrun" runs) keeps a Nesterov momentum of each hidden matrix's gradient and steps along its nearest
semi-orthogonal matrix, found with five Newton–Schulz iterations. Embeddings, norms and the readout are
not hidden matrices and stay on AdamW with their μP settings (:mod:`obte_cli.engine.model.mup`).

How Muon and μP combine. μP scales a hidden matrix's AdamW learning rate by ``base/width`` so that its
update changes the layer's output by O(1) at any width. An orthogonalized update already has spectral
norm 1 whatever the width; scaled by ``sqrt(max(1, rows/cols))`` (Muon's own rule for tall matrices)
it meets the same spectral condition (Yang, Simon & Bernstein 2023), so the Muon group gets **no** width
factor: its learning rate (``muon_lr``) is used as is at every width, and its weight decay is the plain
``weight_decay`` (the decoupled decay step ``lr·wd`` is then width-independent too).

The fused attention projection ``attn.qkv`` holds three matrices (query, key, value) stacked by rows;
each is orthogonalized on its own, as if they were separate parameters.

Both parts share one ``state`` dict and one list of parameter groups, so ``state_dict`` /
``load_state_dict``, the LR scheduler and torch.distributed.checkpoint see a single ordinary optimizer:
a checkpoint holds the Muon momenta beside AdamW's moments and a resumed run continues bit for bit.
Muon needs whole matrices, so it runs with DDP but not with FSDP's sharded parameters.
"""

from __future__ import annotations

import torch

# Newton–Schulz coefficients of the quintic iteration (Muon's published values: they push singular
# values into ~[0.7, 1.2] in five steps, which trains as well as exact orthogonalization).
NEWTON_SCHULZ_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(gradient: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """The nearest semi-orthogonal matrix to each ``(..., rows, cols)`` matrix, by Newton–Schulz
    (bf16 on CUDA, where its matmuls are fast and accurate enough; fp32 elsewhere)."""
    a, b, c = NEWTON_SCHULZ_COEFFICIENTS
    x = gradient.to(torch.bfloat16 if gradient.is_cuda else torch.float32)
    tall = x.size(-2) > x.size(-1)
    if tall:  # iterate on the wide orientation: X Xᵀ is then the smaller product
        x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    if tall:
        x = x.mT
    return x.to(gradient.dtype)


class MuonAdamW(torch.optim.Optimizer):
    """One optimizer: Muon on ``muon_groups`` (hidden matrices), AdamW on ``adamw_groups``.

    Every group carries ``"optimizer": "muon" | "adamw"``. A Muon group may carry ``"blocks"``: how many
    row blocks each of its matrices holds (3 for a fused query/key/value projection).
    """

    def __init__(
        self,
        muon_groups: list[dict],
        adamw_groups: list[dict],
        *,
        momentum: float = 0.95,
        newton_schulz_steps: int = 5,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        fused: bool | None = None,
    ):
        self._adamw = torch.optim.AdamW(
            [dict(group, optimizer="adamw") for group in adamw_groups], betas=betas, eps=eps, fused=fused
        )
        muon = [
            {"blocks": 1, **group, "optimizer": "muon", "momentum": momentum, "ns_steps": newton_schulz_steps}
            for group in muon_groups
        ]
        super().__init__(muon + self._adamw.param_groups, defaults={})
        self._link()

    def _link(self) -> None:
        """Point the inner AdamW at this optimizer's AdamW groups and shared state (again after loading)."""
        self._adamw.param_groups = [group for group in self.param_groups if group["optimizer"] == "adamw"]
        self._adamw.state = self.state

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)  # replaces the group dicts and the state: re-link them
        self._link()

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group["optimizer"] != "muon":
                continue
            lr, decay, momentum, blocks = group["lr"], group["weight_decay"], group["momentum"], group["blocks"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(param)
                buffer = state["momentum_buffer"]
                buffer.lerp_(param.grad, 1 - momentum)
                nesterov = param.grad.lerp(buffer, momentum)
                rows, cols = param.shape[0] // blocks, param.shape[1]
                update = orthogonalize(nesterov.view(blocks, rows, cols), group["ns_steps"]).view_as(param)
                param.mul_(1 - lr * decay)
                param.add_(update, alpha=-lr * max(1.0, rows / cols) ** 0.5)
        self._adamw.step()
        return loss

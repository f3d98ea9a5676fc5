"""Task heads that sit on the encoder's final hidden states.

:class:`LinearHead` maps hidden vectors linearly to ``n_outputs`` values: one for ΔG regression, one
per class for classification. Sequence tasks give it one vector per input — the final embedding of its
first token, the modality tag, as the reference does (there is no CLS token); per-residue tasks give it
every token's vector. Its output is multiplied by
``base_width / width`` like the μP readout, so the head's learning rate does not need retuning when the
backbone gets wider, and it starts at zero so fine-tuning begins from the mean prediction.

Heads are saved inside the model directory: their weights under ``head.`` in ``model.safetensors`` and
their description (:meth:`LinearHead.describe`) as ``config.json``'s ``head``.
"""

from __future__ import annotations

import torch
from torch import nn


class LinearHead(nn.Module):
    def __init__(self, width: int, n_outputs: int = 1, base_width: int = 32):
        super().__init__()
        self.proj = nn.Linear(width, n_outputs)
        self.base_width = base_width
        self.scale = base_width / width
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., width) → (..., n_outputs)."""
        return self.proj(hidden) * self.scale

    def describe(self) -> dict:
        # "sequence" is the model-directory format's name for this head (kept for compatibility)
        return {"kind": "sequence", "n_outputs": self.proj.out_features, "base_width": self.base_width}

"""``--device auto|cpu|cuda`` → a torch device."""

from __future__ import annotations

import os
from contextlib import nullcontext

import torch

from obte_cli.engine.core.errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; asking for ``cuda`` without a GPU is a user error."""
    name = name.lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: no CUDA GPU is available (use --device cpu)")
        return torch.device(name)
    raise InputError(f"--device must be one of {', '.join(DEVICE_CHOICES)} (got {name!r})")


# ``OBTE_PRECISION=fp32`` keeps CUDA in fp32: for checking what bf16 autocast changes (scripts/gpu-plan.sh
# compares embed, score and affinity both ways), or for a user who wants exact fp32 on a GPU.
PRECISION_VARIABLE = "OBTE_PRECISION"


def autocast(device: torch.device):
    """The one mixed-precision rule: bf16 autocast on CUDA (unless ``OBTE_PRECISION=fp32``); fp32 on CPU,
    where bf16 matmul is hundreds of times slower than fp32."""
    precision = os.environ.get(PRECISION_VARIABLE, "auto").lower()
    if precision not in ("auto", "bf16", "fp32"):
        raise InputError(f"{PRECISION_VARIABLE} must be auto, bf16 or fp32 (got {precision!r})")
    if device.type == "cuda" and precision != "fp32":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()

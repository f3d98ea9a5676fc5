"""``--device auto|cpu|cuda`` → a torch device."""

from __future__ import annotations

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


def autocast(device: torch.device):
    """The one mixed-precision rule: bf16 autocast on CUDA; fp32 on CPU, where bf16 matmul is hundreds of
    times slower than fp32."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()

"""The one mixed-precision rule (engine/core/devices.autocast) and its OBTE_PRECISION switch."""

from contextlib import nullcontext

import pytest
import torch

from obte_cli.engine.core.devices import autocast
from obte_cli.engine.core.errors import InputError


def test_cpu_is_always_fp32(monkeypatch):
    for value in ("auto", "bf16", "fp32"):
        monkeypatch.setenv("OBTE_PRECISION", value)
        assert isinstance(autocast(torch.device("cpu")), nullcontext)


def test_cuda_is_bf16_autocast_unless_fp32_is_asked_for(monkeypatch):
    # autocast contexts are built without touching a GPU, so this runs on a CPU-only machine too
    monkeypatch.delenv("OBTE_PRECISION", raising=False)
    context = autocast(torch.device("cuda"))
    assert isinstance(context, torch.autocast) and context.fast_dtype == torch.bfloat16
    monkeypatch.setenv("OBTE_PRECISION", "FP32")
    assert isinstance(autocast(torch.device("cuda")), nullcontext)


def test_an_unknown_precision_is_one_line(monkeypatch):
    monkeypatch.setenv("OBTE_PRECISION", "fp8")
    with pytest.raises(InputError, match="OBTE_PRECISION must be auto, bf16 or fp32"):
        autocast(torch.device("cpu"))

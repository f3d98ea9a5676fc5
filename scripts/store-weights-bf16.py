#!/usr/bin/env python3
"""Store a model directory's weights in bfloat16 (half the bytes), and say how much that changes its outputs.

    scripts/store-weights-bf16.py MODEL_DIR [FASTA]

Why: a bundled fp32 backbone is 23 MB, and the wheel and the tree a GPU call carries (64 MiB at most) hold two
of them (issue #34 §2). obte loads any floating-point safetensors as float32 (`engine/model/directory.py`),
so bf16 storage changes only the rounding of each weight (8 bits of mantissa instead of 24); every
computation stays fp32 on CPU. Whether that rounding matters is measured, not assumed: with a FASTA, the
script prints the largest change of `obte embed` (mean-pooled) and `obte score` (bits per residue) between the
fp32 and the bf16 weights. The model cards quote the held-out figures re-measured with the stored weights.

The conversion is atomic (a temporary file renamed over model.safetensors) and idempotent; nothing else in
the directory changes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file


def to_bf16(weights: Path) -> tuple[int, int]:
    """Rewrite ``weights`` with every floating-point tensor in bfloat16; (bytes before, bytes after)."""
    with safe_open(str(weights), "pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(weights))
    converted = {name: t.to(torch.bfloat16) if t.dtype.is_floating_point else t for name, t in tensors.items()}
    before = weights.stat().st_size
    fd, tmp = tempfile.mkstemp(dir=weights.parent, prefix=".model.bf16-")
    os.close(fd)
    try:
        save_file(converted, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)
        os.replace(tmp, weights)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return before, weights.stat().st_size


def compare(fp32_dir: Path, bf16_dir: Path, fasta: Path) -> None:
    """Largest differences of `obte embed` and `obte score` between the two directories on ``fasta``."""
    with tempfile.TemporaryDirectory() as tmp:
        outputs = {}
        for name, model in (("fp32", fp32_dir), ("bf16", bf16_dir)):
            embed = Path(tmp, f"{name}.npy")
            score = Path(tmp, f"{name}.tsv")
            obte = [sys.executable, "-m", "obte_cli", "-q"]
            subprocess.run([*obte, "embed", str(fasta), "-m", str(model), "-o", str(embed)], check=True)
            subprocess.run([*obte, "score", str(fasta), "-m", str(model), "-o", str(score)], check=True)
            bits = np.genfromtxt(score, delimiter="\t", names=True, dtype=None, encoding="utf-8")["bits_per_residue"]
            outputs[name] = (np.load(embed), np.atleast_1d(bits).astype(float))
        (e32, b32), (e16, b16) = outputs["fp32"], outputs["bf16"]
        print(f"embed: max |Δ| {np.abs(e32 - e16).max():.2e} (values up to {np.abs(e32).max():.2f})")
        print(f"score: max |Δ bits per residue| {np.abs(b32 - b16).max():.2e} over {len(b32)} records")


def main() -> None:
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.split("\n\n")[1])
    model = Path(sys.argv[1])
    weights = model / "model.safetensors"
    if len(sys.argv) == 3:
        with tempfile.TemporaryDirectory() as tmp:
            reference = Path(tmp, "fp32")
            subprocess.run(["cp", "-r", str(model), str(reference)], check=True)
            before, after = to_bf16(weights)
            compare(reference, model, Path(sys.argv[2]))
    else:
        before, after = to_bf16(weights)
    print(f"{weights}: {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")


if __name__ == "__main__":
    main()

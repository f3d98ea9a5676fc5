#!/usr/bin/env python3
"""The measuring steps of scripts/gpu-plan.sh (issue #34 §3), one subcommand each; every one prints a JSON line.

    gpu_plan_checks.py env DEVICE                       device, torch, CUDA, peak bf16 TFLOP/s
    gpu_plan_checks.py sdpa DEVICE MODEL_DIR            which attention kernels obte's packed training attention runs on
    gpu_plan_checks.py shape BUDGET_MB LAYERS VOCAB     the widest shape of LAYERS whose bf16 weights fit BUDGET_MB
    gpu_plan_checks.py precision DEVICE MODEL DG_MODEL PROTEINS NUCLEIC PAIRS_TSV
                                                        bf16 autocast against fp32 for embed, score and affinity
    gpu_plan_checks.py mfu METRICS_JSONL                median tokens/s and MFU of a run's last half

`precision` runs each engine function twice on the same device, with ``OBTE_PRECISION`` unset (bf16 autocast
on CUDA) and set to ``fp32``, and prints the largest absolute differences. On a CPU both runs are fp32 and the
differences are 0: the dry run checks the plumbing, not the numbers.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

# Dense bf16 peak of the GPUs a loan may bring (NVIDIA datasheets, SXM parts, without sparsity).
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def env(device: str) -> None:
    record = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": device, "peak_bf16_tflops": 0.0}
    if device == "cuda":
        name = torch.cuda.get_device_name(0)
        record.update(
            name=name,
            memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
            cudnn=torch.backends.cudnn.version(),
            peak_bf16_tflops=next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), 0.0),
        )
    emit(record)


def sdpa(device: str, model_dir: str) -> None:
    """Forward and backward of a packed training batch (three sequences per row: the block-diagonal mask
    path) under bf16 autocast, once per SDPA backend alone: a backend that cannot run it raises, so the
    record says which fused kernels obte's training attention can use on this device."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from obte_cli.engine.core.devices import autocast
    from obte_cli.engine.model.directory import load_model

    model = load_model(model_dir).model.to(device).train()
    context = min(512, model.config.max_positions)
    ids = torch.randint(5, 25, (4, context), device=device)
    doc_ids = (torch.arange(context, device=device) * 3 // context).expand(4, -1).contiguous()
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION}
    backends.update(cudnn=SDPBackend.CUDNN_ATTENTION, math=SDPBackend.MATH)
    runs = {}
    for name, backend in backends.items():
        try:
            with sdpa_kernel([backend]), autocast(torch.device(device)):
                model(ids, doc_ids).hidden.float().sum().backward()
            runs[name] = "runs"
        except RuntimeError as error:  # "No available kernel": this backend cannot take the packed mask
            runs[name] = "cannot: " + str(error).splitlines()[0][:120]
        model.zero_grad(set_to_none=True)
    fused = [name for name in ("flash", "efficient", "cudnn") if runs[name] == "runs"]
    emit({"packed_attention_bf16": runs, "fused_kernel_available": bool(fused), "fused": fused})


def shape(budget_mb: float, layers: int, vocab: int) -> None:
    """Widest width (a multiple of 32: heads of 32 dims) whose bf16 weights, embeddings and readout included,
    fit ``budget_mb`` (1e6 bytes), at ``layers`` layers."""
    from obte_cli.engine.model.encoder import ObteModel, padded_vocab_size, preset_config

    best = None
    for width in range(64, 4097, 32):
        config = preset_config("tiny", padded_vocab_size(vocab), width=width, n_layers=layers, n_heads=width // 32)
        with torch.device("meta"):
            parameters = sum(p.numel() for p in ObteModel(config).parameters())
        if parameters * 2 / 1e6 > budget_mb:
            break
        best = {"width": width, "layers": layers, "heads": width // 32, "parameters": parameters}
    if best is None:
        sys.exit(f"no shape of {layers} layers fits {budget_mb} MB")
    emit({**best, "bf16_mb": round(best["parameters"] * 2 / 1e6, 2), "budget_mb": budget_mb})


@contextmanager
def precision(value: str | None):
    before = os.environ.pop("OBTE_PRECISION", None)
    if value is not None:
        os.environ["OBTE_PRECISION"] = value
    try:
        yield
    finally:
        os.environ.pop("OBTE_PRECISION", None)
        if before is not None:
            os.environ["OBTE_PRECISION"] = before


def precision_check(device: str, model_dir: str, dg_model: str, proteins: str, nucleic: str, pairs: str) -> None:
    from obte_cli.engine.affinity.data import load_affinity_data
    from obte_cli.engine.affinity.ensemble import load_affinity_model
    from obte_cli.engine.bio.seqio import read_fasta
    from obte_cli.engine.embedding.embed import EmbeddingSettings, embed_segments
    from obte_cli.engine.embedding.scoring import ScoreSettings, score_segments
    from obte_cli.engine.model.directory import load_model
    from obte_cli.engine.tokenizers.base import Segment

    target = torch.device(device)
    loaded = load_model(model_dir, target)
    segments = [Segment(r.sequence, "protein", r.id) for r in read_fasta(proteins)]
    segments += [Segment(r.sequence, "DNA", r.id) for r in read_fasta(nucleic)]
    ensemble = load_affinity_model(dg_model, target)
    table, _ = load_affinity_data(pairs)
    prepared = ensemble.prepare_table(table, truncate=True)
    outputs = {}
    for name, value in (("bf16", None), ("fp32", "fp32")):
        with precision(value):
            embedded = embed_segments(loaded.model, loaded.tokenizer, segments, EmbeddingSettings(), target)
            scored = score_segments(loaded.model, loaded.tokenizer, segments, ScoreSettings(), target)
            outputs[name] = (
                np.stack([item.vectors for item in embedded]),
                np.array([s.bits_per_residue for s in scored]),
                ensemble.predict(prepared, target)[0],
            )
    (e16, s16, a16), (e32, s32, a32) = outputs["bf16"], outputs["fp32"]
    emit(
        {
            "device": device,
            "records": len(segments),
            "complexes": len(prepared),
            "embed_max_abs_diff": float(np.abs(e16 - e32).max()),
            "embed_max_abs_value": float(np.abs(e32).max()),
            "score_bits_max_abs_diff": float(np.abs(s16 - s32).max()),
            "affinity_dG_max_abs_diff_kcal": float(np.abs(a16 - a32).max()),
        }
    )


def mfu(metrics: str) -> None:
    rows = [json.loads(line) for line in Path(metrics).read_text().splitlines() if line.strip()]
    tail = rows[len(rows) // 2 :]
    record = {"steps": len(rows), "tokens": rows[-1]["tokens"]}
    record["tokens_per_s"] = statistics.median(r["tokens_per_s"] for r in tail)
    if "mfu" in tail[-1]:
        record["mfu"] = statistics.median(r["mfu"] for r in tail)
    emit(record)


def main(argv: list[str]) -> None:
    commands = {"env": env, "sdpa": sdpa, "precision": precision_check, "mfu": mfu}
    if argv and argv[0] == "shape" and len(argv) == 4:
        return shape(float(argv[1]), int(argv[2]), int(argv[3]))
    if not argv or argv[0] not in commands:
        sys.exit(__doc__)
    commands[argv[0]](*argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])

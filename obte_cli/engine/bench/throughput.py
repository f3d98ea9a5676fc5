"""`obte bench throughput`: training tokens/s of our encoder against Hugging Face ``EsmForMaskedLM``.

Both models get the same shape — width, depth, heads, vocabulary, GELU MLP of 4·width, rotary
positions, SDPA attention, no dropout — the same batch (rows × context tokens of real-vocabulary ids,
15% masked), in one process, in fp32 on CPU (bf16 autocast on CUDA). obte's step is exactly what
``obte pretrain`` runs (:func:`obte_step`: its masked-LM objective, μP AdamW, gradient clipping and
schedule); HF's is forward, cross-entropy, backward and a plain AdamW step. Steps are *interleaved*
(obte, HF, obte, HF ... after warm-up steps of both; :func:`~obte_cli.engine.bench.timing.interleaved`), so
a burst of load on a shared machine hits both alike: each implementation's time is its median step, and
the speed-up is the median of the per-step ratios HF / obte with its interquartile range. The machine's
load average is written beside the figures.

MFU is model FLOPs per second (6N + 12·L·d·T per token, :func:`obte_cli.engine.model.encoder.flops_per_token`,
the same count for both) over a *measured* peak: the best rate of a large fp32 (or bf16 on CUDA) matrix
multiplication on this machine, so the ratio says how close training gets to what the hardware does.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch
import torch.nn.functional as F

from obte_cli.engine.bench.timing import best_of, interleaved, load_average, paired_ratio
from obte_cli.engine.core.devices import autocast
from obte_cli.engine.model.encoder import ObteConfig, ObteModel, flops_per_token
from obte_cli.engine.pretraining.loop import MaskedLMObjective, PretrainSettings, make_optimizer, make_scheduler

HF_NAME = "hf EsmForMaskedLM"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_flops(device: torch.device, size: int = 2048, repeats: int = 10) -> float:
    """Best observed FLOP/s of a ``size``³ matrix multiplication (fp32 on CPU, bf16 on CUDA)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.mm(a, b)

    def multiply() -> None:
        _sync(device)
        torch.mm(a, b)
        _sync(device)

    return 2 * size**3 / best_of(repeats, multiply)


def _batch(vocab: int, rows: int, context: int, mask_id: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, vocab, (rows, context), generator=generator)
    chosen = torch.rand(rows, context, generator=generator) < 0.15
    inputs = torch.where(chosen, torch.full_like(ids, mask_id), ids)
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    return inputs, labels


def obte_step(
    config: ObteConfig, inputs: torch.Tensor, labels: torch.Tensor, device: torch.device
) -> Callable[[], None]:
    """One step of what ``obte pretrain`` runs in one process: its masked-LM objective, its μP AdamW, its
    gradient clipping and its one-cycle schedule (one micro-batch per step)."""
    settings = PretrainSettings(
        context=inputs.shape[1], batch_tokens=inputs.numel(), total_tokens=inputs.numel() * 1000
    )
    model = ObteModel(config).to(device).train()
    protein_token = torch.zeros(config.vocab_size, dtype=torch.bool, device=device)
    objective = MaskedLMObjective(model, protein_token)
    optimizer = make_optimizer(model, settings)
    scheduler = make_scheduler(optimizer, settings)
    inputs, labels = inputs.to(device), labels.to(device)
    doc_ids = torch.zeros_like(inputs)  # one sequence per row, as the HF model sees it
    masked = int((labels != -100).sum())

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device):
            loss_sum, _ = objective(inputs, labels, doc_ids)
        (loss_sum / masked).backward()
        torch.nn.utils.clip_grad_norm_(objective.parameters(), settings.grad_clip)
        optimizer.step()
        scheduler.step()

    return step


def hf_esm_step(
    config: ObteConfig, inputs: torch.Tensor, labels: torch.Tensor, device: torch.device
) -> Callable[[], None]:
    from transformers import EsmConfig, EsmForMaskedLM

    hf_config = EsmConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.width,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        intermediate_size=config.mlp_ratio * config.width,
        max_position_embeddings=inputs.shape[1] + 2,
        position_embedding_type="rotary",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        token_dropout=False,
        pad_token_id=0,
        mask_token_id=1,
        attn_implementation="sdpa",
    )
    model = EsmForMaskedLM(hf_config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    inputs, labels = inputs.to(device), labels.to(device)
    mask = torch.ones_like(inputs)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device):
            logits = model(input_ids=inputs, attention_mask=mask).logits
            loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.view(-1))
        loss.backward()
        optimizer.step()

    return step


def bench_throughput(
    configs: list[tuple[str, ObteConfig]],
    rows: int,
    context: int,
    device: torch.device,
    steps: int = 10,
    warmup: int = 3,
    include_hf: bool = True,
    seed: int = 0,
) -> list[dict]:
    """One row per (shape, implementation): tokens/s and ms per step (median step), MFU, obte's paired
    speed-up over HF (median and quartiles of the per-step ratios) and the load average."""
    peak = matmul_peak_flops(device)
    results = []
    for label, config in configs:
        inputs, labels = _batch(config.vocab_size, rows, context, mask_id=1, seed=seed)
        flops = flops_per_token(config, context)
        implementations = [("obte", obte_step)] + ([(HF_NAME, hf_esm_step)] if include_hf else [])
        built = {}
        for name, build in implementations:
            torch.manual_seed(seed)
            built[name] = build(config, inputs, labels, device)
        load_before = load_average()
        seconds = interleaved(built, steps, warmup, sync=lambda: _sync(device))
        load = max(load_before, load_average())
        speedup = paired_ratio(seconds[HF_NAME], seconds["obte"]) if include_hf else (float("nan"),) * 3
        for name, _ in implementations:
            step_seconds = statistics.median(seconds[name])
            tokens_per_s = rows * context / step_seconds
            results.append(
                {
                    "shape": label,
                    "implementation": name,
                    "width": config.width,
                    "layers": config.n_layers,
                    "heads": config.n_heads,
                    "vocab": config.vocab_size,
                    "rows": rows,
                    "context": context,
                    "ms_per_step": step_seconds * 1e3,
                    "tokens_per_s": tokens_per_s,
                    "mfu": tokens_per_s * flops / peak,
                    "peak_gflops": peak / 1e9,
                    # obte's paired speed-up (HF's row: 1 by definition)
                    "speedup_vs_hf": speedup[0] if name == "obte" else (1.0 if include_hf else float("nan")),
                    "speedup_q1": speedup[1] if name == "obte" else float("nan"),
                    "speedup_q3": speedup[2] if name == "obte" else float("nan"),
                    "load_avg": load,
                }
            )
    return results

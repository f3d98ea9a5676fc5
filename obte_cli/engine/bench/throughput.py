"""`obte bench throughput`: training tokens/s of our encoder against Hugging Face ``EsmForMaskedLM``.

Both models get the same shape — width, depth, heads, vocabulary, GELU MLP of 4·width, rotary
positions, SDPA attention, no dropout — and the same tokens (real-vocabulary ids, 15% masked), in one
process, in fp32 on CPU (bf16 autocast on CUDA). Two layouts (:class:`Workload`):

* ``full``: rows × context tokens, one sequence filling each row, for both;
* ``packed``: real sequence lengths (by default a seeded sample of the Debian pretraining corpus,
  ``share/bench/pretraining-lengths.tsv``) drawn until they fill rows × context tokens. obte packs them
  into those rows as ``obte pretrain`` does (split only at row ends, block-diagonal attention); Hugging
  Face gets each sequence (cut into pieces of at most ``context``) in its own row, padded to the longest,
  with an attention mask, as its users train. Both see the same real tokens, and tokens/s counts those.
 obte's step is exactly what
``obte pretrain`` runs (:func:`obte_step`: its masked-LM objective, μP AdamW, gradient clipping and
schedule); HF's is forward, cross-entropy, backward and a plain AdamW step. Steps are *interleaved*
(obte, HF, obte, HF ... after warm-up steps of both; :func:`~obte_cli.engine.bench.timing.interleaved`), so
a burst of load on a shared machine hits both alike: each implementation's time is its median step, and
the speed-up is the median of the per-step ratios HF / obte with its interquartile range. The machine's
load average is written beside the figures.

MFU is model FLOPs per second (6N + 12·L·d·T per token, :func:`obte_cli.engine.model.encoder.flops_per_token`,
the same count for both, T the full context even for packed rows, whose sequences are shorter: there it
overstates the useful attention work of both alike) over a *measured* peak: the best rate of a large fp32
(or bf16 on CUDA) matrix multiplication on this machine, so the ratio says how close training gets to what
the hardware does.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from obte_cli.engine.bench.hf import require_transformers
from obte_cli.engine.bench.timing import best_of, interleaved, load_average, paired_ratio
from obte_cli.engine.core.devices import autocast
from obte_cli.engine.model.encoder import ObteConfig, ObteModel, flops_per_token
from obte_cli.engine.pretraining.loop import MaskedLMObjective, PretrainSettings, make_optimizer, make_scheduler
from obte_cli.engine.pretraining.token_files import pack_stream

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


LAYOUTS = ("full", "packed")
_MASK_ID, _PAD_ID, _FIRST_REAL_ID = 1, 0, 4


@dataclass
class Workload:
    """One step's tokens, laid out for each implementation. obte: ``ids``/``labels``/``doc_ids`` (rows ×
    context, doc ids numbering the sequences of a row); Hugging Face: ``hf_ids``/``hf_labels``/``hf_mask``
    (one sequence per row, padded). ``real_tokens`` is the same for both."""

    ids: torch.Tensor
    labels: torch.Tensor
    doc_ids: torch.Tensor
    hf_ids: torch.Tensor
    hf_labels: torch.Tensor
    hf_mask: torch.Tensor
    real_tokens: int

    @property
    def sequences(self) -> int:
        return int(self.hf_ids.shape[0])


def _masked(ids: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    chosen = torch.rand(ids.shape, generator=generator) < 0.15
    inputs = torch.where(chosen, torch.full_like(ids, _MASK_ID), ids)
    return inputs, torch.where(chosen, ids, torch.full_like(ids, -100))


def full_rows(vocab: int, rows: int, context: int, seed: int) -> Workload:
    """rows × context tokens, one sequence per row, the same tensors for both implementations."""
    generator = torch.Generator().manual_seed(seed)
    inputs, labels = _masked(torch.randint(_FIRST_REAL_ID, vocab, (rows, context), generator=generator), generator)
    mask = torch.ones_like(inputs)
    return Workload(inputs, labels, torch.zeros_like(inputs), inputs, labels, mask, rows * context)


def packed_rows(vocab: int, lengths: Sequence[int], rows: int, context: int, seed: int) -> Workload:
    """Sequences of the given ``lengths`` (a seeded draw, the last one cut) filling rows × context tokens:
    packed for obte, one (≤ context) piece per row and padded for Hugging Face."""
    rng = np.random.default_rng(seed)
    budget, drawn, total = rows * context, [], 0
    while total < budget:
        drawn.append(int(lengths[rng.integers(len(lengths))]))
        total += drawn[-1]
    drawn[-1] -= total - budget
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(_FIRST_REAL_ID, vocab, (budget,), generator=generator)
    masked_tokens, token_labels = _masked(tokens, generator)
    ids, labels = masked_tokens.view(rows, context), token_labels.view(rows, context)
    # pretraining's packing rule fills the rows in order, so obte's rows are the tokens as drawn; only the
    # doc ids (where each row's sequences start) come from the packer
    packed = pack_stream((np.zeros(n, dtype=np.int64) for n in drawn), context, pad_id=_PAD_ID)
    doc_ids = torch.as_tensor(np.stack([row.doc_ids for row in packed]))
    # the same tokens, each sequence cut into pieces of at most `context`, one piece per row
    pieces, offset = [], 0
    for length in drawn:
        pieces += [(offset + start, min(length - start, context)) for start in range(0, length, context)]
        offset += length
    longest = max(n for _, n in pieces)
    hf_ids = torch.full((len(pieces), longest), _PAD_ID, dtype=torch.long)
    hf_labels = torch.full((len(pieces), longest), -100, dtype=torch.long)
    hf_mask = torch.zeros((len(pieces), longest), dtype=torch.long)
    for row, (start, n) in enumerate(pieces):
        hf_ids[row, :n] = masked_tokens[start : start + n]
        hf_labels[row, :n] = token_labels[start : start + n]
        hf_mask[row, :n] = 1
    return Workload(ids, labels, doc_ids, hf_ids, hf_labels, hf_mask, budget)


def read_lengths(path: str | Path) -> list[int]:
    """Token lengths for the ``packed`` layout: the ``tokens`` column of a TSV (as
    ``share/bench/pretraining-lengths.tsv``), or a FASTA file's records as the residue tokenizer counts them
    (residues + a molecule-type tag + ``<EOS>``). Every length must be a whole number ≥ 1."""
    from obte_cli.engine.bio.seqio import read_fasta
    from obte_cli.engine.core.errors import InputError

    if str(path).endswith(".tsv"):
        from obte_cli.engine.core.tables import read_table

        table = read_table(path, dtype=str, keep_default_na=False)
        if "tokens" not in table.columns:
            raise InputError(f"{path}: no 'tokens' column")
        bad = [v for v in table["tokens"] if not v.strip().isdigit()]
        if bad:
            raise InputError(f"{path}: 'tokens' must hold whole numbers (found {bad[0]!r})")
        lengths = [int(n) for n in table["tokens"]]
    else:
        lengths = [len(record.sequence) + 2 for record in read_fasta(path)]
    if not lengths or min(lengths) < 1:
        raise InputError(f"{path}: no sequence lengths (an empty file, or a length below 1)")
    return lengths


def obte_step(config: ObteConfig, works: list[Workload], device: torch.device) -> Callable[[], None]:
    """One step of what ``obte pretrain`` runs in one process: its masked-LM objective, its μP AdamW, its
    gradient clipping and its one-cycle schedule (one micro-batch per step), on each of ``works`` in turn."""
    settings = PretrainSettings(
        context=works[0].ids.shape[1], batch_tokens=works[0].ids.numel(), total_tokens=works[0].ids.numel() * 1000
    )
    model = ObteModel(config).to(device).train()
    protein_token = torch.zeros(config.vocab_size, dtype=torch.bool, device=device)
    objective = MaskedLMObjective(model, protein_token)
    optimizer = make_optimizer(model, settings)
    scheduler = make_scheduler(optimizer, settings)
    batches = itertools.cycle(
        [(w.ids.to(device), w.labels.to(device), w.doc_ids.to(device), int((w.labels != -100).sum())) for w in works]
    )

    def step() -> None:
        inputs, labels, doc_ids, masked = next(batches)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device):
            loss_sum, _ = objective(inputs, labels, doc_ids)
        (loss_sum / masked).backward()
        torch.nn.utils.clip_grad_norm_(objective.parameters(), settings.grad_clip)
        optimizer.step()
        scheduler.step()

    return step


def hf_esm_step(config: ObteConfig, works: list[Workload], device: torch.device) -> Callable[[], None]:
    """Forward, cross-entropy, backward and a plain AdamW step of ``EsmForMaskedLM``, on each of ``works``
    in turn."""
    require_transformers()
    from transformers import EsmConfig, EsmForMaskedLM

    hf_config = EsmConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.width,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        intermediate_size=config.mlp_ratio * config.width,
        max_position_embeddings=works[0].ids.shape[1] + 2,
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
    batches = itertools.cycle([(w.hf_ids.to(device), w.hf_labels.to(device), w.hf_mask.to(device)) for w in works])

    def step() -> None:
        inputs, labels, mask = next(batches)
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
    layouts: Sequence[str] = ("full",),
    lengths: Sequence[int] | None = None,
) -> list[dict]:
    """One row per (shape, layout, implementation): real tokens/s and ms per step (median step), MFU, obte's
    paired speed-up over HF (median and quartiles of the per-step ratios) and the load average. The
    ``packed`` layout needs ``lengths`` (:func:`read_lengths`)."""
    if "packed" in layouts and not lengths:
        raise ValueError("the packed layout needs sequence lengths")
    peak = matmul_peak_flops(device)
    results = []
    for label, config in configs:
        for layout in layouts:
            if layout == "full":
                works = [full_rows(config.vocab_size, rows, context, seed)]
            else:  # a new draw of lengths every step, the two implementations in step
                works = [packed_rows(config.vocab_size, lengths, rows, context, seed + i) for i in range(steps)]
            results += _compare(label, layout, config, works, device, peak, steps, warmup, include_hf, seed)
    return results


def _compare(label, layout, config, works, device, peak, steps, warmup, include_hf, seed) -> list[dict]:
    """Both implementations on ``works`` (one per timed step, cycled), interleaved: their rows."""
    context = works[0].ids.shape[1]
    flops = flops_per_token(config, context)
    implementations = [("obte", obte_step)] + ([(HF_NAME, hf_esm_step)] if include_hf else [])
    built = {}
    for name, build in implementations:
        torch.manual_seed(seed)
        built[name] = build(config, works, device)
    load_before = load_average()
    seconds = interleaved(built, steps, warmup, sync=lambda: _sync(device))
    load = max(load_before, load_average())
    speedup = paired_ratio(seconds[HF_NAME], seconds["obte"]) if include_hf else (float("nan"),) * 3
    real_tokens = works[0].real_tokens  # the same every step
    results = []
    for name, _ in implementations:
        step_seconds = statistics.median(seconds[name])
        tokens_per_s = real_tokens / step_seconds
        computed = [w.ids if name == "obte" else w.hf_ids for w in works]
        results.append(
            {
                "shape": label,
                "layout": layout,
                "implementation": name,
                "width": config.width,
                "layers": config.n_layers,
                "heads": config.n_heads,
                "vocab": config.vocab_size,
                "rows": statistics.mean(int(c.shape[0]) for c in computed),  # per step
                "context": max(int(c.shape[1]) for c in computed),
                "sequences": statistics.mean(w.sequences for w in works),
                "real_tokens": real_tokens,
                "computed_tokens": statistics.mean(int(c.numel()) for c in computed),  # with padding
                "ms_per_step": step_seconds * 1e3,
                "tokens_per_s": tokens_per_s,  # real tokens
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

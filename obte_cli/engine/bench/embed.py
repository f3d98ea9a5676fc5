"""`obte bench embed`: embedding throughput of obte against Hugging Face ``EsmModel`` run the usual way.

Same FASTA, same model shape (width, depth, heads, vocabulary, GELU ×4, rotary, SDPA, no dropout), same
CPU threads, same run; mean-pooled embeddings of every record. Hugging Face is run as its users do:
batches of ``batch_size`` records in file order, padded to the longest in the batch, with an attention
mask, under ``torch.inference_mode``. obte runs :func:`obte_cli.engine.embedding.embed.embed_segments`
(length-sorted, packed by token budget, block-diagonal attention). The two take turns, ``repeats``
rounds after one warm-up round (:func:`~obte_cli.engine.bench.timing.interleaved`): throughput is
residues per second of the median round, and the speed-up the median of the per-round ratios with its
interquartile range, so load on a shared machine hits both alike. The load average is reported too.
"""

from __future__ import annotations

import statistics

import torch

from obte_cli.engine.bench.hf import require_transformers
from obte_cli.engine.bench.timing import interleaved, load_average, paired_ratio
from obte_cli.engine.embedding.embed import EmbeddingSettings, embed_segments
from obte_cli.engine.model.encoder import ObteConfig, ObteModel
from obte_cli.engine.tokenizers.base import Segment, Tokenizer

OBTE_NAME, HF_NAME = "obte (packed)", "hf EsmModel (padded)"


def bench_embed(
    config: ObteConfig,
    tokenizer: Tokenizer,
    segments: list[Segment],
    batch_size: int = 8,
    max_tokens: int = 16384,
    repeats: int = 2,
    include_hf: bool = True,
) -> list[dict]:
    residues = sum(len(s.sequence) for s in segments)
    model = ObteModel(config).eval()
    settings = EmbeddingSettings(pool="mean", max_tokens=max_tokens)
    works = {OBTE_NAME: lambda: list(embed_segments(model, tokenizer, segments, settings))}
    if include_hf:
        require_transformers()  # one line naming the extra to install, not a traceback
        from transformers import EsmConfig, EsmModel

        hf = EsmModel(
            EsmConfig(
                vocab_size=config.vocab_size,
                hidden_size=config.width,
                num_hidden_layers=config.n_layers,
                num_attention_heads=config.n_heads,
                intermediate_size=config.mlp_ratio * config.width,
                max_position_embeddings=config.max_positions + 2,
                position_embedding_type="rotary",
                hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0,
                token_dropout=False,
                pad_token_id=tokenizer.pad_id,
                mask_token_id=tokenizer.mask_id,
                attn_implementation="sdpa",
            ),
            add_pooling_layer=False,
        ).eval()
        encodings = [tokenizer.encode_one([s]).ids for s in segments]

        @torch.inference_mode()
        def run_hf() -> None:
            for start in range(0, len(encodings), batch_size):
                batch = encodings[start : start + batch_size]
                longest = max(len(e) for e in batch)
                ids = torch.full((len(batch), longest), tokenizer.pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), longest), dtype=torch.long)
                for i, e in enumerate(batch):
                    ids[i, : len(e)] = torch.as_tensor(e)
                    mask[i, : len(e)] = 1
                hidden = hf(input_ids=ids, attention_mask=mask).last_hidden_state
                (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)

        works[HF_NAME] = run_hf
    load_before = load_average()
    seconds = interleaved(works, repeats, warmup=1)
    load = max(load_before, load_average())
    speedup = paired_ratio(seconds[HF_NAME], seconds[OBTE_NAME]) if include_hf else (float("nan"),) * 3
    rows = []
    for name, times in seconds.items():
        median = statistics.median(times)
        rows.append(
            {
                "implementation": name,
                "sequences": len(segments),
                "residues": residues,
                "seconds": median,
                "residues_per_s": residues / median,
                "speedup_vs_hf": speedup[0] if name == OBTE_NAME else (1.0 if include_hf else float("nan")),
                "speedup_q1": speedup[1] if name == OBTE_NAME else float("nan"),
                "speedup_q3": speedup[2] if name == OBTE_NAME else float("nan"),
                "load_avg": load,
            }
        )
    return rows

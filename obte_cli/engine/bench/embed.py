"""`obte bench embed`: embedding throughput of obte against Hugging Face ``EsmModel`` run the usual way.

Same FASTA, same model shape (width, depth, heads, vocabulary, GELU ×4, rotary, SDPA, no dropout), same
CPU threads, same run; mean-pooled embeddings of every record. Hugging Face is run as its users do:
batches of ``batch_size`` records in file order, padded to the longest in the batch, with an attention
mask, under ``torch.inference_mode``. obte runs :func:`obte_cli.engine.embedding.embed.embed_segments`
(length-sorted, packed by token budget, block-diagonal attention). Throughput is residues per second
of wall time, best of ``repeats``.
"""

from __future__ import annotations

import torch

from obte_cli.engine.bench.timing import best_of
from obte_cli.engine.embedding.embed import EmbeddingSettings, embed_segments
from obte_cli.engine.model.encoder import ObteConfig, ObteModel
from obte_cli.engine.tokenizers.base import Segment, Tokenizer


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
    rows = []
    obte_s = best_of(repeats, lambda: list(embed_segments(model, tokenizer, segments, settings)))
    rows.append(
        {"implementation": "obte (packed)", "sequences": len(segments), "residues": residues, "seconds": obte_s}
    )
    if include_hf:
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

        rows.append(
            {
                "implementation": "hf EsmModel (padded)",
                "sequences": len(segments),
                "residues": residues,
                "seconds": best_of(repeats, run_hf),
            }
        )
    for r in rows:
        r["residues_per_s"] = r["residues"] / r["seconds"]
    for r in rows:
        r["speedup_vs_hf"] = r["residues_per_s"] / rows[-1]["residues_per_s"] if include_hf else float("nan")
    return rows

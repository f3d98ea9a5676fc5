#!/usr/bin/env python3
"""The pilot table of issue #15: one row per pilot run directory, with the held-out bits per residue (and
perplexity per residue, 2^bits) of each modality at the last scored checkpoint, beside the unigram baseline.

    scripts/pilot-table.py CORPUS RUN_DIR... > pilots.tsv

The unigram baseline is the cross-entropy of the held-out residues under the training split's residue
frequencies (per-residue tokenization of the same corpus), so it is comparable with every tokenizer's
bits per residue. Compute is training FLOPs: tokens × (6N + 12·L·d·T + 6·d·V for the readout).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from obte_cli.engine.model.encoder import ObteConfig, flops_per_token
from obte_cli.engine.pretraining.token_files import open_corpus


def residue_frequencies(tokens_dir: Path) -> dict[str, np.ndarray]:
    corpus = open_corpus(tokens_dir)
    tok = corpus.tokenizer
    counts = np.zeros(tok.vocab_size, dtype=np.int64)
    for shard in corpus.shards:
        counts += np.bincount(shard.ids, minlength=tok.vocab_size)[: tok.vocab_size]
    return {modality: counts[tok.residue_ids(modality)].astype(np.float64) for modality in ("protein", "nucleic")}


def unigram_bits(corpus_dir: Path) -> dict[str, float]:
    train = residue_frequencies(corpus_dir / "tokens" / "residue" / "train")
    heldout = residue_frequencies(corpus_dir / "tokens" / "residue" / "heldout")
    bits = {}
    for modality in train:
        p = train[modality] / train[modality].sum()
        q = heldout[modality] / heldout[modality].sum()
        keep = q > 0
        bits[modality] = float(-(q[keep] * np.log2(p[keep])).sum())
    return bits


def row(run: Path) -> dict:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    scored = [r for r in records if "heldout_loss" in r]
    last = scored[-1]
    config = ObteConfig.from_dict(json.loads((run / "model" / "config.json").read_text())["architecture"])
    context = config.max_positions  # `obte pretrain` sizes the model's positions to its --context
    per_token = flops_per_token(config, context) + 6 * config.width * config.vocab_size
    out = {
        "run": run.name,
        "width": config.width,
        "layers": config.n_layers,
        "vocab": config.vocab_size,
        "context": context,
        "step": last["step"],
        "tokens": last["tokens"],
        "pflops": last["tokens"] * per_token / 1e15,
    }
    for modality in ("protein", "nucleic"):
        bits = last.get(f"heldout_{modality}_bits_per_residue")
        out[f"{modality}_bits"] = bits
        out[f"{modality}_ppl"] = 2**bits if bits is not None else None
        out[f"{modality}_accuracy"] = last.get(f"heldout_{modality}_accuracy")
    return out


def main(argv: list[str]) -> None:
    corpus, runs = Path(argv[0]), [Path(a) for a in argv[1:]]
    baseline = unigram_bits(corpus)
    rows = [row(run) for run in runs]
    columns = list(rows[0])
    print("\t".join(columns))
    print(
        "\t".join(
            ["unigram"]
            + ["NA"] * 7
            + [
                f"{baseline['protein']:.3f}",
                f"{2 ** baseline['protein']:.2f}",
                "NA",
                f"{baseline['nucleic']:.3f}",
                f"{2 ** baseline['nucleic']:.2f}",
                "NA",
            ]
        )
    )
    for r in rows:
        print("\t".join("NA" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v) for v in r.values()))


if __name__ == "__main__":
    main(sys.argv[1:])

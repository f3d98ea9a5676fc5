#!/usr/bin/env python
"""What embedding a record in windows costs: the same proteins embedded whole and from overlapping windows.

For N real proteins of 300–500 residues (they fit the default backbone's 512-token context whole), compare the
embedding `obte embed` makes of the whole sequence with the one it makes when the record must be windowed
(windows of WINDOW residues, every STRIDE): the model's context is lowered to WINDOW + 2 tokens so that
`obte embed`'s own windowing code runs. Reported: the cosine of the mean-pooled vectors, and per residue the
cosine of its final-layer vector in the two embeddings.

    python scripts/windowing-cost.py ../shared/data/sequences/uniprot_query500.fasta \\
        ../shared/data/omnibiote-ref/pronab_dev.json --n 200 --window 256 --stride 128 64
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from obte_cli.engine.bio.seqio import read_fasta
from obte_cli.engine.core.resources import default_backbone_dir
from obte_cli.engine.embedding.embed import EmbeddingSettings, embed_segments
from obte_cli.engine.model.directory import load_model
from obte_cli.engine.model.encoder import set_context
from obte_cli.engine.tokenizers.base import Segment

STANDARD = set("ACDEFGHIKLMNPQRSTVWY")


def proteins(fasta: str, pronab: str, n: int, low: int, high: int) -> list[tuple[str, str]]:
    """The first ``n`` distinct proteins of ``low``–``high`` standard residues: the FASTA's, then ProNAB's."""
    found: dict[str, str] = {}
    candidates = [(r.id, r.sequence.upper()) for r in read_fasta(fasta)]
    with open(pronab) as handle:
        candidates += [(key, entry["Sequence"].upper()) for key, entry in json.load(handle).items()]
    for name, sequence in candidates:
        if low <= len(sequence) <= high and set(sequence) <= STANDARD and sequence not in found.values():
            found[name] = sequence
        if len(found) == n:
            break
    return list(found.items())


def per_token(loaded, records, context: int, window: int = 0, stride: int = 0) -> list[np.ndarray]:
    set_context(loaded.model, context)
    settings = EmbeddingSettings(pool="per-token", window=window, stride=stride)
    segments = [Segment(sequence, "protein", name) for name, sequence in records]
    return [e.vectors[:, 0, :] for e in embed_segments(loaded.model, loaded.tokenizer, segments, settings)]


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fasta")
    parser.add_argument("pronab")
    parser.add_argument("--model", default=None)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--stride", type=int, nargs="+", default=[128])
    args = parser.parse_args()
    loaded = load_model(args.model or default_backbone_dir())
    context = loaded.model.config.max_positions
    records = proteins(args.fasta, args.pronab, args.n, 300, min(500, context - 2))
    whole = per_token(loaded, records, context)
    print(f"# {len(records)} proteins of {min(len(s) for _, s in records)}–{max(len(s) for _, s in records)} residues")
    # the scale: how alike the pooled vectors of two *different* proteins are (each with the next one)
    means = [a.mean(0) for a in whole]
    others = np.array([cosine(a, b) for a, b in zip(means, means[1:] + means[:1])])
    print(f"# pooled cosine between different proteins (whole): mean {others.mean():.4f}, max {others.max():.4f}")
    print(
        "window\tstride\tpooled_cos_mean\tpooled_cos_min\tnearest_is_itself\tresidue_cos_mean\tresidue_cos_p05\t"
        "residues_cos_gt_0.9"
    )
    for stride in args.stride:
        windowed = per_token(loaded, records, args.window + 2, args.window, stride)
        pooled = np.array([cosine(a.mean(0), b.mean(0)) for a, b in zip(whole, windowed)])
        residues = np.concatenate([cosine(a, b) for a, b in zip(whole, windowed)])
        # does each windowed vector find its own protein first among all the whole ones (centred: the mean
        # vector every protein shares would otherwise dominate the cosine)?
        centre = np.mean(means, axis=0)
        a = np.stack(means) - centre
        b = np.stack([w.mean(0) for w in windowed]) - centre
        similarity = (b / np.linalg.norm(b, axis=1, keepdims=True)) @ (a / np.linalg.norm(a, axis=1, keepdims=True)).T
        itself = (similarity.argmax(1) == np.arange(len(means))).mean()
        print(
            f"{args.window}\t{stride}\t{pooled.mean():.4f}\t{pooled.min():.4f}\t{itself:.3f}\t{residues.mean():.4f}\t"
            f"{np.percentile(residues, 5):.4f}\t{(residues > 0.9).mean():.4f}"
        )


if __name__ == "__main__":
    main()

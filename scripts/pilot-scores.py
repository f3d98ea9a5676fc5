#!/usr/bin/env python3
"""Held-out scores of pilot runs as `obte score` measures them (issue #34): every record of the corpus'
held-out split, every residue masked once, residue-weighted bits per residue per modality.

    scripts/pilot-scores.py CORPUS RUN_DIR... > pilot-scores.tsv

Each RUN_DIR is a finished `obte pretrain` run (its model/ directory is scored). The runs' own held-out
figures (metrics.jsonl, `scripts/pilot-table.py`) score 128 rows with random 15% masks; these score the whole
split the way the backbone card does (`scripts/backbone-card.py`'s held-out table, which this reuses).
Columns: run, optimizer, mask_rate, seed, tokens, then protein and nucleic bits per residue and perplexity.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def backbone_card():
    spec = importlib.util.spec_from_file_location("backbone_card", HERE / "backbone-card.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit(__doc__)
    corpus, runs = Path(argv[0]), [Path(a) for a in argv[1:]]
    card = backbone_card()
    columns = ["run", "optimizer", "mask_rate", "seed", "tokens"]
    columns += ["protein_bits", "protein_ppl", "nucleic_bits", "nucleic_ppl"]
    print("\t".join(columns), flush=True)
    for run in runs:
        trainer = sorted((run / "checkpoints").glob("step-*/trainer.json"))[-1]
        state = json.loads(trainer.read_text())
        settings = state["settings"]
        table, _ = card.heldout_table(corpus, run / "model")
        rows = {row["molecule_type"]: row for row in table}
        values = [run.name, settings.get("optimizer", "adamw"), settings.get("mask_rate", 0.15), settings["seed"]]
        values.append(state["tokens"])
        for modality in ("protein", "nucleic"):
            row = rows[f"all {modality}"]
            values += [row["bits_per_residue"], row["perplexity"]]
        print("\t".join(str(v) for v in values), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

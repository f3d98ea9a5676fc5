#!/usr/bin/env python3
"""The measured figures of a pretrained backbone's model card (issue #15), written into the model directory.

    scripts/backbone-card.py RUN_DIR CORPUS MODEL_DIR

* ``heldout-records.tsv``: ``obte score`` of MODEL_DIR on every record of CORPUS's held-out split (every
  residue masked once; the tests re-score a sample of these records with the shipped weights);
* ``heldout.tsv``: the same, residue-weighted per molecule type and per modality: records, residues, bits
  per residue, perplexity, masked accuracy, and the unigram baseline (the held-out residues' cross-entropy
  under the training split's residue frequencies of the same modality; 0 bits gained means the model knows
  no more than residue frequencies);
* ``training.tsv``: the held-out curve the run scored at each checkpoint (256 rows, random 15% masks);
* ``curves.png``: that curve against tokens seen, beside the unigram baselines;
* ``corpus-manifest.json``: CORPUS's manifest (packages, versions, sha256, licences, filters, totals).

Scoring runs ``obte`` in a subprocess, exactly as a user would, so the figures are the command's own.
"""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

MODALITY = {"protein": "protein"}  # every other molecule type is a nucleic acid
AMINO_ACIDS, NUCLEOTIDES = "ACDEFGHIKLMNPQRSTVWY", "ACGT"


def letters(fasta_dir: Path) -> Counter:
    """Letter counts of every ``*.fa.gz`` under ``fasta_dir`` (sequence lines only)."""
    counts: Counter = Counter()
    for path in sorted(fasta_dir.glob("*.fa.gz")):
        with gzip.open(path, "rt") as handle:
            for line in handle:
                if not line.startswith(">"):
                    counts.update(line.strip().upper())
    return counts


def cross_entropy_bits(train: Counter, heldout: Counter, alphabet: str) -> float:
    """Bits per residue of ``heldout`` letters under ``train``'s letter frequencies."""
    import math

    total_train = sum(train[a] for a in alphabet)
    total_held = sum(heldout[a] for a in alphabet)
    return -sum(heldout[a] / total_held * math.log2(train[a] / total_train) for a in alphabet if heldout[a])


def score(model: Path, molecule_type: str, files: list[Path], out: Path) -> list[dict]:
    command = ["obte", "-q", "score", "-m", str(model), "--molecule-type", molecule_type, *map(str, files)]
    command += ["-o", str(out)]
    subprocess.run(command, check=True)
    with out.open() as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def summarise(name: str, rows: list[dict], unigram: float) -> dict:
    residues = sum(int(r["length"]) for r in rows)
    bits = sum(float(r["bits_per_residue"]) * int(r["length"]) for r in rows) / residues
    accuracy = sum(float(r["masked_accuracy"]) * int(r["length"]) for r in rows) / residues
    return {
        "molecule_type": name,
        "records": len(rows),
        "residues": residues,
        "bits_per_residue": round(bits, 4),
        "perplexity": round(2**bits, 3),
        "masked_accuracy": round(accuracy, 4),
        "unigram_bits": round(unigram, 4),
        "unigram_perplexity": round(2**unigram, 3),
        "bits_gained": round(unigram - bits, 4),
    }


def write_tsv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def heldout_table(corpus: Path, model: Path) -> tuple[list[dict], list[dict]]:
    train_dir, held_dir = corpus / "fasta" / "train", corpus / "fasta" / "heldout"
    types = sorted(p.name for p in held_dir.iterdir() if p.is_dir() and any(p.glob("*.fa.gz")))
    train_letters = {"protein": Counter(), "nucleic": Counter()}
    for molecule_type in sorted(p.name for p in train_dir.iterdir() if p.is_dir()):
        train_letters[MODALITY.get(molecule_type, "nucleic")].update(letters(train_dir / molecule_type))
    table, records, by_modality = [], [], {"protein": ([], Counter()), "nucleic": ([], Counter())}
    with tempfile.TemporaryDirectory() as scratch:
        for molecule_type in types:
            modality = MODALITY.get(molecule_type, "nucleic")
            alphabet = AMINO_ACIDS if modality == "protein" else NUCLEOTIDES
            files = sorted((held_dir / molecule_type).glob("*.fa.gz"))
            rows = score(model, molecule_type, files, Path(scratch) / f"{molecule_type}.tsv")
            held_letters = letters(held_dir / molecule_type)
            unigram = cross_entropy_bits(train_letters[modality], held_letters, alphabet)
            table.append(summarise(molecule_type, rows, unigram))
            records.extend(rows)
            by_modality[modality][0].extend(rows)
            by_modality[modality][1].update(held_letters)
    for modality, (rows, held_letters) in by_modality.items():
        alphabet = AMINO_ACIDS if modality == "protein" else NUCLEOTIDES
        unigram = cross_entropy_bits(train_letters[modality], held_letters, alphabet)
        table.append(summarise(f"all {modality}", rows, unigram))
    return table, records


def training_table(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    table = []
    for r in records:
        if "heldout_loss" not in r:
            continue
        table.append(
            {
                "step": r["step"],
                "tokens": r["tokens"],
                "lr": f"{r['lr']:.3g}",
                "protein_bits": round(r["heldout_protein_bits_per_residue"], 4),
                "nucleic_bits": round(r["heldout_nucleic_bits_per_residue"], 4),
                "protein_accuracy": round(r["heldout_protein_accuracy"], 4),
                "nucleic_accuracy": round(r["heldout_nucleic_accuracy"], 4),
            }
        )
    return table


def curves_figure(training: list[dict], heldout: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    unigram = {row["molecule_type"]: row["unigram_bits"] for row in heldout}
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), dpi=110)
    for ax, modality, colour in zip(axes, ("protein", "nucleic"), ("C0", "C1")):
        tokens = [row["tokens"] / 1e6 for row in training]
        ax.plot(tokens, [row[f"{modality}_bits"] for row in training], "o-", color=colour, markersize=3)
        ax.axhline(unigram[f"all {modality}"], color="grey", linestyle="--", linewidth=0.8, label="unigram")
        ax.set_xlabel("training tokens (millions)")
        ax.set_ylabel("held-out bits per residue")
        ax.set_title("proteins" if modality == "protein" else "nucleic acids", fontsize=9)
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        sys.exit(__doc__)
    run, corpus, model = (Path(a) for a in argv)
    heldout, records = heldout_table(corpus, model)
    write_tsv(records, model / "heldout-records.tsv")
    write_tsv(heldout, model / "heldout.tsv")
    training = training_table(run)
    write_tsv(training, model / "training.tsv")
    curves_figure(training, heldout, model / "curves.png")
    shutil.copyfile(corpus / "corpus-manifest.json", model / "corpus-manifest.json")
    for row in heldout:
        print("\t".join(str(v) for v in row.values()))


if __name__ == "__main__":
    main(sys.argv[1:])

#!/usr/bin/env python3
"""Gene↔protein pairs for `obte embed probe-joint` from MetaPhlAn 2 marker genes the corpus never trained on.

    scripts/metaphlan-pairs.py CORPUS N SEED > pairs.tsv

MetaPhlAn's ``markers.fasta`` (Debian ``metaphlan2-data``, extracted under ``CORPUS/pkgs`` by
``scripts/build-corpus-debian.sh``) holds about a million bacterial coding sequences. The corpus keeps only
a few thousand of them (the per-source cap), so most were never seen in pretraining. This draws ``N`` of
those, at random (``SEED``), that are complete genes: A/C/G/T only, a length that is a multiple of 3, a
bacterial start codon (ATG, GTG, TTG), one stop codon at the end and none inside under the bacterial code
(table 11), 300 to 3,000 nt. The protein is the translation, with the start read as M, as ribosomes do.
Output: TSV ``id, gene_seq, protein_seq`` (the gene without its stop codon, so both sides end where the
protein ends).
"""

from __future__ import annotations

import gzip
import random
import sys
from pathlib import Path

from Bio.Seq import Seq

MARKERS = Path("pkgs/metaphlan2-data/var/lib/metaphlan2-data/markers.fasta")


def read_fasta(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    header, chunks = None, []
    with opener(path, "rt") as handle:
        for line in handle:
            if line.startswith(">"):
                if header is not None:
                    yield header, "".join(chunks).upper()
                header, chunks = line[1:].split()[0], []
            else:
                chunks.append(line.strip())
    if header is not None:
        yield header, "".join(chunks).upper()


def corpus_sequences(corpus: Path) -> set[str]:
    """Every DNA sequence of the corpus (train and held-out), so none of them is drawn."""
    seen = set()
    for path in sorted((corpus / "fasta").glob("*/DNA/*.fa.gz")):
        seen.update(sequence for _, sequence in read_fasta(path))
    return seen


def complete_gene(sequence: str) -> str | None:
    """The protein of a complete bacterial gene, or None."""
    if not 300 <= len(sequence) <= 3000 or len(sequence) % 3 or set(sequence) - set("ACGT"):
        return None
    if sequence[:3] not in ("ATG", "GTG", "TTG"):
        return None
    protein = str(Seq(sequence).translate(table=11))
    if not protein.endswith("*") or "*" in protein[:-1]:
        return None
    return "M" + protein[1:-1]


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        sys.exit(__doc__)
    corpus, count, seed = Path(argv[0]), int(argv[1]), int(argv[2])
    seen = corpus_sequences(corpus)
    candidates = [(h, s) for h, s in read_fasta(corpus / MARKERS) if s not in seen]
    random.Random(seed).shuffle(candidates)
    print("id\tgene_seq\tprotein_seq")
    written = 0
    for header, sequence in candidates:
        protein = complete_gene(sequence)
        if protein is None:
            continue
        print(f"{header}\t{sequence[:-3]}\t{protein}")
        written += 1
        if written == count:
            break
    print(f"{written} pairs from {len(candidates):,} markers outside the corpus", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])

#!/usr/bin/env bash
# The "real run" of issue #4: the tiny preset pretrained for a few CPU minutes on every real sequence the
# team ships in ../shared/data, reporting masked accuracy per modality against the unigram baselines.
#
#   [TOKENIZER=residue|bpe] scripts/pretrain-real-corpus.sh [WORK_DIR] [extra `obte pretrain` options...]
#
# TOKENIZER=bpe trains the paper's 2 × 2^11-piece BPE on the corpus first. 5% of the corpus (chunks of
# the context) is held out and scored at every checkpoint.
#
# Corpus (~1M tokens): UniProt (500 records), ProNAB proteins and nucleic acids, the chains of the 244
# PDB protein–DNA/RNA complexes, and the Biopython GenBank files (chloroplast genome, viral records).
set -euo pipefail
SHARED="$(cd "$(dirname "$0")/../.." && pwd)/shared/data"
WORK="${1:-runs/real-corpus}"
shift || true
mkdir -p "$WORK/fasta"

python - "$SHARED" "$WORK/fasta" <<'PY'
import glob, json, sys
from pathlib import Path

import gemmi

shared, out = Path(sys.argv[1]), Path(sys.argv[2])
pronab = json.loads((shared / "omnibiote-ref/pronab_dev.json").read_text())
proteins = {f"pronab|{acc}": entry["Sequence"] for acc, entry in pronab.items()}
dna = {f"pronab_na|{i}": seq for i, seq in enumerate(sorted({row[0] for e in pronab.values()
                                                              for row in e["binding data"] if row[0]}))}
rna = {}
for path in sorted(glob.glob(str(shared / "pdb-protein-*/*.pdb.gz"))):
    structure = gemmi.read_structure(path)
    structure.setup_entities()  # PDB files without SEQRES: polymers are found from the residues
    for chain in structure[0]:
        kind = chain.get_polymer().check_polymer_type()
        sequence = gemmi.one_letter_code([r.name for r in chain.get_polymer()])
        name = f"pdb|{Path(path).name.split('.')[0]}_{chain.name}"
        if kind == gemmi.PolymerType.PeptideL:
            proteins[name] = sequence
        elif kind == gemmi.PolymerType.Dna:
            dna[name] = sequence
        elif kind == gemmi.PolymerType.Rna:
            rna[name] = sequence
for stem, records in (("proteins", proteins), ("dna", dna), ("rna", rna)):
    with open(out / f"{stem}.fa", "w") as handle:
        handle.writelines(f">{name}\n{seq}\n" for name, seq in records.items())
PY

obte prep "$SHARED"/biopython-tests/*.gb "$SHARED"/biopython-tests/gbvrl1_start.seq -o "$WORK/prep-genbank"
obte prep "$SHARED"/sequences/uniprot_query500.fasta "$WORK/fasta/proteins.fa" --molecule-type protein --dedup -o "$WORK/prep-protein"
obte prep "$WORK/fasta/dna.fa" --molecule-type DNA --dedup -o "$WORK/prep-dna"
obte prep "$WORK/fasta/rna.fa" -m RNA --dedup -o "$WORK/prep-rna"
TOKENIZER="${TOKENIZER:-residue}"
if [ "$TOKENIZER" = bpe ]; then
    obte tokenize train "$WORK"/prep-* --vocab-size 2048 -o "$WORK/bpe" --force
    TOKENIZER="$WORK/bpe"
fi
obte tokenize corpus "$WORK"/prep-* -t "$TOKENIZER" -o "$WORK/tokens" --force
obte pretrain --tokens "$WORK/tokens" --preset tiny --context 512 --batch-tokens 4096 --total-tokens 2.5M \
    --lr 0.01 --holdout 0.05 --checkpoint-every 50 --seed 0 -o "$WORK/run" "$@"

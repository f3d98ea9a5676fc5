#!/usr/bin/env bash
# Rebuild share/models/contacts, the model `obte contacts predict` uses without --model.
#
#   scripts/train-default-contacts-model.sh [SHARED_DATA_DIR]
#
# Labels: every protein chain (with its nucleic-acid chains) of the 47 protein–DNA and 197 protein–RNA
# complexes in ../shared/data. Backbone: a fresh micro model (the same initialisation as the ΔG model's).
# 5-fold CV grouped by protein sequence first (metrics.tsv, folds.tsv), then the fit on all sites.
# About 10 minutes on 2 CPU cores.
set -euo pipefail
data="${1:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data}"
work=$(mktemp -d)
obte model init -o "$work/backbone" --preset micro --context 1024 --seed 0
obte contacts labels "$data"/pdb-protein-dna/*.pdb.gz "$data"/pdb-protein-rna/*.pdb.gz --per-chain -o "$work/labels.tsv"
obte finetune contacts --labels "$work/labels.tsv" --model "$work/backbone" -o "$work/contacts" \
    --folds 5 --epochs 3 --batch-size 8 --seed 0 --device cpu
rm -rf share/models/contacts
mkdir -p share/models/contacts
mv "$work/contacts/model"/* share/models/contacts/
mv "$work/contacts/metrics.tsv" "$work/contacts/folds.tsv" share/models/contacts/
rm -rf "$work"
echo "wrote share/models/contacts (add its README.md model card)"

#!/usr/bin/env bash
# Rebuild share/models/contacts, the model `obte contacts predict` uses without --model.
#
#   scripts/train-default-contacts-model.sh [SHARED_DATA_DIR]
#
# Labels: every protein chain (with its nucleic-acid chains) of the 47 protein–DNA and 197 protein–RNA
# complexes in ../shared/data. Backbone: the pretrained default, obte1_omni_t6_6M_DEB12, fine-tuned at a
# context of 1,024 tokens (it was pretrained at 512; rotary positions have no weights) so that chains up to
# 1,024 tokens are read whole. 5-fold CV grouped by protein sequence first (metrics.tsv, folds.tsv), then the
# fit on all sites. About 35 minutes on one CPU core.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$(cd "$repo/.." && pwd)/shared/data}"
backbone="$repo/share/models/obte1_omni_t6_6M_DEB12"
work=$(mktemp -d)
obte contacts labels "$data"/pdb-protein-dna/*.pdb.gz "$data"/pdb-protein-rna/*.pdb.gz --per-chain -o "$work/labels.tsv"
obte finetune contacts --labels "$work/labels.tsv" --model "$backbone" --context 1024 -o "$work/contacts" \
    --folds 5 --epochs 3 --batch-size 8 --seed 0 --device cpu
mkdir "$work/keep"  # the card and bench outlive the rebuild
if [ -f share/models/contacts/README.md ]; then cp share/models/contacts/README.md "$work/keep/"; fi
if [ -d share/models/contacts/bench ]; then cp -r share/models/contacts/bench "$work/keep/"; fi
rm -rf share/models/contacts
mkdir -p share/models/contacts
mv "$work/contacts/model"/* share/models/contacts/
mv "$work/contacts/metrics.tsv" "$work/contacts/folds.tsv" share/models/contacts/
cp -r "$work/keep"/. share/models/contacts/
rm -rf "$work"
echo "wrote share/models/contacts (update its README.md model card from metrics.tsv)"

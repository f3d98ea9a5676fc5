#!/usr/bin/env bash
# Rebuilds share/models/affinity/, the ΔG model `obte affinity` uses by default, from scratch:
# a fresh micro backbone (no pretraining), fine-tuned with 10-fold cross-validation grouped by protein
# and the homology guard; the fold models form the ensemble, and the run's out-of-fold tables are its scores.
# About an hour on 2 CPU cores. Usage: scripts/train-default-affinity-model.sh ../shared/data/omnibiote-ref/pronab_dev.json
set -euo pipefail
data=${1:?usage: $0 PRONAB_JSON}
work=$(mktemp -d)
obte model init -o "$work/backbone" --preset micro --context 1024 --seed 0
obte finetune affinity --data "$data" --model "$work/backbone" --out "$work/affinity" \
    --folds 10 --epochs 3 --batch-size 32 --truncate --seed 0 --device cpu
rm -rf share/models/affinity
mv "$work/affinity" share/models/affinity
rm -rf "$work"
echo "wrote share/models/affinity"

#!/usr/bin/env bash
# Rebuilds share/models/affinity/, the ΔG model `obte affinity` uses by default, from scratch:
# the composition model (mean of a ridge regression and gradient boosting on sequence composition),
# trained with 10-fold cross-validation grouped by protein and the homology guard; the fold models form
# the ensemble, and the run's out-of-fold tables are its scores. The model card (README.md) is kept.
# About 30 CPU-seconds: 24 for the 10 fold fits and, on a first run, 6 for the homology alignments (then cached);
# 117 s wall on 2 cores shared with other jobs at a load average of 9 to 10 (measured 2026-12-06).
# Usage: scripts/train-default-affinity-model.sh ../shared/data/omnibiote-ref/pronab_dev.json
#
# The transformer models in the card's table were made with, for example,
#   obte model init -o backbone --preset micro --context 1024 --seed 0
#   obte finetune affinity --data PRONAB_JSON --model backbone --out OUT --folds 10 --epochs 3 --batch-size 32 \
#       --truncate --seed 0 --device cpu
set -euo pipefail
data=${1:?usage: $0 PRONAB_JSON}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
obte finetune affinity --data "$data" --method composition --out "$work/affinity" --folds 10 --seed 0
cp share/models/affinity/README.md "$work/affinity/README.md"
rm -rf share/models/affinity
mv "$work/affinity" share/models/affinity
echo "wrote share/models/affinity"

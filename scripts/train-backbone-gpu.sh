#!/usr/bin/env bash
# Pretrain a backbone on one GPU within a wall-clock budget (issue #15): the schedule is sized from a measured
# throughput, so the one-cycle decay ends inside the budget instead of being cut off mid-way.
#
#   scripts/train-backbone-gpu.sh TOKENS HELDOUT RUN_DIR SECONDS
#
# TOKENS / HELDOUT: residue-tokenized train and held-out splits (CORPUS/tokens/residue/{train,heldout} of
# build-corpus-debian.sh). 1. `obte model init` builds the shape (WIDTH × LAYERS, HEADS; per-residue
# tokenizer, CONTEXT 512). 2. A 40-step probe run of the same settings measures tokens per second (median of
# its last 20 steps). 3. The main run gets TOTAL = 0.85 × rate × (SECONDS − time already spent − RESERVE,
# 60 s for start-up and held-out scoring) tokens, a 5% warm-up, and scores the held-out split every CHECKPOINT steps.
# μP keeps the tiny pilots' base LR (0.01) valid at another width; the batch is 4× the CPU run's (32 rows of 512).
# EXTRA: further `obte pretrain` options for the probe and the main run (the recipe, e.g. "--optimizer muon").
# PEAK_TFLOPS: the device's peak bf16 TFLOP/s, to log model FLOPs utilisation (mfu) per step.
# Set OBTE to the command that runs obte (default `obte`). The default backbone obte1_omni_t6_6M_DEB12 is this
# script with its defaults and SECONDS=520 on one NVIDIA H200 (its model card has the figures).
set -euo pipefail
TOKENS="${1:?usage: train-backbone-gpu.sh TOKENS HELDOUT RUN_DIR SECONDS}"
HELDOUT="${2:?usage: train-backbone-gpu.sh TOKENS HELDOUT RUN_DIR SECONDS}"
RUN="${3:?usage: train-backbone-gpu.sh TOKENS HELDOUT RUN_DIR SECONDS}"
SECONDS_BUDGET="${4:?usage: train-backbone-gpu.sh TOKENS HELDOUT RUN_DIR SECONDS}"
WIDTH="${WIDTH:-288}" LAYERS="${LAYERS:-6}" HEADS="${HEADS:-9}"
ROWS="${ROWS:-32}" CONTEXT="${CONTEXT:-512}" LR="${LR:-0.01}" CHECKPOINT="${CHECKPOINT:-500}" DEVICE="${DEVICE:-cuda}"
OBTE="${OBTE:-obte}" RESERVE="${RESERVE:-60}" PEAK_TFLOPS="${PEAK_TFLOPS:-0}"
read -r -a extra <<< "${EXTRA:-}"
started=$(date +%s)
batch=$((ROWS * CONTEXT))
mkdir -p "$RUN"
$OBTE -q model init --preset tiny --width "$WIDTH" --layers "$LAYERS" --heads "$HEADS" --context $CONTEXT \
    --seed 0 -f -o "$RUN/init"

common=(--init "$RUN/init" --tokens "$TOKENS" --context $CONTEXT --batch-tokens $batch --micro-batch-rows "$ROWS"
    --lr "$LR" --modality omni --seed 0 --device "$DEVICE" --peak-tflops "$PEAK_TFLOPS" "${extra[@]}")
$OBTE -q pretrain "${common[@]}" --total-tokens $((40 * batch)) --checkpoint-every 1000 -o "$RUN/probe"
rate=$(python3 - "$RUN/probe/metrics.jsonl" <<'EOF'
import json, statistics, sys
rates = [json.loads(line)["tokens_per_s"] for line in open(sys.argv[1])][-20:]
print(int(statistics.median(rates)))
EOF
)
left=$((SECONDS_BUDGET - ($(date +%s) - started) - RESERVE))
total=$(python3 -c "print(max(int(0.85 * $rate * $left) // $batch, 100) * $batch)")
echo "probe: $rate tokens/s; $left s left → --total-tokens $total" >&2
$OBTE pretrain "${common[@]}" --total-tokens "$total" --warmup-tokens $((total / 20)) \
    --eval-tokens "$HELDOUT" --eval-rows 512 --checkpoint-every "$CHECKPOINT" -o "$RUN/main"
echo "done in $(($(date +%s) - started)) s" >&2

#!/usr/bin/env bash
# One GPU loan, one command (issue #34 §3): check the device, train the largest backbone the package budget
# allows with the winning recipe, score it on the held-out split, compare bf16 autocast with fp32, and leave
# the model, its metrics and a log in OUT, within a device call's limits (one command under 10 minutes;
# at most 8 files of 16 MB come back).
#
#   scripts/gpu-plan.sh CORPUS OUT
#
# CORPUS holds fasta/{train,heldout}/TYPE/*.fa.gz and corpus-manifest.json (what build-corpus-debian.sh writes;
# 22 MB of FASTA, which travels with the device call: `run` with carry=[the corpus folder]). The residue token
# files are built from it on the device (16 cores) unless CORPUS/tokens/residue/{train,heldout} exist already.
#
# Settings (environment):
#   PLAN_SECONDS  the whole plan, start to end (default 510: a device call may run 600 s)
#   AFTER_SECONDS kept after training for scoring, the precision checks and packing (default 110)
#   BUDGET_MB     the backbone's bf16 weights at most this (default 20: the lighter tree's budget)
#   LAYERS        blocks (default 8); the width is the widest multiple of 32 that fits BUDGET_MB
#   ROWS          rows of 512 tokens per optimizer step (default 64: a GPU-sized batch; the t6 run used 32)
#   RECIPE        further `obte pretrain` options, the pilots' winner (default "--optimizer muon")
#   DRY_RUN=1     the same steps on the CPU, at a toy shape and a 60-second plan (tests/scripts/test_gpu_plan.py)
#
# OUT receives: plan.log (everything printed), checks.jsonl (device and versions, SDPA kernels, shape, MFU,
# bf16-vs-fp32 differences), metrics.jsonl (the training run) and model.tar.gz (config.json,
# model.safetensors in bf16, tokenizer.json, heldout.tsv, heldout-records.tsv, training.tsv, curves.png).
set -euo pipefail
CORPUS="$(cd "${1:?usage: gpu-plan.sh CORPUS OUT}" && pwd)"
OUT="${2:?usage: gpu-plan.sh CORPUS OUT}"
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
started=$(date +%s)
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
exec > >(tee -a "$OUT/plan.log") 2>&1
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if [ "${DRY_RUN:-0}" = 1 ]; then
    DEVICE=cpu PLAN_SECONDS="${PLAN_SECONDS:-60}" AFTER_SECONDS="${AFTER_SECONDS:-20}"
    SHAPE=(WIDTH=32 LAYERS=1 HEADS=1) ROWS="${ROWS:-2}" CONTEXT=256 CHECKPOINT=20 RESERVE=0
    export OMP_NUM_THREADS=1
else
    DEVICE=cuda PLAN_SECONDS="${PLAN_SECONDS:-510}" AFTER_SECONDS="${AFTER_SECONDS:-110}"
    ROWS="${ROWS:-64}" CONTEXT=512 CHECKPOINT=200 RESERVE=30
fi
RECIPE="${RECIPE:---optimizer muon}"
OBTE="${OBTE:-obte}"
checks() { python3 "$HERE/gpu_plan_checks.py" "$@" | tee -a "$OUT/checks.jsonl"; }
say() { echo "[gpu-plan $(($(date +%s) - started)) s] $*"; }

say "1/6 device and versions"
checks env "$DEVICE"
peak=$(python3 -c "import json; print(json.loads(open('$OUT/checks.jsonl').readlines()[-1])['peak_bf16_tflops'])")

say "2/6 residue token files"
TOKENS="$CORPUS/tokens/residue"
if [ ! -d "$TOKENS/train" ] || [ ! -d "$TOKENS/heldout" ]; then
    TOKENS="$WORK/tokens"
    workers=$(python3 -c "import os; print(max(1, min(16, os.cpu_count() or 1)))")
    for split in train heldout; do
        for dir in "$CORPUS/fasta/$split"/*/; do
            $OBTE -q prep "$dir"*.fa.gz --molecule-type "$(basename "$dir")" \
                -o "$WORK/prep/$split/$(basename "$dir")" --workers "$workers"
        done
        $OBTE -q tokenize corpus "$WORK/prep/$split"/* -o "$TOKENS/$split"
    done
fi

say "3/6 shape and attention kernels"
if [ "${DRY_RUN:-0}" != 1 ]; then
    vocab=$(python3 -c "import json; print(json.load(open('$TOKENS/train/tokens.json'))['vocab_size'])")
    checks shape "${BUDGET_MB:-20}" "${LAYERS:-8}" "$vocab"
    SHAPE=($(python3 -c "import json; r = json.loads(open('$OUT/checks.jsonl').readlines()[-1])
print(f\"WIDTH={r['width']} LAYERS={r['layers']} HEADS={r['heads']}\")"))
fi
$OBTE -q model init --preset tiny --width "${SHAPE[0]#WIDTH=}" --layers "${SHAPE[1]#LAYERS=}" \
    --heads "${SHAPE[2]#HEADS=}" --context "$CONTEXT" --seed 0 -o "$WORK/shape"
checks sdpa "$DEVICE" "$WORK/shape"

say "4/6 train: ${SHAPE[*]}, $ROWS rows of $CONTEXT tokens per step, $RECIPE"
left=$((PLAN_SECONDS - ($(date +%s) - started) - AFTER_SECONDS))
env "${SHAPE[@]}" ROWS="$ROWS" CONTEXT="$CONTEXT" CHECKPOINT="$CHECKPOINT" RESERVE="$RESERVE" DEVICE="$DEVICE" \
    PEAK_TFLOPS="$peak" EXTRA="$RECIPE" OBTE="$OBTE" \
    bash "$HERE/train-backbone-gpu.sh" "$TOKENS/train" "$TOKENS/heldout" "$WORK/run" "$left"
checks mfu "$WORK/run/main/metrics.jsonl"
MODEL="$WORK/run/main/model"

say "5/6 held-out split (obte score, every record) and bf16 autocast against fp32"
python3 "$HERE/backbone-card.py" "$WORK/run/main" "$CORPUS" "$MODEL"
$OBTE -q finetune affinity --data "$REPO/tests/data/pronab_sample.tsv" -m "$MODEL" -o "$WORK/dg" --folds 0 --truncate \
    --epochs 1 --device "$DEVICE"
checks precision "$DEVICE" "$MODEL" "$WORK/dg" "$REPO/share/examples/proteins.fa" "$REPO/share/examples/dna.fa" \
    "$REPO/tests/data/pronab_sample.tsv"

say "6/6 package into $OUT"
python3 "$HERE/store-weights-bf16.py" "$MODEL"
cp "$WORK/run/main/metrics.jsonl" "$OUT/metrics.jsonl"
tar -czf "$OUT/model.tar.gz" -C "$(dirname "$MODEL")" "$(basename "$MODEL")"
ls -l "$OUT"
say "done"

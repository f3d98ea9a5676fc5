#!/usr/bin/env bash
# Pretrain a backbone on the Debian corpus on CPU, resumably (issue #15): the recipe of the previous default,
# obte1_omni_t4_3M_DEB12. The current default, obte1_omni_t6_6M_DEB12, was trained on a GPU with
# scripts/train-backbone-gpu.sh (its model card has the command).
#
#   scripts/train-default-backbone.sh CORPUS RUN_DIR      (CORPUS: the output of build-corpus-debian.sh)
#
# Recipe, chosen by the pilots (scripts/pretrain-pilots.sh; table in the model card): tiny preset (4 × 256),
# per-residue tokenizer, context 512, 4,096 tokens per step, base LR 0.01 (hidden matrices 0.01·32/256),
# 2M-token warm-up then one-cycle decay over TOTAL tokens (default 120M, ≈ 5.5 CPU-hours on 2 cores).
# Held-out bits per residue per modality are scored on CORPUS's held-out split every 500 steps
# (a checkpoint every ~6-10 minutes). Re-running the same command continues exactly where it stopped.
# obte1_omni_t4_3M_DEB12's first release is this run with TOTAL=36M (its second, TOTAL=90M): started at 120M,
# it was cut to 36M at step 4,000 (a resume with another TOTAL re-targets the LR decay). TOTAL=120M on the
# finished run extends it.
set -euo pipefail
CORPUS="${1:?usage: train-default-backbone.sh CORPUS RUN_DIR}"
RUN="${2:?usage: train-default-backbone.sh CORPUS RUN_DIR}"
TOTAL="${TOTAL:-120M}"
resume=()
[ -d "$RUN/checkpoints" ] && resume=(--resume)
exec nice -n 10 obte pretrain --tokens "$CORPUS/tokens/residue/train" --eval-tokens "$CORPUS/tokens/residue/heldout" \
    --eval-rows 256 --preset tiny --context 512 --batch-tokens 4096 --micro-batch-rows 8 --total-tokens "$TOTAL" \
    --warmup-tokens 2M --lr 0.01 --modality omni --checkpoint-every 500 --seed 0 --device cpu -o "$RUN" "${resume[@]}"

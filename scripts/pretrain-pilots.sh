#!/usr/bin/env bash
# Pilot pretraining runs at equal compute, to choose the tokenizer, shape and learning rate of the main run
# (issue #15 step 2). Each pilot is scored on the corpus' held-out split (bits per residue per modality) at
# every checkpoint; `scripts/pilot-table.py RUNS` turns the run directories into the model card's table.
#
#   scripts/pretrain-pilots.sh CORPUS RUNS PILOT...      (CORPUS: the output of build-corpus-debian.sh)
#
# A pilot is NAME:PRESET:TOKENIZER:CONTEXT:LR[:MODALITY], for example tiny-res-lr0.01:tiny:residue:512:0.01.
# PRESET may be reshaped as PRESET/WIDTHxLAYERS (heads of 32 dims), e.g. tiny/256x8 (a deeper tiny) or
# tiny/384x4 (a wider one): the pilot then starts from `obte model init --width --layers --heads`.
# MODALITY (omni, protein or nucleic; default omni) gives the paper's single-omic controls at equal compute:
#   FLOPS=3e14 scripts/pretrain-pilots.sh CORPUS RUNS omni:tiny:residue:512:0.01:omni \
#       protein-only:tiny:residue:512:0.01:protein nucleic-only:tiny:residue:512:0.01:nucleic
# EXTRA (after MODALITY) is a comma-separated list of further `obte pretrain` options, for the recipe pilots
# of issue #34, e.g. muon:tiny:residue:512:0.01:omni:--optimizer=muon,--muon-lr=0.02 or
# mask30:tiny:residue:512:0.01:omni:--mask-rate=0.3 or seed1:tiny:residue:512:0.01:omni:--seed=1
# (a later option wins, so --seed=1 or --tokens=OTHER_DIR replace the defaults below).
# Compute per pilot is FLOPS (default 1e14 ≈ 4M tiny tokens at context 512): each pilot's token budget is
# FLOPS / (training FLOPs per token), counting the MLM readout, so a smaller model or a tokenizer with a
# smaller readout sees more tokens. PARALLEL=2 runs two pilots at once with one thread each (same total
# compute, and the two share the machine's load evenly).
set -euo pipefail
CORPUS="${1:?usage: pretrain-pilots.sh CORPUS RUNS PILOT...}"
RUNS="${2:?usage: pretrain-pilots.sh CORPUS RUNS PILOT...}"
shift 2
FLOPS="${FLOPS:-1e14}"
BATCH_RESIDUES="${BATCH_RESIDUES:-4096}"
PARALLEL="${PARALLEL:-1}"
mkdir -p "$RUNS"

budget() {  # PRESET[/WIDTHxLAYERS] TOKENIZER_DIR CONTEXT -> total tokens for FLOPS
    python3 - "$1" "$2" "$3" "$FLOPS" <<'PY'
import json, sys
from obte_cli.engine.model.encoder import ObteConfig, flops_per_token, padded_vocab_size, preset_config
preset, tokens, context, flops = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
vocab = padded_vocab_size(json.load(open(f"{tokens}/tokens.json"))["vocab_size"])
shape = {}
if "/" in preset:
    preset, size = preset.split("/")
    width, layers = (int(n) for n in size.split("x"))
    shape = {"width": width, "n_layers": layers, "n_heads": width // 32}
config = preset_config(preset, vocab, max_positions=context, **shape)
per_token = flops_per_token(config, context) + 6 * config.width * vocab  # + the MLM readout
print(int(flops / per_token))
PY
}

run_pilot() {
    IFS=: read -r name preset tokenizer context lr modality extra <<< "$1"
    modality="${modality:-omni}"
    local options=()
    [ -n "$extra" ] && IFS=, read -r -a options <<< "$extra"
    local train="$CORPUS/tokens/$tokenizer/train" heldout="$CORPUS/tokens/$tokenizer/heldout"
    local total batch
    total=$(budget "$preset" "$train" "$context")
    # the same residues per step for every tokenizer: BPE tokens hold ~3 residues, so fewer tokens per step
    batch=$(python3 -c "import json; t = lambda d: json.load(open(f'{d}/tokens.json'))['tokens']
print(int($BATCH_RESIDUES * t('$train') / t('$CORPUS/tokens/residue/train')))")
    echo "$name: $preset, $tokenizer, $modality, context $context, lr $lr, $total tokens, $batch tokens per step${extra:+, $extra}" >&2
    local resume=()
    [ -d "$RUNS/$name/checkpoints" ] && resume=(--resume)
    [ -d "$RUNS/$name/model" ] && return 0
    local architecture=(--preset "$preset")
    if [[ "$preset" == */* ]]; then  # a reshaped preset: start from a fresh model of that shape
        local size="${preset#*/}" width layers
        width="${size%x*}" layers="${size#*x}"
        [ -d "$RUNS/$name-init" ] || obte model init --preset "${preset%/*}" --width "$width" --layers "$layers" \
            --heads $((width / 32)) --tokenizer "$train" --context "$context" --seed 0 -o "$RUNS/$name-init"
        architecture=(--init "$RUNS/$name-init")
    fi
    nice -n 10 obte pretrain --tokens "$train" --eval-tokens "$heldout" --eval-rows 128 "${architecture[@]}" \
        --context "$context" --batch-tokens "$batch" --micro-batch-rows 4 --total-tokens "$total" --lr "$lr" \
        --modality "$modality" --checkpoint-every 100 --seed 0 --device cpu -o "$RUNS/$name" "${resume[@]}" "${options[@]}" \
        > "$RUNS/$name.log" 2>&1
}

if [ "$PARALLEL" -gt 1 ]; then
    export OMP_NUM_THREADS=1
    pids=()
    for pilot in "$@"; do
        run_pilot "$pilot" & pids+=($!)
        while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do sleep 5; done
    done
    wait "${pids[@]}"
else
    for pilot in "$@"; do run_pilot "$pilot"; done
fi

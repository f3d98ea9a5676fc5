#!/usr/bin/env bash
# Build obte's pretraining corpus from real sequence sets that Debian ships, then prepare and tokenize it.
#
#   scripts/build-corpus-debian.sh OUT [--seed 0] [--holdout 0.005] [--cap 0.25] [--nucleic-per-protein 1]
#
# Needs: apt-get (Debian/Ubuntu archive reachable; run `apt-get update` first), dpkg-deb, and obte installed.
# Nothing is installed system-wide: packages are downloaded to OUT/debs and unpacked with `dpkg-deb -x` into
# OUT/pkgs (BLAST databases are read with the unpacked blastdbcmd). About 0.8 GB of downloads, 2.5 GB unpacked,
# 5-10 minutes on 2 cores. Every step skips work already done, so an interrupted build can be re-run.
#
# Output:
#   OUT/corpus-manifest.json               packages (version, sha256, Debian licences), sources (origin and terms,
#                                          sha256 of every file read, records/residues read, kept, dropped per
#                                          reason, budget and written per split and type), filters, seed
#   OUT/fasta/{train,heldout}/TYPE/*.fa.gz per-source FASTA; heldout is ~0.5% of every source, never trained on
#   OUT/prep/{train,heldout}/TYPE/         `obte prep` shards, one directory per molecule type
#   OUT/bpe/                               2 x 2^11-piece BPE trained on the training split (`obte tokenize train`)
#   OUT/tokens/{residue,bpe}/{train,heldout}/  token files for `obte pretrain --tokens ... --eval-tokens ...`
set -euo pipefail
OUT="${1:?usage: build-corpus-debian.sh OUT [debian_corpus.py options]}"
shift
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$OUT/debs" "$OUT/pkgs"
OUT="$(cd "$OUT" && pwd)"

mapfile -t PACKAGES < <(python3 -c "from obte_cli.engine.pretraining.debian_corpus import packages; print('\n'.join(packages()))")

echo "1/5 download ${#PACKAGES[@]} Debian packages into $OUT/debs" >&2
missing=()
for package in "${PACKAGES[@]}"; do
    compgen -G "$OUT/debs/${package//+/?}_*.deb" > /dev/null || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    (cd "$OUT/debs" && apt-get download "${missing[@]}")
fi

echo "2/5 unpack into $OUT/pkgs" >&2
for package in "${PACKAGES[@]}"; do
    [ -d "$OUT/pkgs/$package" ] && continue
    deb=$(compgen -G "$OUT/debs/${package//+/?}_*.deb" | sort | tail -1)
    dpkg-deb -x "$deb" "$OUT/pkgs/$package.partial" && mv "$OUT/pkgs/$package.partial" "$OUT/pkgs/$package"
done

echo "3/5 collect, deduplicate, allocate and split the sources" >&2
python3 "$HERE/debian_corpus.py" --debs "$OUT/debs" --pkgs "$OUT/pkgs" -o "$OUT" "$@"

echo "4/5 obte prep, one corpus per split and molecule type" >&2
for split in train heldout; do
    for dir in "$OUT/fasta/$split"/*/; do
        type=$(basename "$dir")
        obte prep "$dir"*.fa.gz --molecule-type "$type" -o "$OUT/prep/$split/$type" --workers 2
    done
done

echo "5/5 BPE tokenizer and token files" >&2
[ -d "$OUT/bpe" ] || obte tokenize train "$OUT"/prep/train/* -o "$OUT/bpe" --threads 2
for tokenizer in residue bpe; do
    t=$tokenizer; [ "$tokenizer" = bpe ] && t="$OUT/bpe"
    for split in train heldout; do
        [ -d "$OUT/tokens/$tokenizer/$split" ] || obte tokenize corpus "$OUT"/prep/$split/* -t "$t" -o "$OUT/tokens/$tokenizer/$split"
    done
done
echo "done: $OUT/corpus-manifest.json, $OUT/tokens/{residue,bpe}/{train,heldout}" >&2

#!/usr/bin/env python3
"""Step 2 of scripts/build-corpus-debian.sh: extracted Debian packages → per-type FASTA + manifest.

    python scripts/debian_corpus.py --debs OUT/debs --pkgs OUT/pkgs -o OUT [--seed 0] [--holdout 0.005]

Writes OUT/work/<source>.tsv.gz (cleaned, deduplicated; reused on a re-run), OUT/fasta/{train,heldout}/
<type>/<source>.fa.gz and OUT/corpus-manifest.json. See obte_cli/engine/pretraining/debian_corpus.py.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from obte_cli.engine.pretraining import debian_corpus as dc


def deb_info(debs: Path, package: str) -> dict:
    matches = sorted(debs.glob(f"{package.replace('+', '?')}_*.deb"))
    if not matches:
        return {"package": package, "deb": None}
    deb = matches[-1]
    version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True).stdout.strip()
    return {"package": package, "version": version, "deb": deb.name, "sha256": dc.file_sha256(deb)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debs", type=Path, required=True)
    parser.add_argument("--pkgs", type=Path, required=True)
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--holdout", type=float, default=0.005, help="held-out fraction of every source")
    parser.add_argument("--cap", type=float, default=0.25, help="largest share of its modality one source may have")
    parser.add_argument("--nucleic-per-protein", type=float, default=1.0, help="nucleic residues per protein residue")
    parser.add_argument("--protein-residues", type=float, default=0, help="limit on protein residues (0: none)")
    parser.add_argument("--only", default="", help="comma-separated source names (default: all)")
    args = parser.parse_args()
    sources = [s for s in dc.SOURCES if not args.only or s.name in args.only.split(",")]
    packages = list(dict.fromkeys([s.package for s in sources] + list(dc.TOOL_PACKAGES)))

    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    blast = dc.Blast.from_packages(args.pkgs)
    seen: set[bytes] = set()
    collected: dict[str, dict] = {}
    for source in sources:
        out, stats = work / f"{source.name}.tsv.gz", work / f"{source.name}.json"
        started = time.time()
        if stats.exists():  # a finished source: reload its digests so later sources dedup against it
            collected[source.name] = json.loads(stats.read_text())
            with gzip.open(out, "rt") as lines:
                seen.update(dc.sequence_digest(line.rstrip("\n").split("\t")[1]) for line in lines)
        else:
            counts = dc.collect_source(source, dc.raw_records(source, args.pkgs, blast), seen, out)
            collected[source.name] = {**asdict(counts), "dropped": dict(counts.dropped)}
            stats.write_text(json.dumps(collected[source.name], indent=1))
        c = collected[source.name]
        print(
            f"{source.name}: {c['records_read']:,} read, {c['sequences_kept']:,} kept, "
            f"{c['residues_kept']:,} residues, dropped {c['dropped']} ({time.time() - started:.0f} s)",
            file=sys.stderr,
            flush=True,
        )

    available = {name: c["residues_kept"] for name, c in collected.items() if c["residues_kept"]}
    budgets = dc.allocate(available, sources, args.cap, args.nucleic_per_protein, int(args.protein_residues) or None)
    fasta = args.out / "fasta"
    splits = {}
    for source in sources:
        if source.name not in budgets:
            continue
        rate = min(1.0, budgets[source.name] / available[source.name])
        splits[source.name] = dc.write_split(
            work / f"{source.name}.tsv.gz", source.name, rate, args.holdout, args.seed, fasta
        )
        print(f"{source.name}: keep rate {rate:.4f} → {splits[source.name]}", file=sys.stderr, flush=True)

    manifest = {
        "format": dc.MANIFEST_FORMAT,
        "seed": args.seed,
        "filters": {
            "alphabets": "20 standard amino acids; A/C/G/T (U read as T); trailing '*' stripped from proteins",
            "genomes": f"split at every non-ACGT letter, cut into pieces of at most {dc.FRAGMENT_LENGTH} nt",
            "min_length": dc.MIN_LENGTH,
            "dedup": "by accession within a source (where it has one) and by exact sequence across all sources",
            "cap": args.cap,
            "nucleic_per_protein": args.nucleic_per_protein,
            "holdout": args.holdout,
        },
        "packages": [{**deb_info(args.debs, p), "debian_licences": dc.debian_licences(args.pkgs, p)} for p in packages],
        "sources": [
            {
                "name": s.name,
                "package": s.package,
                "molecule_type": s.molecule_type,
                "origin": s.origin,
                "files": [
                    {"path": str(f.relative_to(args.pkgs)), "sha256": dc.file_sha256(f)}
                    for f in dc.input_files(s, args.pkgs)
                ],
                "collected": collected.get(s.name),
                "available_residues": available.get(s.name, 0),
                "budget_residues": budgets.get(s.name, 0),
                "written": splits.get(s.name, {}),
            }
            for s in sources
        ],
    }
    totals: dict[str, dict[str, dict[str, int]]] = {}
    for per_split in splits.values():
        for split, per_type in per_split.items():
            for type_name, row in per_type.items():
                t = totals.setdefault(split, {}).setdefault(type_name, {"records": 0, "residues": 0})
                t["records"] += row["records"]
                t["residues"] += row["residues"]
    manifest["totals"] = totals
    (args.out / "corpus-manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(json.dumps(totals, indent=1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Time the homology guard's all-pairs alignment with Biopython, parasail and pyopal, and check the scores.

Every pair (and every self-pair) of the unique proteins of a ProNAB/pairs file is scored by Smith–Waterman
with BLOSUM62, a gap of k residues scoring −11 − (k − 1), by each aligner; the script prints the seconds
each took (wall clock, and CPU time of the process and its workers) with the number of worker processes
(or threads) given, the system load average before and after, and whether each aligner's scores equal
Biopython's exactly (the guard needs identical scores).

Usage: scripts/bench-homology-aligners.py ../shared/data/omnibiote-ref/pronab_dev.json [--workers 2]
       [--skip-biopython]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from obte_cli.engine.affinity.data import load_affinity_data

GAP_OPEN, GAP_EXTEND = 11, 1  # parasail/pyopal penalties: a gap of k residues costs 11 + (k - 1)


def _biopython_rows(args):
    sequences, rows = args
    from Bio.Align import PairwiseAligner, substitution_matrices

    aligner = PairwiseAligner()
    aligner.substitution_matrix = substitution_matrices.load("BLOSUM62")
    aligner.open_gap_score, aligner.extend_gap_score, aligner.mode = -11.0, -1.0, "local"
    return [(i, [aligner.score(sequences[i], sequences[j]) for j in range(i, len(sequences))]) for i in rows]


def _parasail_rows(args):
    import parasail

    sequences, rows = args
    out = []
    for i in rows:
        profile = parasail.profile_create_sat(sequences[i], parasail.blosum62)
        out.append(
            (
                i,
                [
                    parasail.sw_striped_profile_sat(profile, sequences[j], GAP_OPEN, GAP_EXTEND).score
                    for j in range(i, len(sequences))
                ],
            )
        )
    return out


def _in_processes(function, sequences, workers):
    n = len(sequences)
    chunks = [(sequences, list(range(w, n, workers))) for w in range(workers)]
    scores = np.zeros((n, n))
    if workers == 1:
        results = [function(chunks[0])]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(function, chunks))
    for chunk in results:
        for i, row in chunk:
            scores[i, i:] = row
            scores[i:, i] = row
    return scores


def _pyopal(sequences, threads):
    import pyopal

    n = len(sequences)
    scores = np.zeros((n, n))
    for i in range(n):
        hits = pyopal.align(
            sequences[i],
            sequences[i:],
            "BLOSUM62",
            gap_open=GAP_OPEN,
            gap_extend=GAP_EXTEND,
            threads=threads,
            ordered=True,
        )
        row = [hit.score for hit in hits]
        scores[i, i:] = row
        scores[i:, i] = row
    return scores


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished worker processes (a pool's, once it has shut down)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-biopython", action="store_true")
    args = parser.parse_args()
    table, _ = load_affinity_data(args.data)
    sequences = list(dict.fromkeys(table["protein"]))
    n = len(sequences)
    lengths = np.array([len(s) for s in sequences])
    print(
        f"{n} proteins ({lengths.min()}-{lengths.max()} residues, median {np.median(lengths):.0f}); "
        f"{n * (n - 1) // 2:,} pairs + {n} self-pairs; {args.workers} workers; {os.cpu_count()} CPUs"
    )
    runs = {
        "parasail (sw_striped_profile_sat), 1 process": lambda: _in_processes(_parasail_rows, sequences, 1),
        f"parasail (sw_striped_profile_sat), {args.workers} processes": lambda: _in_processes(
            _parasail_rows, sequences, args.workers
        ),
        "pyopal (sw, 1 thread)": lambda: _pyopal(sequences, 1),
        f"pyopal (sw, {args.workers} threads)": lambda: _pyopal(sequences, args.workers),
    }
    if not args.skip_biopython:
        runs[f"Biopython PairwiseAligner, {args.workers} processes"] = lambda: _in_processes(
            _biopython_rows, sequences, args.workers
        )
    results = {}
    for name, run in runs.items():
        load = os.getloadavg()[0]
        started, cpu = time.perf_counter(), _cpu_seconds()
        results[name] = run()
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
        print(
            f"{name}: {seconds:.1f} s wall, {cpu:.1f} s CPU (this process and its workers; load average "
            f"{load:.2f} before, {os.getloadavg()[0]:.2f} after)",
            flush=True,
        )
    reference = next((v for k, v in results.items() if k.startswith("Biopython")), None)
    if reference is not None:
        for name, scores in results.items():
            differ = int((scores != reference).sum())
            print(f"{name}: {'identical to Biopython' if differ == 0 else f'{differ} scores differ from Biopython'}")


if __name__ == "__main__":
    main()

"""`obte bench prep`: prep throughput against Biopython's parser alone, on the same files, in one run.

Rates are input megabytes (as stored, compressed or not) per second of wall time:

* ``biopython SeqIO.parse`` — only iterating the records and reading each sequence, no filtering, no
  output: the floor a Biopython-based prep could not beat;
* ``obte prep`` with 1 worker — read, filter, count, write gzip shards, manifest: everything;
* ``obte prep`` with N workers — the same over N copies of the input (one file per worker), to show how
  it scales; the rate is total MB over wall time, and ``per_worker`` divides it by N.

Each timing is the best of ``repeats`` runs (least disturbed by other processes).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from obte_cli.engine.bench.timing import best_of
from obte_cli.engine.bio.seqio import open_text
from obte_cli.engine.pretraining.prep import PrepSettings, input_format, run_prep


def biopython_parse(paths: list[Path]) -> int:
    from Bio import SeqIO

    residues = 0
    for path in paths:
        with open_text(path) as handle:
            for record in SeqIO.parse(handle, input_format(path)):
                residues += len(record.seq)
    return residues


def bench_prep(paths: list[Path], workers: int = 2, repeats: int = 3) -> list[dict]:
    paths = [Path(p) for p in paths]
    size = sum(p.stat().st_size for p in paths)
    rows = []

    def row(method: str, n_workers: int, nbytes: int, seconds: float) -> dict:
        rate = nbytes / 1e6 / seconds
        return {
            "method": method,
            "workers": n_workers,
            "megabytes": nbytes / 1e6,
            "seconds": seconds,
            "mb_per_s": rate,
            "mb_per_s_per_worker": rate / n_workers,
        }

    rows.append(row("biopython SeqIO.parse", 1, size, best_of(repeats, lambda: biopython_parse(paths))))
    with tempfile.TemporaryDirectory(prefix="obte-bench-prep-") as tmp:
        tmp = Path(tmp)

        def prep_into(inputs: list[Path], n_workers: int) -> Callable[[], None]:
            def work() -> None:
                out = tmp / "out"
                shutil.rmtree(out, ignore_errors=True)
                run_prep(inputs, out, PrepSettings(), workers=n_workers)

            return work

        rows.append(row("obte prep", 1, size, best_of(repeats, prep_into(paths, 1))))
        if workers > 1:
            copies = []
            for w in range(workers):
                folder = tmp / f"copy{w}"
                folder.mkdir()
                for p in paths:
                    copies.append(folder / p.name)
                    shutil.copyfile(p, copies[-1])
            rows.append(row("obte prep", workers, size * workers, best_of(repeats, prep_into(copies, workers))))
    base = rows[0]["mb_per_s"]
    for r in rows:
        r["vs_biopython_per_worker"] = r["mb_per_s_per_worker"] / base
    return rows

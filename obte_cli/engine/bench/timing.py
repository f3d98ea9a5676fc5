"""The timing helpers the benchmarks share.

On a shared machine a burst of load can land on one implementation's timings and not the other's, so
comparisons are *interleaved* (:func:`interleaved`): one run of A, one of B, one of A ... with the same
inputs, and the speed-up is the median of the per-round ratios (:func:`paired_ratio`), reported with
its interquartile range. A burst then hurts one round of both, not all rounds of one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np


def best_of(repeats: int, work: Callable[[], object]) -> float:
    """Shortest wall time of ``repeats`` runs of ``work`` (the run least disturbed by other processes)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def interleaved(
    works: dict[str, Callable[[], object]],
    rounds: int,
    warmup: int = 1,
    sync: Callable[[], None] = lambda: None,
) -> dict[str, list[float]]:
    """Wall seconds of each of ``works`` per round, the works taking turns within every round (after
    ``warmup`` untimed rounds). ``sync`` runs before and after each timed call (a CUDA synchronise)."""
    for _ in range(warmup):
        for work in works.values():
            work()
    seconds: dict[str, list[float]] = {name: [] for name in works}
    for _ in range(rounds):
        for name, work in works.items():
            sync()
            start = time.perf_counter()
            work()
            sync()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def paired_ratio(numerator: list[float], denominator: list[float]) -> tuple[float, float, float]:
    """(median, 25th, 75th percentile) of the per-round ratios ``numerator[i] / denominator[i]``."""
    ratios = np.asarray(numerator, dtype=np.float64) / np.asarray(denominator, dtype=np.float64)
    q1, median, q3 = np.percentile(ratios, [25, 50, 75])
    return float(median), float(q1), float(q3)


def load_average() -> float:
    """The machine's 1-minute load average (NaN where the OS has none), written beside every timing."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return float("nan")

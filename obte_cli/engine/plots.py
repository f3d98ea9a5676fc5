"""Figures that commands write next to their tables (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt


def prediction_scatter(measured: np.ndarray, predicted: np.ndarray, title: str, path: str | Path, unit: str = "kcal/mol") -> Path:
    """Predicted vs measured scatter with the y = x line; written to ``path`` (PNG)."""
    plt = _pyplot()
    measured = np.asarray(measured, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    ax.scatter(measured, predicted, s=6, alpha=0.35, linewidths=0)
    low = float(min(measured.min(), predicted.min()))
    high = float(max(measured.max(), predicted.max()))
    ax.plot([low, high], [low, high], color="black", linewidth=0.8, linestyle="--", label="y = x")
    ax.set_xlabel(f"measured ({unit})")
    ax.set_ylabel(f"predicted ({unit})")
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def metric_bars(labels: list[str], means: list[float], sems: list[float], ylabel: str, title: str, path: str | Path) -> Path:
    """Bar chart of per-method means with SEM error bars (PNG)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 3.5), dpi=120)
    ax.bar(labels, means, yerr=sems, capsize=4, color=["#4477aa", "#bbbbbb", "#ee6677", "#228833"][: len(labels)])
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path

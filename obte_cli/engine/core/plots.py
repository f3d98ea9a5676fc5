"""Figures that commands write next to their tables (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from obte_cli.engine.core.outputs import atomic_file


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    """Write ``fig`` atomically, in the format its suffix names (PNG without one), and close it."""
    path = Path(path)
    try:
        fig.tight_layout()
        with atomic_file(path, binary=True) as handle:
            fig.savefig(handle, format=path.suffix.lstrip(".").lower() or "png")
    finally:
        _pyplot().close(fig)
    return path


def prediction_scatter(
    measured: np.ndarray, predicted: np.ndarray, title: str, path: str | Path, unit: str = "kcal/mol"
) -> Path:
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
    return _save(fig, path)


def method_comparison(
    labels: list[str], panels: list[tuple[str, list[float], list[float]]], title: str, path: str | Path
) -> Path:
    """One bar panel per metric (``(ylabel, means, sems)``), methods side by side, SEM error bars (PNG)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), dpi=120, squeeze=False)
    colours = ["#4477aa", "#bbbbbb", "#ee6677", "#228833", "#ccbb44"]
    for ax, (ylabel, means, sems) in zip(axes[0], panels):
        ax.bar(labels, means, yerr=sems, capsize=4, color=colours[: len(labels)])
        for x, (m, e) in enumerate(zip(means, sems)):
            ax.annotate(
                f"{m:.3f}",
                (x, m + (e if e == e else 0)),
                ha="center",
                va="bottom",
                fontsize=8,
                xytext=(0, 2),
                textcoords="offset points",
            )
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def training_curves(
    records: list[dict], path: str | Path, title: str, baselines: dict[str, float | None] | None = None
) -> Path:
    """Loss and masked-token accuracy against tokens seen (PNG), from ``metrics.jsonl`` records.

    Accuracy is drawn per modality (a running mean over ~2% of the steps: one step's masked tokens of
    a modality are few) with that modality's unigram baseline as a dashed line of the same colour.
    """
    plt = _pyplot()
    tokens = [r["tokens"] for r in records]
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.4), dpi=120)
    left.plot(tokens, [r["loss"] for r in records], linewidth=1)
    left.set_xlabel("tokens")
    left.set_ylabel("masked-LM loss")
    window = max(1, len(records) // 50)
    baselines = baselines or {}
    drawn = 0
    for key, name, label, colour in (
        ("protein_accuracy", "protein", "protein", "C0"),
        ("nucleic_accuracy", "nucleic", "nucleic acid", "C1"),
        ("masked_accuracy", "all", "all", "C2"),
    ):
        points = [(r["tokens"], r[key]) for r in records if r.get(key) is not None]
        if not points or (name == "all" and drawn):
            continue  # the per-modality curves say more than their mixture
        drawn += 1
        xs, ys = zip(*points)
        smooth = np.convolve(ys, np.ones(min(window, len(ys))) / min(window, len(ys)), mode="valid")
        right.plot(xs[len(xs) - len(smooth) :], smooth, linewidth=1, color=colour, label=label)
        baseline = baselines.get(name)
        if baseline is not None:
            right.axhline(baseline, color=colour, linestyle="--", linewidth=0.8)
        held = [(r["tokens"], r[f"heldout_{key}"]) for r in records if r.get(f"heldout_{key}") is not None]
        if held:
            right.plot(*zip(*held), "o", color=colour, markersize=3, label=f"{label}, held out")
    right.plot([], [], color="grey", linestyle="--", linewidth=0.8, label="unigram baseline")
    right.legend(fontsize=7, frameon=False)
    right.set_xlabel("tokens")
    right.set_ylabel("masked-token accuracy")
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def saturation_figure(
    ddg: np.ndarray, model_pfm: np.ndarray, reference_pfm: np.ndarray, consensus: str, title: str, path: str | Path
) -> Path:
    """ΔΔG of every substitution, the model-derived PFM and the JASPAR PFM, as base × position heatmaps."""
    plt = _pyplot()
    length = len(consensus)
    fig, axes = plt.subplots(3, 1, figsize=(max(4.0, 0.35 * length + 1.5), 5.6), dpi=120, sharex=True)
    panels = [
        (ddg.T, "ΔΔG (kcal/mol)", "RdBu_r", max(float(np.abs(ddg).max()), 1e-6)),
        (model_pfm.T, "model p(base)", "viridis", None),
        (reference_pfm.T, "JASPAR p(base)", "viridis", None),
    ]
    for ax, (values, label, cmap, bound) in zip(axes, panels):
        kwargs = {"vmin": -bound, "vmax": bound} if bound else {"vmin": 0.0, "vmax": 1.0}
        image = ax.imshow(values, aspect="auto", cmap=cmap, **kwargs)
        ax.set_yticks(range(4), list("ACGT"))
        fig.colorbar(image, ax=ax, label=label, fraction=0.04)
    axes[-1].set_xticks(range(length), list(consensus))
    axes[-1].set_xlabel("consensus position")
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def histogram(values: list[float], xlabel: str, title: str, path: str | Path, bins: int = 20) -> Path:
    """Histogram with a line at zero (PNG)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
    ax.hist(values, bins=bins, color="#4477aa")
    ax.axvline(0.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def similarity_boxplot(groups: list[tuple[str, np.ndarray, np.ndarray]], title: str, path: str | Path) -> Path:
    """Matched vs unmatched cosine similarity, one pair of boxes per model (PNG)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(2.2 + 1.8 * len(groups), 3.6), dpi=120)
    data, labels = [], []
    for name, matched, unmatched in groups:
        data += [matched, unmatched]
        labels += [f"{name}\nmatched", f"{name}\nunmatched"]
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=7)
    ax.set_ylabel("cosine similarity after the map")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def learning_curve(epochs: list[dict], path: str | Path, title: str) -> Path:
    """Training loss and the dev metrics per epoch (PNG)."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2), dpi=120)
    xs = [e["epoch"] for e in epochs]
    left.plot(xs, [e["train_loss"] for e in epochs], marker="o")
    left.set_xlabel("epoch")
    left.set_ylabel("training loss")
    for key in sorted({k for e in epochs for k in e if k.startswith("dev_")}):
        right.plot(xs, [e[key] for e in epochs], marker="o", label=key.removeprefix("dev_"))
    right.set_xlabel("epoch")
    right.set_ylabel("dev")
    right.legend(fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def contact_f1_figure(metrics, path: str | Path, title: str) -> Path:
    """F1 per cutoff for each predictor (bars, SEM over folds) beside the random-guess F1 (black
    dashes), from `obte bench contacts`' metrics table (columns predictor, cutoff, f1, f1_sem, random_f1)."""
    plt = _pyplot()
    predictors = list(dict.fromkeys(metrics["predictor"]))
    cutoffs = sorted(set(metrics["cutoff"]))
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(cutoffs) * max(len(predictors), 2) / 2, 3.6), dpi=120)
    width = 0.8 / len(predictors)
    for k, name in enumerate(predictors):
        rows = metrics[metrics["predictor"] == name].set_index("cutoff").loc[cutoffs]
        xs = np.arange(len(cutoffs)) + (k - (len(predictors) - 1) / 2) * width
        ax.bar(xs, rows["f1"], width, yerr=rows["f1_sem"], capsize=3, label=name)
    random = metrics.groupby("cutoff")["random_f1"].first().loc[cutoffs]
    for x, value in enumerate(random):
        ax.plot(
            [x - 0.42, x + 0.42],
            [value, value],
            color="black",
            linestyle="--",
            linewidth=1,
            label="random guess (all positive)" if x == 0 else None,
        )
    ax.set_xticks(range(len(cutoffs)), [f"{c:g} Å" for c in cutoffs])
    ax.set_ylabel("F1 (out-of-fold)")
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def score_grid(matrix, path: str | Path, title: str) -> Path:
    """Rows (tasks) × columns (models) of scores as an annotated heat map (PNG); ``matrix`` is a DataFrame."""
    plt = _pyplot()
    values = matrix.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * values.shape[1], 1.0 + 0.32 * values.shape[0]), dpi=120)
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    for (row, column), value in np.ndenumerate(values):
        text = "–" if value != value else f"{value:.3f}"
        ax.text(
            column,
            row,
            text,
            ha="center",
            va="center",
            fontsize=7,
            color="white" if value < np.nanmean(values) else "black",
        )
    ax.set_xticks(range(values.shape[1]), [str(c) for c in matrix.columns], fontsize=7, rotation=20, ha="right")
    ax.set_yticks(range(values.shape[0]), [str(i) for i in matrix.index], fontsize=7)
    fig.colorbar(image, ax=ax, fraction=0.04)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)

"""Figures that commands write next to their tables (matplotlib, no display needed)."""

from __future__ import annotations

import textwrap
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
    ax.set_title(_wrapped(title, 5), fontsize=9)
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return _save(fig, path)


_CHAR_INCHES = 0.075  # about the width of one character at 8 pt, DejaVu Sans


def _wrapped(text: str, width_inches: float, fontsize: float = 9) -> str:
    """``text`` broken into lines that fit ``width_inches`` at ``fontsize`` (a title never runs off the figure)."""
    chars = max(12, int(width_inches / (_CHAR_INCHES * fontsize / 8)))
    return "\n".join(textwrap.fill(line, chars) for line in text.splitlines())


def _short_number(value: float) -> str:
    """A bar's value as a label narrower than its bar: 38,340 rather than 38339.979; 50.2; 0.388."""
    if value != value:
        return "NA"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"


def method_comparison(
    labels: list[str], panels: list[tuple[str, list[float], list[float]]], title: str, path: str | Path
) -> Path:
    """One bar panel per metric (``(ylabel, means, sems)``), methods side by side, SEM error bars (PNG).

    A panel is as wide as its labels need: bars get room for their longest label line (labels that would
    still not fit side by side are slanted, so that no two touch), and panels too wide to sit side by side
    are stacked, sharing the labels under the last one."""
    plt = _pyplot()
    n = len(labels)
    widest = int(0.9 / _CHAR_INCHES)  # characters of a label line under a bar of the widest slot, 1 inch
    labels = ["\n".join(textwrap.fill(line, widest) for line in label.splitlines()) for label in labels]
    longest = max((len(line) for label in labels for line in label.splitlines()), default=1)
    slot = min(max(0.6, longest * _CHAR_INCHES + 0.1), 1.0)  # inches per bar
    panel_width = max(3.2, 0.9 + slot * n)
    slanted = longest * _CHAR_INCHES + 0.1 > slot
    stacked = len(panels) > 1 and panel_width * len(panels) > 9
    rows, columns = (len(panels), 1) if stacked else (1, len(panels))
    height = (2.6 * len(panels) if stacked else 3.2) + 0.4 + 0.4 * slanted
    fig, axes = plt.subplots(
        rows, columns, figsize=(panel_width * columns, height), dpi=120, squeeze=False, sharex=stacked
    )
    colours = ["#4477aa", "#bbbbbb", "#ee6677", "#228833", "#ccbb44"]
    for ax, (ylabel, means, sems) in zip(axes.flat, panels):
        spread = sems if any(e > 0 for e in sems) else None  # no error bars where none was measured
        ax.bar(range(n), means, yerr=spread, capsize=4, color=[colours[i % len(colours)] for i in range(n)])
        for x, (m, e) in enumerate(zip(means, sems)):
            ax.annotate(
                _short_number(m),
                (x, m + (e if e == e else 0)),
                ha="center",
                va="bottom",
                fontsize=7,
                xytext=(0, 2),
                textcoords="offset points",
            )
        ax.set_xticks(range(n), labels, fontsize=8, rotation=30 if slanted else 0, ha="right" if slanted else "center")
        ax.set_ylabel(textwrap.fill(ylabel, 28), fontsize=8)
        ax.margins(y=0.12)  # room for the value over the tallest bar
    fig.suptitle(_wrapped(title, panel_width * columns), fontsize=9)
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
    fig.suptitle(_wrapped(title, 8), fontsize=9)
    return _save(fig, path)


def saturation_figure(
    ddg: np.ndarray, model_pfm: np.ndarray, reference_pfm: np.ndarray, consensus: str, title: str, path: str | Path
) -> Path:
    """ΔΔG of every substitution as a base × position heat map, over the sequence logos (information content,
    logomaker) of the model-derived PFM and, beside it on the same positions, the JASPAR matrix (PNG)."""
    import logomaker
    import pandas as pd

    plt = _pyplot()
    length = len(consensus)
    width = max(5.0, 0.35 * length + 1.8)
    fig, axes = plt.subplots(3, 1, figsize=(width, 6.0), dpi=120, sharex=True, height_ratios=[1.0, 1.1, 1.1])
    bound = max(float(np.abs(ddg).max()), 1e-6)
    image = axes[0].imshow(ddg.T, aspect="auto", cmap="RdBu_r", vmin=-bound, vmax=bound)
    axes[0].set_yticks(range(4), list("ACGT"))
    axes[0].set_ylabel("substituted base", fontsize=8)
    bar = fig.colorbar(image, cax=axes[0].inset_axes((1.01, 0.0, 0.02, 1.0)))  # no room taken: panels stay aligned
    bar.set_label("ΔΔG (kcal/mol)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    # The JASPAR logo on the full 0-2 bits; the model's on its own scale (its ticks say so): a weakly specific
    # model's ΔΔG of a tenth of a kcal/mol gives a few hundredths of a bit, invisible at 2 bits.
    for ax, pfm, label, full in (
        (axes[1], model_pfm, "model-derived PFM", False),
        (axes[2], reference_pfm, "JASPAR PFM", True),
    ):
        frame = pd.DataFrame(np.asarray(pfm, dtype=float), columns=list("ACGT"))
        frame = frame.div(frame.sum(axis=1), axis=0)  # rows of exactly 1, as the transform wants
        bits = logomaker.transform_matrix(frame, from_type="probability", to_type="information")
        logomaker.Logo(bits, ax=ax, color_scheme="classic", width=0.9)
        top = float(bits.sum(axis=1).max())
        ax.set_ylim(0, 2.0 if full else min(2.0, max(top * 1.15, 1e-3)))
        ax.set_ylabel(f"{label}\n(bits)", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    axes[-1].set_xticks(range(length), list(consensus))
    axes[-1].set_xlim(-0.5, length - 0.5)
    axes[-1].set_xlabel("consensus position (consensus base below)")
    fig.suptitle(_wrapped(title, width), fontsize=9)
    return _save(fig, path)


def histogram(values: list[float], xlabel: str, title: str, path: str | Path, bins: int = 20) -> Path:
    """Histogram with a line at zero (PNG); counts at whole numbers."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
    ax.hist(values, bins=bins, color="#4477aa")
    ax.axvline(0.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(_wrapped(title, 4.5), fontsize=9)
    return _save(fig, path)


def similarity_boxplot(groups: list[tuple[str, np.ndarray, np.ndarray]], title: str, path: str | Path) -> Path:
    """Matched vs unmatched cosine similarity, one pair of boxes per model (PNG). ``name`` is what the boxes are
    labelled with: a model's name, not its path (a long name is wrapped under its two boxes)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(2.2 + 1.8 * len(groups), 3.8), dpi=120)
    data = []
    for k, (name, matched, unmatched) in enumerate(groups):
        data += [matched, unmatched]
        ax.text(2 * k + 1.5, -0.16, textwrap.fill(str(name), 24), transform=ax.get_xaxis_transform(), ha="center",
                va="top", fontsize=7)  # fmt: skip
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(data) + 1), ["matched", "unmatched"] * len(groups), fontsize=7)
    ax.set_ylabel("cosine similarity after the map")
    ax.set_title(_wrapped(title, 2.2 + 1.8 * len(groups)), fontsize=9)
    return _save(fig, path)


def learning_curve(epochs: list[dict], path: str | Path, title: str) -> Path:
    """Training loss and the dev metrics per epoch (PNG), ticks at whole epochs."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2), dpi=120)
    xs = [e["epoch"] for e in epochs]
    left.plot(xs, [e["train_loss"] for e in epochs], marker="o")
    left.set_xlabel("epoch")
    left.set_ylabel("training loss")
    for ax in (left, right):  # epochs are whole numbers: no tick at 1.5
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for key in sorted({k for e in epochs for k in e if k.startswith("dev_")}):
        right.plot(xs, [e[key] for e in epochs], marker="o", label=key.removeprefix("dev_"))
    right.set_xlabel("epoch")
    right.set_ylabel("dev")
    right.legend(fontsize=8, frameon=False)
    fig.suptitle(_wrapped(title, 8), fontsize=9)
    return _save(fig, path)


def contact_f1_figure(metrics, path: str | Path, title: str) -> Path:
    """F1 per cutoff for each predictor (bars, SEM over folds) beside the random-guess F1 (black
    dashes), from `obte bench contacts`' metrics table (columns predictor, cutoff, f1, f1_sem, random_f1)."""
    plt = _pyplot()
    predictors = list(dict.fromkeys(metrics["predictor"]))
    cutoffs = sorted(set(metrics["cutoff"]))
    fig, ax = plt.subplots(figsize=(3.2 + 1.1 * len(cutoffs) * max(len(predictors), 2) / 2, 3.6), dpi=120)
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
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, not on them
    ax.set_title(_wrapped(title, fig.get_figwidth()), fontsize=9)
    return _save(fig, path)


def score_grid(panels: list[tuple[str, object]], path: str | Path, title: str) -> Path:
    """Tasks × models scores as annotated heat maps, one panel per metric (``(metric label, DataFrame)`` pairs),
    each with its own colour scale and colour bar: an MCC and a Spearman ρ are not one quantity (PNG). The
    panels share the model columns (a score a model lacks is drawn as –)."""
    plt = _pyplot()
    columns = list(dict.fromkeys(str(c) for _, frame in panels for c in frame.columns))
    frames = [(label, frame.rename(columns=str).reindex(columns=columns)) for label, frame in panels]
    heights = [max(len(frame), 1.6) for _, frame in frames]  # a one-task panel keeps room for its colour bar
    longest_task = max((len(str(i)) for _, frame in frames for i in frame.index), default=8)
    width = max(6.0, 0.9 + longest_task * _CHAR_INCHES * 7 / 8 + 1.5 * len(columns) + 1.0)
    title = _wrapped(title, width)
    longest_model = max((len(c) for c in columns), default=8)
    height = 0.35 * sum(heights) + 0.45 * len(frames) + 0.2 * title.count("\n") + 0.6 + 0.04 * longest_model
    fig, axes = plt.subplots(
        len(frames), 1, figsize=(width, height), dpi=120, squeeze=False, sharex=True, height_ratios=heights
    )
    for ax, (label, frame) in zip(axes[:, 0], frames):
        values = frame.to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
        if high - low < 1e-9:
            low, high = low - 0.5, high + 0.5
        image = ax.imshow(values, cmap="viridis", aspect="auto", vmin=low, vmax=high)
        for (row, column), value in np.ndenumerate(values):
            ax.text(
                column,
                row,
                "–" if value != value else f"{value:.3f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if value != value or value < (low + high) / 2 else "black",
            )
        ax.set_yticks(range(len(frame)), [str(i) for i in frame.index], fontsize=7)
        bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
        bar.set_label(label, fontsize=8)
        bar.ax.tick_params(labelsize=7)
    axes[-1, 0].set_xticks(range(len(columns)), columns, fontsize=7, rotation=20, ha="right")
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)

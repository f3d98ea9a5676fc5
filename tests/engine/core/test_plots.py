"""Every figure obte writes (obte_cli/engine/core/plots.py), rendered from small synthetic inputs shaped as its
callers give them (#33 §5): each PNG has a sensible size and is not blank, no title or label runs off the figure,
no two tick labels of an axis overlap, epochs and counts are ticked at whole numbers, and the task grid gives each
metric its own colour scale."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from obte_cli.engine.core import plots

CTCF_CONSENSUS = "TGGCCACCAGGGGGCGCTA"
INSTALL_PATH = "/root/venv/lib/python3.11/site-packages/obte_cli/share/models/obte1_omni_t6_6M_DEB12"


def _texts(fig, renderer):
    """(what, text artist) of everything written on the figure that must lie inside it."""
    found = [("suptitle", t) for t in fig.texts]
    for k, ax in enumerate(fig.axes):
        found += [(f"axes {k} title", ax.title), (f"axes {k} xlabel", ax.xaxis.label)]
        found += [(f"axes {k} ylabel", ax.yaxis.label), *((f"axes {k} text", t) for t in ax.texts)]
        found += [(f"axes {k} x tick", t) for t in _tick_labels(ax.xaxis)]
        found += [(f"axes {k} y tick", t) for t in _tick_labels(ax.yaxis)]
        legend = ax.get_legend()
        if legend is not None:
            found += [(f"axes {k} legend", t) for t in legend.get_texts()]
    return [(what, t) for what, t in found if t.get_visible() and t.get_text().strip()]


def _tick_labels(axis):
    low, high = sorted(axis.get_view_interval())
    return [
        tick.label1
        for tick in axis.get_major_ticks()
        if low - 1e-9 <= tick.get_loc() <= high + 1e-9 and tick.label1.get_visible() and tick.label1.get_text()
    ]


def layout_problems(fig) -> list[str]:
    """Text outside the figure (a clipped title) and overlapping x tick labels, as the saved PNG will show."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    problems = []
    for what, text in _texts(fig, renderer):
        box = text.get_window_extent(renderer)
        if box.x0 < -1 or box.y0 < -1 or box.x1 > width + 1 or box.y1 > height + 1:
            problems.append(f"{what} {text.get_text()!r} runs off the figure")
    for k, ax in enumerate(fig.axes):
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _tick_labels(ax.xaxis)]
        for (a, box_a), (b, box_b) in zip(boxes, boxes[1:]):
            if box_a.overlaps(box_b):
                problems.append(f"axes {k}: x tick labels {a!r} and {b!r} overlap")
    return problems


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """name → (PNG path, layout problems, whole-number x ticks per axes, y labels of every axes)."""
    out = tmp_path_factory.mktemp("plots")
    seen: dict[str, tuple] = {}
    original = plots._save

    def checking_save(fig, path):
        fig.tight_layout()
        ticks = []
        for ax in fig.axes:
            low, high = sorted(ax.get_xlim())
            ticks.append([float(t) for t in ax.get_xticks() if low <= t <= high])
        seen[Path(path).name] = (layout_problems(fig), ticks, [ax.get_ylabel() for ax in fig.axes])
        return original(fig, path)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plots, "_save", checking_save)
        _render_all(out)
    return {name: (out / name, *checks) for name, checks in seen.items()}


def _render_all(out: Path) -> None:
    from obte_cli.engine.affinity.report import scatter_title
    from obte_cli.engine.bench.tasks import FRESH, METRIC_LABELS, PRETRAINED, score_matrix

    rng = np.random.default_rng(0)
    # finetune affinity / bench pronab: scatter.png, with the three-line title of affinity.report
    measured = rng.normal(-9.0, 1.5, 300)
    folds = pd.DataFrame({"pcc": [0.35, 0.42, 0.39], "mae": [1.6, 1.7, 1.5]})
    plots.prediction_scatter(
        measured, measured + rng.normal(0, 1.6, 300), scatter_title("obte ΔG, 3-fold CV by protein", folds),
        out / "scatter.png",
    )  # fmt: skip
    plots.method_comparison(  # bench pronab
        ["obte", "composition+GBM"],
        [("PCC (mean ± SEM over folds)", [0.31, 0.39], [0.03, 0.02]), ("MAE, kcal/mol", [1.7, 1.6], [0.1, 0.08])],
        "ProNAB ΔG, 10-fold CV grouped by protein (5231 test rows)",
        out / "bench.png",
    )
    # bench prep and bench throughput: the labels commands/bench.py gives them
    prep = [("biopython SeqIO.parse", 1, 52.1), ("obte prep", 1, 20.4), ("obte prep", 2, 18.2)]
    plots.method_comparison(
        [f"{m}\n×{w}" if w > 1 else m for m, w, _ in prep],
        [("input MB/s per worker", [r for *_, r in prep], [0.0] * 3)],
        "prep throughput, 12.3 MB input",
        out / "bench-prep.png",
    )
    shapes = [
        (s, lay, i) for s in ("tiny", "w512") for lay in ("full", "packed") for i in ("obte", "HF EsmForMaskedLM")
    ]
    plots.method_comparison(
        [f"{s} {lay}\n{i.split()[0]}" for s, lay, i in shapes],
        [
            ("training tokens/s (real tokens)", list(rng.uniform(1e4, 5e4, 8)), [0.0] * 8),
            ("MFU (of measured matmul peak)", list(rng.uniform(0.1, 0.4, 8)), [0.0] * 8),
        ],
        "MLM training, 8 × 512 tokens, vocab 4096, 812 GFLOP/s peak",
        out / "bench-throughput.png",
    )
    records = [
        {"tokens": t * 16384, "loss": 3.5 - np.log1p(t) / 3, "protein_accuracy": 0.05 + t / 2000,
         "nucleic_accuracy": 0.3 + t / 2000, "masked_accuracy": 0.2}
        for t in range(1, 201)
    ]  # fmt: skip
    records[-1]["heldout_protein_accuracy"] = 0.14
    plots.training_curves(records, out / "loss.png", "obte pretrain: tiny", {"protein": 0.1, "nucleic": 0.28})
    plots.saturation_figure(  # scan-jaspar --saturation
        rng.normal(0.3, 0.4, (19, 4)),
        rng.dirichlet(np.ones(4), 19),
        rng.dirichlet(np.ones(4) * 0.3, 19),
        CTCF_CONSENSUS,
        "MA0139.1 CTCF: saturation ΔΔG; model vs JASPAR column r = 0.12",
        out / "MA0139.1.png",
    )
    plots.histogram(  # bench jaspar
        list(rng.normal(0.1, 0.3, 120)),
        "mean ΔΔG per TF (kcal/mol)",
        "JASPAR specificity: mean ΔΔG 0.100 ± 0.030, 62% of 120 TFs > 0",
        out / "bench-jaspar.png",
    )
    plots.similarity_boxplot(  # embed probe-joint, with the model's name as joint_probe gives it
        [
            (Path(INSTALL_PATH).name, rng.normal(0.6, 0.1, 50), rng.normal(0.1, 0.1, 500)),
            ("random-init control", rng.normal(0.3, 0.1, 50), rng.normal(0.2, 0.1, 500)),
        ],
        "gene↔protein probe, rank 16, 60 held-out pairs",
        out / "probe.png",
    )
    plots.learning_curve(  # finetune classify/residue: three epochs
        [{"epoch": e, "train_loss": 1 / e, "dev_mcc": 0.1 * e, "dev_f1": 0.2 * e} for e in (1, 2, 3)],
        out / "learning_curve.png",
        "finetune classification (classification): train.csv",
    )
    contacts = pd.DataFrame(
        [
            {"predictor": p, "cutoff": c, "f1": rng.uniform(0.2, 0.6), "f1_sem": 0.03, "random_f1": c / 40}
            for p in ("head", "attention", "per-amino-acid") for c in (4.0, 6.0, 8.0)
        ]
    )  # fmt: skip
    plots.contact_f1_figure(contacts, out / "contacts_f1.png", "contacts: 120 protein chains, 5-fold CV by sequence")
    tasks = pd.DataFrame(
        [
            {"task": task, "metric": metric, "model": model, "init": init, "score": score / (2 if init == FRESH else 1)}
            for task, metric, score in (
                ("gue/prom_300_all", "mcc", 0.4), ("gue/tf_0", "mcc", 0.3), ("ss3/flip", "q3", 0.6),
                ("gb1/one_vs_rest", "spearman", -0.2), ("homology/scope40-fold", "accuracy", 0.1),
            )
            for model in ("obte1_omni_t6_6M_DEB12", "omnibiote-small")
            for init in (PRETRAINED, FRESH)
        ]
    )  # fmt: skip
    panels = [(METRIC_LABELS[m], score_matrix(tasks[tasks["metric"] == m])) for m in dict.fromkeys(tasks["metric"])]
    plots.score_grid(
        panels, out / "tasks.png", "single-omic tasks (100,000 training tokens per epoch, ≤ 2,000 test examples)"
    )


FIGURES = [
    "scatter.png",
    "bench.png",
    "bench-prep.png",
    "bench-throughput.png",
    "loss.png",
    "MA0139.1.png",
    "bench-jaspar.png",
    "probe.png",
    "learning_curve.png",
    "contacts_f1.png",
    "tasks.png",
]


def test_every_figure_function_is_rendered_here(rendered):
    writers = {
        name
        for name, function in inspect.getmembers(plots, inspect.isfunction)
        if not name.startswith("_") and "_save(" in inspect.getsource(function)
    }
    assert writers == {
        "prediction_scatter", "method_comparison", "training_curves", "saturation_figure", "histogram",
        "similarity_boxplot", "learning_curve", "contact_f1_figure", "score_grid",
    }, "a new figure: render it in _render_all"  # fmt: skip
    assert sorted(rendered) == sorted(FIGURES)


@pytest.mark.parametrize("name", FIGURES)
def test_a_figure_is_a_readable_png(rendered, name):
    from PIL import Image

    path, problems, _, _ = rendered[name]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 15_000
    with Image.open(path) as image:
        width, height = image.size
        grey = np.asarray(image.convert("L"), dtype=float)
    assert 400 <= width <= 2400 and 300 <= height <= 2000, (width, height)
    assert grey.std() > 10 and (grey < 250).mean() > 0.03, "blank"  # drawn on, not an empty canvas
    assert not problems, problems


def test_epochs_and_counts_are_whole_numbers(rendered):
    _, _, ticks, _ = rendered["learning_curve.png"]
    assert all(t == int(t) for axis in ticks for t in axis) and [1.0, 2.0, 3.0] in ticks


def test_each_metric_of_the_task_grid_has_its_own_colour_scale(rendered):
    _, _, _, ylabels = rendered["tasks.png"]
    assert {"MCC", "Q3 (per residue)", "Spearman ρ", "accuracy"} <= set(ylabels)


def test_the_probe_labels_its_boxes_with_the_model_name(rendered):
    from obte_cli.engine.embedding.joint_probe import JointProbe

    assert JointProbe(model=Path(INSTALL_PATH)).name == "obte1_omni_t6_6M_DEB12"
    assert JointProbe(model_gene=Path("/a/genes"), model_protein=Path("/b/proteins")).name == "genes + proteins"


def test_the_layout_check_can_fail():
    """A title wider than its figure and two long labels under neighbouring bars are caught."""
    plt = plots._pyplot()
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.bar([0, 1], [1, 2])
    ax.set_xticks([0, 1], ["a long label under a bar", "another long label"])
    ax.set_title("a title far too long for a figure three inches wide, as tasks.png had")
    problems = layout_problems(fig)
    plt.close(fig)
    assert any("runs off the figure" in p for p in problems) and any("overlap" in p for p in problems)

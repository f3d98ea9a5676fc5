"""`obte bench contacts`: out-of-fold contact F1 of every predictor beside the random-guess F1, on structures.

Sites are every protein chain of the structures with their nucleic-acid chains (as `obte contacts labels
--per-chain`), kept only where they fit the first backbone's context. They are cross-validated in folds
grouped by protein sequence, the same folds for every predictor (:mod:`obte_cli.engine.contacts.cv`): the
per-amino-acid ``propensity`` baseline once, then each backbone with each model-based method. Each fold's
F1 uses the threshold fitted on its training folds. :func:`run_contacts_bench` does it all; nothing here
prints: progress goes through the callbacks of :class:`ContactBenchReport`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from obte_cli.engine.contacts.cv import (
    METHODS,
    backbone_loader,
    contact_metrics,
    cross_validate_contacts,
    fold_table,
    site_folds,
)
from obte_cli.engine.contacts.fitting import ProbeSettings
from obte_cli.engine.contacts.io import fitting_sites, labelled_sites, structure_files
from obte_cli.engine.contacts.sites import ContactSite
from obte_cli.engine.core.directories import output_directory
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.plots import contact_f1_figure
from obte_cli.engine.core.progress import ProgressFactory, no_progress
from obte_cli.engine.core.tables import write_tsv
from obte_cli.engine.finetuning.trainer import FinetuneSettings

CUTOFFS = (4.0, 6.0, 8.0)


def _ignore(*args) -> None:
    return None


@dataclass
class ContactBenchReport:
    """How the bench tells its caller what it is doing (the engine itself is silent)."""

    skipped: Callable[[str, str], None] = _ignore  # (structure or site, reason), once per one left out
    loaded: Callable[[list[ContactSite], int, int], None] = _ignore  # (sites, structure files, left out)
    run_started: Callable[[str], None] = _ignore  # (predictor label)
    run_done: Callable[[pd.DataFrame], None] = _ignore  # that predictor's rows of the metrics table
    progress: ProgressFactory = no_progress  # (total, label): the folds of every predictor, as each ends


@dataclass
class ContactBench:
    """What `obte bench contacts` compares: backbones × model-based methods, and the propensity baseline."""

    backbones: list[Path]
    methods: tuple[str, ...] = METHODS
    folds: int = 5
    epochs: int = 4  # of the head; the probe trains 3× as many over single sites (ProbeSettings.alongside)
    max_residues: int = 0  # skip longer protein chains (0: keep all; long chains are cut to the context)
    context: int | None = None  # read up to this many tokens (None: each backbone's own)
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def runs(self) -> list[tuple[Path | None, str]]:
        """(backbone or None, method) in the order they run: the baseline first, each method once."""
        methods = list(dict.fromkeys(self.methods))
        runs: list[tuple[Path | None, str]] = [(None, "propensity")] if "propensity" in methods else []
        return runs + [(b, m) for b in self.backbones for m in methods if m != "propensity"]


def bench_sites(files: list[Path], bench: ContactBench, report: ContactBenchReport) -> list[ContactSite]:
    """The labelled sites of the structure ``files`` that the first backbone can read."""
    sites, skipped = labelled_sites(files, bench.max_residues)
    first, first_tokenizer = backbone_loader(bench.backbones[0], bench.context)()
    sites, too_long = fitting_sites(sites, first_tokenizer, first.config.max_positions)
    skipped += too_long
    if len({s.protein for s in sites}) < bench.folds:
        raise InputError(f"{len({s.protein for s in sites})} distinct protein chains, fewer than --folds {bench.folds}")
    for name, reason in skipped:
        report.skipped(name, reason)
    report.loaded(sites, len(files), len(skipped))
    return sites


def run_contacts_bench(
    structures: list[Path], out: Path, bench: ContactBench, report: ContactBenchReport | None = None
) -> pd.DataFrame:
    """The bench (see module docstring): writes metrics.tsv, folds.tsv and contacts_f1.png to ``out`` and
    returns the metrics (one row per predictor and cutoff)."""
    report = report or ContactBenchReport()
    out = Path(out)
    files = structure_files(structures)  # a missing structure is an error before the output directory is made
    output_directory(out)  # now, not after the cross-validation
    sites = bench_sites(files, bench, report)
    settings = FinetuneSettings(epochs=bench.epochs, batch_size=8, seed=bench.seed)
    probe_settings = ProbeSettings.alongside(settings)
    tables = []
    with report.progress(len(bench.runs()) * bench.folds, "folds") as advance:
        for backbone_dir, method in bench.runs():
            label = method if backbone_dir is None else f"{Path(backbone_dir).name} {method}"
            report.run_started(label)
            backbone = None if backbone_dir is None else backbone_loader(backbone_dir, bench.context)
            cv = cross_validate_contacts(
                backbone, sites, CUTOFFS, bench.folds, settings, method, bench.device,
                on_fold=lambda fold, folds: advance(1) if fold else None,  # a fold starts: the one before ended
                probe_settings=probe_settings,
            )  # fmt: skip
            advance(1)  # the last fold
            table = contact_metrics(cv, sites)
            table.insert(0, "predictor", label)
            table.insert(1, "backbone", "" if backbone_dir is None else str(backbone_dir))
            tables.append(table)
            report.run_done(table)
    metrics = pd.concat(tables, ignore_index=True)
    write_tsv(metrics, out / "metrics.tsv")
    write_tsv(fold_table(sites, site_folds(sites, bench.folds, bench.seed)), out / "folds.tsv")
    contact_f1_figure(
        metrics, out / "contacts_f1.png", f"contacts: {len(sites)} protein chains, {bench.folds}-fold CV by sequence"
    )
    return metrics

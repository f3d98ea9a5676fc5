"""What `obte model info` says about a ΔG model: an ensemble directory (``ensemble.json``, what `obte
finetune affinity` writes; the bundled ``share/models/affinity``) or a single composition model. The model is
loaded first (every member checked), then described from its manifest, its members and the cross-validation
metrics the run left beside them (``metrics.tsv``)."""

from __future__ import annotations

import math
from pathlib import Path

from obte_cli.engine.affinity.composition_model import is_composition_model
from obte_cli.engine.affinity.ensemble import ENSEMBLE_FILE, TransformerMember, load_affinity_model
from obte_cli.engine.model.description import card_title, training_record

METRICS_FILE = "metrics.tsv"


def is_affinity_model_directory(directory: str | Path) -> bool:
    """An ensemble directory or a composition model (which have no obte model ``config.json`` of their own)."""
    return (Path(directory) / ENSEMBLE_FILE).is_file() or is_composition_model(directory)


def _metrics(directory: Path):
    """(the run's ``metrics.tsv`` indexed by fold, the number of folds), or None where there is none readable."""
    import pandas as pd

    path = directory / METRICS_FILE
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path, sep="\t", dtype={"fold": str}).set_index("fold")
        summary = [float(table.loc[row, metric]) for row in ("mean", "sem") for metric in ("pcc", "mae")]
    except (KeyError, ValueError, OSError, pd.errors.ParserError):
        return None  # a metrics.tsv of another layout: nothing to report, the model itself is fine
    if not all(math.isfinite(value) for value in summary):
        return None
    return table, int((~table.index.isin(["mean", "sem", "pooled"])).sum())


def cross_validated_mae(directory: str | Path) -> float | None:
    """The ΔG model's MAE (kcal/mol, mean over the folds of the cross-validation that made it, on proteins it did
    not train on), from its ``metrics.tsv``; None where the directory has none."""
    found = _metrics(Path(directory))
    return None if found is None else float(found[0].loc["mean", "mae"])


def _cross_validation(directory: Path) -> list[tuple[str, object]]:
    """``cv_pcc`` and ``cv_mae_kcal_mol`` (mean ± SEM over folds) from the run's ``metrics.tsv``, if any."""
    found = _metrics(directory)
    if found is None:
        return []
    table, folds = found
    return [
        (
            f"cv_{metric}" + ("_kcal_mol" if metric == "mae" else ""),
            f"{float(table.loc['mean', metric]):.3f} ± {float(table.loc['sem', metric]):.3f} (mean ± SEM over "
            f"{folds} folds, proteins unseen in training)",
        )
        for metric in ("pcc", "mae")
    ]


def describe_affinity_model(directory: str | Path) -> list[tuple[str, object]]:
    """Rows describing a ΔG ensemble or composition model (loaded and checked first)."""
    directory = Path(directory)
    ensemble = load_affinity_model(directory)
    is_ensemble = (directory / ENSEMBLE_FILE).is_file()
    metadata = ensemble.metadata or {}
    rows: list[tuple[str, object]] = [
        ("path", str(directory)),
        ("name", directory.resolve().name),
        ("description", card_title(directory) or "NA"),
        ("kind", f"ΔG ensemble of {len(ensemble.members)} models" if is_ensemble else "ΔG model"),
        ("head", "affinity"),
        ("target", "dG_kcal_mol"),
        ("model", ensemble.kind),
        ("members", len(ensemble.members)),
    ]
    for key in ("method", "backbone", "data", "readout", "seed", "homology_threshold"):
        if metadata.get(key) not in (None, ""):
            rows.append((key, metadata[key]))
    first = ensemble.members[0]
    if isinstance(first, TransformerMember):
        arch = first.loaded.model.config
        trained, how = training_record(first.loaded.metadata or {})
        rows += [
            ("trained", trained),
            ("training", how),
            ("width", arch.width),
            ("n_layers", arch.n_layers),
            ("n_heads", arch.n_heads),
            ("max_positions", arch.max_positions),
            ("tokenizer", first.loaded.tokenizer.kind),
            ("parameters_per_member", first.loaded.model.num_parameters(non_embedding=False)),
        ]
    else:
        rows += [("trained", "true"), ("training", "fitted by `obte finetune affinity --method composition`")]
    return rows + _cross_validation(directory)

"""The composition + gradient-boosting ΔG baseline."""

import numpy as np
import pandas as pd

from obte_cli.engine.affinity.baseline import (
    baseline_cross_validation,
    composition_features,
    feature_names,
)


def _table(rng, n):
    rows = []
    for _ in range(n):
        length = int(rng.integers(12, 30))
        gc = rng.uniform(0.1, 0.9)
        na = "".join(rng.choice(list("GC")) if rng.random() < gc else rng.choice(list("AT")) for _ in range(length))
        protein = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), size=int(rng.integers(50, 90))))
        rows.append({"protein": protein, "nucleic_acid": na, "complement": "", "na_type": "DNA"})
    table = pd.DataFrame(rows)
    gc_content = table["nucleic_acid"].map(lambda s: (s.count("G") + s.count("C")) / len(s))
    table["dG"] = -6.0 - 5.0 * gc_content + rng.normal(0, 0.3, n)
    return table


def test_features_are_compositions():
    table = pd.DataFrame([{"protein": "MKKD", "nucleic_acid": "ACGU", "complement": "ACGT", "na_type": "RNA"}])
    features = dict(zip(feature_names(), composition_features(table)[0]))
    assert len(feature_names()) == composition_features(table).shape[1]
    assert np.isclose(features["protein_frac_K"], 0.5) and np.isclose(features["protein_net_charge"], 0.25)
    assert np.isclose(sum(v for k, v in features.items() if k.startswith("na_frac_") and len(k) == 9), 1.0)
    assert np.isclose(features["na_frac_T"], 0.25)  # U counted as T, both strands
    assert features["na_is_rna"] == 1.0 and features["na_is_double"] == 1.0
    assert np.isclose(features["na_frac_CG"], 2 / 6)


def test_baseline_learns_gc_dependence_out_of_fold():
    rng = np.random.default_rng(0)
    table = _table(rng, 300)
    folds = np.arange(300) % 5
    folds[:20] = -1  # train-only rows are never predicted
    predicted = baseline_cross_validation(table, folds)
    assert np.isnan(predicted[:20]).all() and not np.isnan(predicted[20:]).any()
    r = np.corrcoef(predicted[20:], table["dG"][20:])[0, 1]
    assert r > 0.8
    shuffled = table.assign(dG=rng.permutation(table["dG"].to_numpy()))
    r_null = np.corrcoef(baseline_cross_validation(shuffled, folds)[20:], shuffled["dG"][20:])[0, 1]
    assert r_null < 0.3

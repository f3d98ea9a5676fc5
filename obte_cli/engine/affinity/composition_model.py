"""A ΔG model that reads only what the two sequences contain: `obte finetune affinity --method composition`.

Features are the composition features of the bench baseline (:mod:`obte_cli.engine.affinity.baseline`).
Two regressors read them and the prediction is their mean:

* a ridge regression on standardised features, its penalty chosen by 5-fold cross-validation grouped
  by protein inside the training rows (rows of one protein never sit on both sides of the inner split,
  so the penalty is chosen for proteins the model has not seen);
* scikit-learn's ``HistGradientBoostingRegressor`` with its defaults, the bench baseline itself.

Why it exists: on ProNAB, grouped by protein with the homology guard, this mean beats both regressors
alone and every transformer obte can train on a CPU (the table is in ``share/models/affinity/README.md``).

On disk a model is a directory of ``config.json`` (format, feature names, penalty, intercepts) and
``model.safetensors`` (scaler, ridge coefficients, and the boosted trees as flat arrays). Predictions
walk the trees in NumPy, so loading never unpickles anything; :func:`fit_composition_model` checks that
the walk reproduces scikit-learn's own predictions before a model is returned.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from obte_cli.engine.affinity.baseline import complex_composition, feature_names
from obte_cli.engine.affinity.complexes import DG_LIMIT_KCAL
from obte_cli.engine.core.errors import ModelFormatError
from obte_cli.engine.core.jsonfiles import read_json_file
from obte_cli.engine.core.outputs import write_text_atomic
from obte_cli.engine.core.safetensors_files import safetensors_write_errors
from obte_cli.engine.core.threads import one_thread

FORMAT = "obte-composition-affinity"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
RIDGE_PENALTIES = np.logspace(-1, 5, 13)  # searched by the grouped inner CV
INNER_FOLDS = 5
_TREE_FIELDS = ("feature", "threshold", "left", "right", "is_leaf", "missing_left", "value")


@dataclass
class BoostedTrees:
    """Regression trees as flat arrays; ``offsets[i]`` is where tree ``i``'s nodes start (node 0 is its root)."""

    feature: np.ndarray  # int64, split feature of each node
    threshold: np.ndarray  # float64, go left when x <= threshold
    left: np.ndarray  # int64, child indices within the tree
    right: np.ndarray
    is_leaf: np.ndarray  # bool
    missing_left: np.ndarray  # bool, where a NaN feature goes
    value: np.ndarray  # float64, the leaf values
    offsets: np.ndarray  # int64
    baseline: float  # the constant every prediction starts from

    @classmethod
    def from_sklearn(cls, model) -> BoostedTrees:
        """Copy a fitted single-output ``HistGradientBoostingRegressor``'s trees (numerical splits only)."""
        trees = [predictors[0].nodes for predictors in model._predictors]
        if not trees:
            raise ValueError("the boosted model has no trees")
        nodes = np.concatenate(trees)
        if nodes["is_categorical"].any():
            raise ValueError("categorical splits are not supported")
        sizes = [len(t) for t in trees]
        return cls(
            feature=nodes["feature_idx"].astype(np.int64),
            threshold=nodes["num_threshold"].astype(np.float64),
            left=nodes["left"].astype(np.int64),
            right=nodes["right"].astype(np.int64),
            is_leaf=nodes["is_leaf"].astype(bool),
            missing_left=nodes["missing_go_to_left"].astype(bool),
            value=nodes["value"].astype(np.float64),
            offsets=np.cumsum([0, *sizes[:-1]]).astype(np.int64),
            baseline=float(np.ravel(model._baseline_prediction)[0]),
        )

    def check(self, n_features: int) -> None:
        """ValueError unless the arrays form trees that :meth:`predict` walks to a leaf in finite steps:
        every child lies after its parent and inside its own tree, every split reads a real feature; and
        unless every threshold is finite and every leaf value and the baseline within ±DG_LIMIT_KCAL."""
        arrays = [getattr(self, name) for name in _TREE_FIELDS]
        n = len(self.value)
        if any(a.ndim != 1 or len(a) != n for a in arrays) or self.offsets.ndim != 1:
            raise ValueError("tree arrays of different shapes")
        if any(not np.issubdtype(a.dtype, np.integer) for a in (self.feature, self.left, self.right, self.offsets)):
            raise ValueError("tree indices are not integers")
        offsets = self.offsets
        if n == 0 or len(offsets) == 0 or offsets[0] != 0 or (np.diff(offsets) <= 0).any() or offsets[-1] >= n:
            raise ValueError("bad tree offsets")
        ends = np.append(offsets[1:], n)
        tree_of_node = np.repeat(np.arange(len(offsets)), ends - offsets)
        local = np.arange(n) - offsets[tree_of_node]
        size = (ends - offsets)[tree_of_node]
        inner = ~self.is_leaf.astype(bool)
        for child in (self.left, self.right):
            if ((child[inner] <= local[inner]) | (child[inner] >= size[inner])).any():
                raise ValueError("a tree's child does not follow its parent inside the tree")
        if ((self.feature[inner] < 0) | (self.feature[inner] >= n_features)).any():
            raise ValueError("a split reads a feature the model does not have")
        if not (np.isfinite(self.value).all() and math.isfinite(self.baseline)):
            raise ValueError("non-finite leaf values")
        if not np.isfinite(self.threshold).all():
            raise ValueError("non-finite split thresholds")
        if abs(self.baseline) > DG_LIMIT_KCAL or (np.abs(self.value) > DG_LIMIT_KCAL).any():
            raise ValueError(f"a baseline or leaf value beyond ±{DG_LIMIT_KCAL:g} kcal/mol")

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Sum of the trees' leaf values plus the baseline, for every row at once."""
        rows = np.arange(len(features))
        total = np.full(len(features), self.baseline)
        for start in self.offsets:
            node = np.full(len(features), start)
            while not self.is_leaf[node].all():
                inner = ~self.is_leaf[node]
                at = node[inner]
                x = features[rows[inner], self.feature[at]]
                go_left = np.where(np.isnan(x), self.missing_left[at], x <= self.threshold[at])
                node[inner] = start + np.where(go_left, self.left[at], self.right[at])
            total += self.value[node]
        return total


@dataclass
class CompositionAffinityModel:
    """Mean of a ridge regression and boosted trees on composition features; predicts ΔG in kcal/mol."""

    feature_names: list[str]
    feature_mean: np.ndarray  # the ridge's standardisation, fitted on the training rows
    feature_scale: np.ndarray
    ridge_coef: np.ndarray
    ridge_intercept: float
    ridge_penalty: float
    trees: BoostedTrees
    metadata: dict

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # a non-finite result is the caller's error
            ridge = (features - self.feature_mean) / self.feature_scale @ self.ridge_coef + self.ridge_intercept
            return (ridge + self.trees.predict(features)) / 2

    def predict(self, proteins: list[str], nucleic_acids: list[str], complements: list[str], na_types: list[str]):
        rows = [complex_composition(*r) for r in zip(proteins, nucleic_acids, complements, na_types)]
        return self.predict_features(np.asarray(rows, dtype=np.float64).reshape(len(rows), len(self.feature_names)))

    def save(self, directory: str | Path) -> Path:
        from safetensors.numpy import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {
            "feature_mean": self.feature_mean,
            "feature_scale": self.feature_scale,
            "ridge_coef": self.ridge_coef,
            "tree_offsets": self.trees.offsets,
            **{f"tree_{name}": getattr(self.trees, name) for name in _TREE_FIELDS},
        }
        tensors = {k: np.ascontiguousarray(v.astype(np.uint8) if v.dtype == bool else v) for k, v in tensors.items()}
        with safetensors_write_errors(directory / WEIGHTS_FILE):
            save_file(tensors, str(directory / WEIGHTS_FILE))
        config = {
            "format": FORMAT,
            "task": "affinity",
            "target": "dG_kcal_mol",
            "features": self.feature_names,
            "ridge_penalty": self.ridge_penalty,
            "ridge_intercept": self.ridge_intercept,
            "trees_baseline": self.trees.baseline,
            "metadata": self.metadata,
        }
        write_text_atomic(directory / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
        return directory


def is_composition_model(directory: str | Path) -> bool:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        return False
    config = read_json_file(path, f"{directory}: cannot read {CONFIG_FILE}")
    return isinstance(config, dict) and config.get("format") == FORMAT


def load_composition_model(directory: str | Path) -> CompositionAffinityModel:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    directory = Path(directory)
    config = read_json_file(directory / CONFIG_FILE, f"{directory}: cannot read {CONFIG_FILE}")
    try:
        tensors = load_file(str(directory / WEIGHTS_FILE))
        names = list(config["features"])
        if names != feature_names():
            raise ValueError("its features are not this obte's composition features")
        trees = BoostedTrees(
            **{name: tensors[f"tree_{name}"] for name in _TREE_FIELDS},
            offsets=tensors["tree_offsets"],
            baseline=float(config["trees_baseline"]),
        )
        trees.is_leaf, trees.missing_left = trees.is_leaf.astype(bool), trees.missing_left.astype(bool)
        trees.check(len(names))
        model = CompositionAffinityModel(
            names,
            tensors["feature_mean"],
            tensors["feature_scale"],
            tensors["ridge_coef"],
            float(config["ridge_intercept"]),
            float(config["ridge_penalty"]),
            trees,
            dict(config.get("metadata", {})),
        )
        sizes = {model.feature_mean.shape, model.feature_scale.shape, model.ridge_coef.shape}
        if sizes != {(len(names),)}:
            raise ValueError("weights do not match the feature list")
        numbers = [model.feature_mean, model.feature_scale, model.ridge_coef, [model.ridge_intercept]]
        if not all(np.isfinite(a).all() for a in numbers) or (model.feature_scale <= 0).any():
            raise ValueError("non-finite or non-positive scaling, or non-finite ridge weights")
        if abs(model.ridge_intercept) > DG_LIMIT_KCAL:
            raise ValueError(f"a ridge intercept beyond ±{DG_LIMIT_KCAL:g} kcal/mol")
        if not (math.isfinite(model.ridge_penalty) and model.ridge_penalty > 0):
            raise ValueError("a ridge penalty that is not a positive number")
    except (OSError, SafetensorError, KeyError, TypeError, ValueError) as exc:
        raise ModelFormatError(f"{directory}: bad composition ΔG model ({str(exc).splitlines()[0]})") from None
    return model


def grouped_ridge_search(
    features: np.ndarray, target: np.ndarray, groups: np.ndarray, sample_weight: np.ndarray | None = None
):
    """A ridge regression on standardised ``features``, its penalty picked from :data:`RIDGE_PENALTIES` by the
    mean squared error of an inner cross-validation grouped by ``groups`` (one label per row, the protein:
    a protein's rows are never on both sides of an inner split), in ``min(INNER_FOLDS, proteins)`` folds,
    then refitted on every row. ``sample_weight`` (optional) weights the rows of the ridge fits.

    Returns the fitted scikit-learn ``GridSearchCV``: ``predict``, ``best_estimator_`` (a StandardScaler →
    Ridge pipeline) and ``best_params_["ridge__alpha"]``."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    inner = min(INNER_FOLDS, len(set(groups)))
    if inner < 2:
        raise ValueError("the ridge penalty search needs rows of at least 2 proteins")
    search = GridSearchCV(
        make_pipeline(StandardScaler(), Ridge()),
        {"ridge__alpha": RIDGE_PENALTIES},
        cv=GroupKFold(inner),
        scoring="neg_mean_squared_error",
    )
    weights = {} if sample_weight is None else {"ridge__sample_weight": sample_weight}
    return search.fit(features, target, groups=groups, **weights)


def fit_composition_model(
    features: np.ndarray, dg: np.ndarray, groups: np.ndarray, seed: int = 0, metadata: dict | None = None
) -> CompositionAffinityModel:
    """Fit both regressors on ``features`` (rows of :func:`complex_composition`); ``groups`` (one label per
    row, the protein) keeps each protein on one side of the penalty search's inner split.

    The fits run in one thread (:func:`one_thread`): the same model as with more, much faster on a busy machine."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    features = np.asarray(features, dtype=np.float64)
    dg = np.asarray(dg, dtype=np.float64)
    with one_thread():
        search = grouped_ridge_search(features, dg, groups)
        boosted = HistGradientBoostingRegressor(random_state=seed).fit(features, dg)
    scaler, ridge = search.best_estimator_.named_steps["standardscaler"], search.best_estimator_.named_steps["ridge"]
    trees = BoostedTrees.from_sklearn(boosted)
    if not np.allclose(trees.predict(features), boosted.predict(features), rtol=0, atol=1e-9):
        raise RuntimeError("the copied trees do not reproduce scikit-learn's predictions")
    return CompositionAffinityModel(
        feature_names(),
        scaler.mean_.astype(np.float64),
        scaler.scale_.astype(np.float64),
        ridge.coef_.astype(np.float64),
        float(ridge.intercept_),
        float(search.best_params_["ridge__alpha"]),
        trees,
        dict(metadata or {}),
    )

"""The composition ΔG model: tree copy, penalty search, save/load, and its place in an affinity ensemble."""

import json

import numpy as np
import pytest
from conftest import DATA
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import HistGradientBoostingRegressor

from obte_cli.engine.affinity.baseline import composition_features, feature_names
from obte_cli.engine.affinity.composition_model import (
    BoostedTrees,
    fit_composition_model,
    is_composition_model,
    load_composition_model,
)
from obte_cli.engine.affinity.data import load_pairs_tsv
from obte_cli.engine.affinity.ensemble import load_affinity_model
from obte_cli.engine.core.errors import ModelFormatError


@pytest.fixture(scope="module")
def pronab_rows():
    """47 real ProNAB measurements of 12 short proteins."""
    table = load_pairs_tsv(DATA / "pronab_sample.tsv")[0]
    return table, composition_features(table), table["dG"].to_numpy(np.float64), table["protein"].to_numpy()


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0, 0.3))
def test_copied_trees_predict_what_scikit_learn_predicts(seed, missing):
    """Including rows with missing values, which each split sends to the side learned in training."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, 4))
    y = x[:, 0] - 2 * x[:, 1] * (x[:, 2] > 0) + rng.normal(scale=0.1, size=300)
    x[rng.random(x.shape) < missing] = np.nan
    model = HistGradientBoostingRegressor(random_state=0, max_iter=30).fit(x, y)
    trees = BoostedTrees.from_sklearn(model)
    test = rng.normal(size=(100, 4))
    test[rng.random(test.shape) < missing] = np.nan
    assert np.allclose(trees.predict(test), model.predict(test), rtol=0, atol=1e-12)


def test_missing_values_never_seen_in_training_follow_scikit_learn():
    """A feature with no NaN while fitting sends a NaN down the side scikit-learn chose for it."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 3))
    model = HistGradientBoostingRegressor(random_state=0, max_iter=20).fit(x, x[:, 0] + x[:, 1] ** 2)
    test = rng.normal(size=(200, 3))
    test[rng.random(test.shape) < 0.3] = np.nan
    assert np.allclose(BoostedTrees.from_sklearn(model).predict(test), model.predict(test), rtol=0, atol=1e-12)


def test_fit_averages_ridge_and_trees_and_survives_a_round_trip(pronab_rows, tmp_path):
    _, features, dg, groups = pronab_rows
    model = fit_composition_model(features, dg, groups, seed=0, metadata={"fold": 3})
    ridge = (features - model.feature_mean) / model.feature_scale @ model.ridge_coef + model.ridge_intercept
    assert np.allclose(model.predict_features(features), (ridge + model.trees.predict(features)) / 2)
    assert model.feature_names == feature_names() and model.ridge_penalty in np.logspace(-1, 5, 13)

    model.save(tmp_path / "m")
    assert is_composition_model(tmp_path / "m") and not is_composition_model(tmp_path)
    loaded = load_composition_model(tmp_path / "m")
    assert np.array_equal(loaded.predict_features(features), model.predict_features(features))
    assert loaded.metadata == {"fold": 3} and loaded.ridge_penalty == model.ridge_penalty


def test_the_fits_run_in_one_thread_and_give_the_model_more_threads_give(pronab_rows, monkeypatch):
    """#33 §3: a second OpenMP thread made a ProNAB fold 13 times slower on a busy 2-core machine."""
    from threadpoolctl import threadpool_info, threadpool_limits

    threads = []
    fit = HistGradientBoostingRegressor.fit

    def recording(self, *args, **kwargs):
        threads.extend(pool["num_threads"] for pool in threadpool_info())
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(HistGradientBoostingRegressor, "fit", recording)
    _, features, dg, groups = pronab_rows
    fit_composition_model(features, dg, groups)
    assert threads and set(threads) == {1}
    monkeypatch.undo()
    rng = np.random.default_rng(0)  # large enough for the threads to share the work
    x = rng.normal(size=(4000, 45))
    y = x[:, 0] - x[:, 1] * x[:, 2] + rng.normal(scale=0.3, size=4000)
    model = fit_composition_model(x, y, np.arange(4000) % 50)
    with threadpool_limits(limits=2):
        boosted = HistGradientBoostingRegressor(random_state=0).fit(x, y)
    assert np.array_equal(model.trees.predict(x), BoostedTrees.from_sklearn(boosted).predict(x))


def test_the_penalty_search_never_splits_a_protein(pronab_rows, monkeypatch):
    """The inner CV is grouped: with every row of a protein on one side, the chosen penalty is the one a
    protein-grouped search picks, whatever row order."""
    import sklearn.model_selection as selection

    _, features, dg, proteins = pronab_rows
    groups = proteins.copy()
    seen = []

    class RecordingGroupKFold(selection.GroupKFold):
        def split(self, x, y=None, groups=None):
            for train, test in super().split(x, y, groups):
                seen.append(set(proteins[train]) & set(proteins[test]))  # the true proteins, not what it was given
                yield train, test

    monkeypatch.setattr(selection, "GroupKFold", RecordingGroupKFold)
    fit_composition_model(features, dg, groups)
    assert seen and all(not shared for shared in seen)


def test_fewer_than_two_proteins_is_an_error(pronab_rows):
    _, features, dg, groups = pronab_rows
    with pytest.raises(ValueError, match="at least 2 proteins"):
        fit_composition_model(features, dg, np.full(len(dg), "one protein"))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda t: t["tree_left"].__setitem__(0, 0), "child does not follow its parent"),  # a loop: root → root
        (lambda t: t["tree_right"].__setitem__(0, 10**6), "child does not follow its parent"),
        (lambda t: t["tree_feature"].__setitem__(0, 99), "feature the model does not have"),
        (lambda t: t.__setitem__("tree_offsets", t["tree_offsets"][::-1].copy()), "bad tree offsets"),
        (lambda t: t.__setitem__("tree_value", t["tree_value"][:-1].copy()), "different shapes"),
        (lambda t: t.__setitem__("tree_left", t["tree_left"].astype(np.float64)), "not integers"),
        (lambda t: t["feature_scale"].__setitem__(0, 0.0), "non-positive scaling"),
        (lambda t: t["feature_scale"].__setitem__(0, -1.0), "non-positive scaling"),
        (lambda t: t["feature_scale"].__setitem__(0, np.inf), "non-finite or non-positive scaling"),
        (lambda t: t["ridge_coef"].__setitem__(0, np.nan), "non-finite ridge weights"),
        (lambda t: t["tree_threshold"].__setitem__(0, np.nan), "non-finite split thresholds"),
        (lambda t: t["tree_threshold"].__setitem__(0, -np.inf), "non-finite split thresholds"),
        (lambda t: t["tree_value"].__setitem__(-1, np.nan), "non-finite leaf values"),
        (lambda t: t["tree_value"].__setitem__(-1, 1e300), r"leaf value beyond ±100 kcal/mol"),
    ],
)
def test_damaged_trees_or_weights_are_a_format_error_not_a_hang(pronab_rows, tmp_path, damage, message):
    from safetensors.numpy import load_file, save_file

    _, features, dg, groups = pronab_rows
    fit_composition_model(features, dg, groups).save(tmp_path / "m")
    tensors = load_file(str(tmp_path / "m" / "model.safetensors"))
    assert not tensors["tree_is_leaf"][0]  # the first root splits, so the damage lands on a split
    damage(tensors)
    save_file(tensors, str(tmp_path / "m" / "model.safetensors"))
    with pytest.raises(ModelFormatError, match=message):
        load_composition_model(tmp_path / "m")


def test_a_damaged_model_is_a_format_error(pronab_rows, tmp_path):
    _, features, dg, groups = pronab_rows
    fit_composition_model(features, dg, groups).save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "features": config["features"][:-1]}))
    with pytest.raises(ModelFormatError, match="bad composition ΔG model"):
        load_composition_model(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    (tmp_path / "m" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelFormatError, match="bad composition ΔG model"):
        load_composition_model(tmp_path / "m")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("trees_baseline", 1e300, r"baseline or leaf value beyond ±100 kcal/mol"),
        ("trees_baseline", float("nan"), "non-finite leaf values"),
        ("ridge_intercept", -1e6, r"ridge intercept beyond ±100 kcal/mol"),
        ("ridge_intercept", float("inf"), "non-finite"),
        ("ridge_penalty", float("nan"), "ridge penalty that is not a positive number"),
        ("ridge_penalty", -1.0, "ridge penalty that is not a positive number"),
    ],
)
def test_absurd_or_non_finite_stored_statistics_are_refused_on_load(pronab_rows, tmp_path, field, value, message):
    """Issue #31 §4: the numbers of config.json are checked as those of model.safetensors are."""
    _, features, dg, groups = pronab_rows
    fit_composition_model(features, dg, groups).save(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), field: value}))  # NaN/Infinity as Python writes them
    with pytest.raises(ModelFormatError, match=rf"^{tmp_path / 'm'}: bad composition ΔG model \(.*{message}"):
        load_composition_model(tmp_path / "m")


def test_a_model_whose_finite_numbers_overflow_never_predicts_a_non_finite_dg(pronab_rows, tmp_path):
    """A scale of 1e-320 is finite and positive (it loads), but (x − mean) / scale overflows: the prediction is
    an error naming the model and the complex, never a NaN ΔG."""
    from safetensors.numpy import load_file, save_file

    from obte_cli.engine.affinity.ensemble import predict_affinities
    from obte_cli.engine.bio.complex_inputs import Complex, NamedSequence
    from obte_cli.engine.core.errors import NonFiniteResultError

    table, features, dg, groups = pronab_rows
    fit_composition_model(features, dg, groups).save(tmp_path / "m")
    tensors = load_file(str(tmp_path / "m" / "model.safetensors"))
    tensors["feature_scale"][:] = 1e-320
    save_file(tensors, str(tmp_path / "m" / "model.safetensors"))
    ensemble = load_affinity_model(tmp_path / "m")
    row = table.iloc[0]
    protein, acid = NamedSequence("p1", row.protein, "x"), NamedSequence("na1", row.nucleic_acid, "x", "DNA")
    complexes = [Complex(protein, acid, "")]
    with pytest.raises(NonFiniteResultError, match=rf"^{tmp_path / 'm'}: record 'p1 \+ na1': the predicted ΔG"):
        list(predict_affinities(ensemble, complexes))


def test_an_ensemble_of_composition_members_reads_sequences_not_tokens(pronab_rows, tmp_path):
    table, features, dg, groups = pronab_rows
    half = groups != groups[0]
    fit_composition_model(features[half], dg[half], groups[half]).save(tmp_path / "single")
    single = load_affinity_model(tmp_path / "single")
    assert single.kind == "composition" and single.tokenizer is None and single.context is None
    long_protein = "M" * 5000  # no context: nothing to cut
    prepared, cut = single.prepare(long_protein, "ACGT", "ACGT", "DNA")
    assert cut == 0 and prepared.token_ids is None
    dg_hat, sd = single.predict(single.prepare_table(table))
    assert np.allclose(dg_hat, single.members[0].model.predict_features(features)) and np.isnan(sd).all()
    empty, empty_sd = single.predict([])
    assert empty.shape == empty_sd.shape == (0,)


def _ridge_by_hand(x, y, alpha, w=None):
    """StandardScaler → Ridge(alpha) in closed form: standardise on these rows (unweighted, as the pipeline
    does), then minimise Σ w (y − b − z·β)² + α‖β‖²; returns a function that predicts."""
    w = np.ones(len(y)) if w is None else w
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 10 * np.finfo(float).eps] = 1.0
    z = (x - mean) / scale
    z_mean, y_mean = np.average(z, axis=0, weights=w), np.average(y, weights=w)
    zc = z - z_mean
    beta = np.linalg.solve(zc.T @ (w[:, None] * zc) + alpha * np.eye(z.shape[1]), zc.T @ (w * (y - y_mean)))
    return lambda other: ((other - mean) / scale - z_mean) @ beta + y_mean


def test_the_grouped_ridge_search_picks_the_penalty_a_protein_grouped_cv_prefers(pronab_rows):
    """The chosen penalty has the lowest mean squared error over protein-grouped inner folds, computed here
    by hand; the refit on all rows is that penalty's ridge; and row weights reach the ridge fits."""
    from sklearn.model_selection import GroupKFold

    from obte_cli.engine.affinity.composition_model import INNER_FOLDS, RIDGE_PENALTIES, grouped_ridge_search

    _, features, dg, proteins = pronab_rows
    splits = list(GroupKFold(INNER_FOLDS).split(features, dg, proteins))
    assert all(not set(proteins[a]) & set(proteins[b]) for a, b in splits)
    errors = [
        np.mean([np.mean((_ridge_by_hand(features[a], dg[a], alpha)(features[b]) - dg[b]) ** 2) for a, b in splits])
        for alpha in RIDGE_PENALTIES
    ]
    search = grouped_ridge_search(features, dg, proteins)
    best = RIDGE_PENALTIES[int(np.argmin(errors))]
    assert search.best_params_["ridge__alpha"] == best
    assert np.allclose(search.predict(features), _ridge_by_hand(features, dg, best)(features), rtol=0, atol=1e-8)

    _, rows, counts = np.unique(proteins, return_inverse=True, return_counts=True)
    weights = 1.0 / counts[rows]
    weighted = grouped_ridge_search(features, dg, proteins, sample_weight=weights)
    alpha = weighted.best_params_["ridge__alpha"]
    by_hand = _ridge_by_hand(features, dg, alpha, weights)(features)
    assert np.allclose(weighted.predict(features), by_hand, rtol=0, atol=1e-8)
    assert not np.allclose(by_hand, _ridge_by_hand(features, dg, alpha)(features), rtol=0, atol=1e-3)


def test_the_grouped_ridge_search_uses_fewer_folds_when_there_are_few_proteins(pronab_rows):
    from obte_cli.engine.affinity.composition_model import grouped_ridge_search

    _, features, dg, proteins = pronab_rows
    three = np.isin(proteins, np.unique(proteins)[:3])
    assert grouped_ridge_search(features[three], dg[three], proteins[three]).n_splits_ == 3
    assert grouped_ridge_search(features, dg, proteins).n_splits_ == 5
    with pytest.raises(ValueError, match="at least 2 proteins"):
        grouped_ridge_search(features, dg, np.full(len(dg), "one protein"))

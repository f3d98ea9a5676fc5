"""Scores checked against hand computations and against brute force: the ΔG bench's two "what did it learn"
figures, and the contact bench's F1 threshold and random-guess F1."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obte_cli.engine.core.metrics import (
    best_f1_threshold,
    f1_scores,
    group_mean_pcc,
    random_guess_f1,
    within_group_pcc,
)


def test_within_group_pcc_by_hand():
    groups = ["a"] * 5 + ["b"] * 5 + ["c"] * 3 + ["d"] * 5
    true = [1, 2, 3, 4, 5] + [5, 4, 3, 2, 1] + [1, 2, 3] + [4, 4, 4, 4, 4]
    predicted = [2, 1, 4, 3, 5] + [7, 7, 7, 7, 7] + [3, 2, 1] + [1, 2, 3, 4, 5]
    # a: deviations (-2,-1,0,1,2) and (-1,-2,1,0,2): 8 / sqrt(10 · 10) = 0.8
    # b: constant predictions know nothing of the order: 0
    # c: 3 rows < 5, left out; d: constant measured values, PCC undefined, left out
    score, n = within_group_pcc(np.array(true, float), np.array(predicted, float), np.array(groups))
    assert n == 2
    assert score == pytest.approx((0.8 + 0.0) / 2)


def test_within_group_pcc_min_size_and_no_group():
    true = np.array([1.0, 2.0, 3.0])
    predicted = np.array([3.0, 2.0, 1.0])
    assert within_group_pcc(true, predicted, np.array(["x"] * 3), min_size=3) == (pytest.approx(-1.0), 1)
    score, n = within_group_pcc(true, predicted, np.array(["x"] * 3))
    assert n == 0 and math.isnan(score)


def test_group_mean_pcc_by_hand():
    groups = np.array(["x", "x", "y", "y", "z", "z"])
    true = np.array([1, 3, 4, 6, 7, 9], float)  # means 2, 5, 8
    predicted = np.array([0, 0, 2, 4, 1, 9], float)  # means 0, 3, 5
    # deviations (-3, 0, 3) and (-8/3, 1/3, 7/3): 15 / sqrt(18 · 114/9)
    assert group_mean_pcc(true, predicted, groups) == pytest.approx(15 / math.sqrt(18 * 114 / 9))


def test_group_mean_pcc_undefined():
    assert math.isnan(group_mean_pcc(np.array([1.0, 2.0]), np.array([1.0, 2.0]), np.array(["a", "a"])))
    constant = np.array([5.0, 5.0, 5.0, 5.0])
    assert math.isnan(group_mean_pcc(np.array([1.0, 2, 3, 4]), constant, np.array(["a", "a", "b", "b"])))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=1, max_size=40))
def test_best_threshold_is_the_best_of_all_thresholds(pairs):
    p = np.array([a for a, _ in pairs])
    y = np.array([b for _, b in pairs], dtype=int)
    chosen = f1_scores(y, p, best_f1_threshold(y, p))["f1"]
    assert chosen == pytest.approx(max(f1_scores(y, p, t)["f1"] for t in np.r_[p, 2.0]))


def test_random_guess_f1_is_the_all_positive_guess():
    y = (np.random.default_rng(0).random(10000) < 0.15).astype(int)
    rate = y.mean()
    assert f1_scores(y, np.ones(len(y)), 0.5)["f1"] == pytest.approx(random_guess_f1(rate))
    guesses = [
        f1_scores(y, np.random.default_rng(s).random(len(y)), 1 - q)["f1"] for s, q in enumerate((0.1, 0.5, 0.9))
    ]
    assert max(guesses) <= random_guess_f1(rate) + 0.01
    # the paper's random F1 at 8/6/4 Å (0.37/0.247/0.157) are this formula at positive rates 22.7/14.1/8.5%
    assert [round(random_guess_f1(p), 3) for p in (0.227, 0.141, 0.085)] == [0.37, 0.247, 0.157]

"""The ΔG bench's two "what did it learn" figures, checked against hand computations on small tables."""

import math

import numpy as np
import pytest

from obte_cli.engine.core.metrics import group_mean_pcc, within_group_pcc


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

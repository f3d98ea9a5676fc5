"""Every score obte reports, in one place. All take ``(true, predicted)`` in that order, as scikit-learn does."""

from __future__ import annotations

import math

import numpy as np


def regression_metrics(true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """n, Pearson correlation, mean absolute error and RMSE (in the units of the values)."""
    true = np.asarray(true, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    if len(predicted) < 2 or predicted.std() == 0 or true.std() == 0:
        pcc = float("nan")
    else:
        pcc = float(np.corrcoef(predicted, true)[0, 1])
    error = predicted - true
    return {
        "n": int(len(true)),
        "pcc": pcc,
        "mae": float(np.abs(error).mean()),
        "rmse": float(np.sqrt((error**2).mean())),
    }


def _pcc(true: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.corrcoef(predicted, true)[0, 1])


def within_group_pcc(
    true: np.ndarray, predicted: np.ndarray, groups: np.ndarray, min_size: int = 5
) -> tuple[float, int]:
    """(mean over groups of the PCC between ``true`` and ``predicted`` inside the group, groups counted).

    For ΔG the groups are proteins, so this is nucleic-acid specificity: does the model rank one
    protein's nucleic acids by affinity? Groups with fewer than ``min_size`` rows, or whose true values
    are all equal, are left out (their PCC is undefined whatever the model does). A model whose
    predictions are constant inside a group knows nothing about that group's order and counts 0 there.
    NaN, 0 when no group qualifies.
    """
    true = np.asarray(true, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    groups = np.asarray(groups)
    scores = []
    for group in np.unique(groups):
        rows = groups == group
        if rows.sum() < min_size or true[rows].std() == 0:
            continue
        scores.append(0.0 if predicted[rows].std() == 0 else _pcc(true[rows], predicted[rows]))
    return (float(np.mean(scores)) if scores else float("nan")), len(scores)


def group_mean_pcc(true: np.ndarray, predicted: np.ndarray, groups: np.ndarray) -> float:
    """PCC between the per-group means of ``true`` and of ``predicted`` (for ΔG: does the model rank the
    proteins by their mean affinity?). NaN with fewer than two groups or a constant side."""
    _, group_of_row = np.unique(np.asarray(groups), return_inverse=True)
    sizes = np.bincount(group_of_row)
    true_means = np.bincount(group_of_row, weights=np.asarray(true, dtype=np.float64)) / sizes
    predicted_means = np.bincount(group_of_row, weights=np.asarray(predicted, dtype=np.float64)) / sizes
    if len(sizes) < 2 or true_means.std() == 0 or predicted_means.std() == 0:
        return float("nan")
    return _pcc(true_means, predicted_means)


def rank_regression_metrics(true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Spearman and Pearson correlations and MAE (NaN correlations when either side is constant)."""
    from scipy.stats import pearsonr, spearmanr

    true = np.asarray(true, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    mae = float(np.abs(true - predicted).mean())
    if np.std(predicted) == 0 or np.std(true) == 0:
        return {"spearman": float("nan"), "pearson": float("nan"), "mae": mae}
    return {
        "spearman": float(spearmanr(true, predicted).statistic),
        "pearson": float(pearsonr(true, predicted).statistic),
        "mae": mae,
    }


def classification_metrics(true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Matthews correlation, macro F1 and accuracy of predicted class labels."""
    from sklearn.metrics import f1_score, matthews_corrcoef

    return {
        "mcc": float(matthews_corrcoef(true, predicted)),
        "f1_macro": float(f1_score(true, predicted, average="macro")),
        "accuracy": float((true == predicted).mean()),
    }


def f1_scores(true: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict[str, float]:
    """F1, precision and recall of calling ``probabilities >= threshold`` positive."""
    called = probabilities >= threshold
    truth = np.asarray(true).astype(bool)
    tp = float((called & truth).sum())
    precision = tp / called.sum() if called.sum() else 0.0
    recall = tp / truth.sum() if truth.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": precision, "recall": recall}


def best_f1_threshold(true: np.ndarray, probabilities: np.ndarray) -> float:
    """The threshold that maximises F1 of calling ``probabilities >= threshold`` positive (as
    :func:`f1_scores`): every distinct score is tried."""
    order = np.argsort(-probabilities, kind="stable")
    scores, truth = probabilities[order], np.asarray(true)[order].astype(bool)
    positives = truth.sum()
    if positives == 0:
        return 1.0
    tp = np.cumsum(truth)
    called = np.arange(1, len(scores) + 1)
    f1 = 2 * tp / (called + positives)
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]  # a threshold calls every tied score together
    best = int(np.argmax(np.where(last_of_tie, f1, -1)))
    return float(scores[best])


def random_guess_f1(positive_rate: float) -> float:
    """The best F1 of a guess that ignores the input: calling every residue a contact, 2p / (1 + p)
    (a guess calling a random fraction q scores 2pq / (p + q), which grows with q)."""
    return 2 * positive_rate / (1 + positive_rate) if positive_rate > 0 else 0.0


def roc_auc(true: np.ndarray, probabilities: np.ndarray) -> float:
    """Area under the ROC curve of 0/1 ``true`` scored by ``probabilities`` (ties count half); NaN when
    ``true`` has one class only."""
    from scipy.stats import rankdata

    truth = np.asarray(true).astype(bool)
    n_pos, n_neg = truth.sum(), (~truth).sum()
    if not n_pos or not n_neg:
        return math.nan
    ranks = rankdata(probabilities)
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def mean_and_sem(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (over folds, seeds, ...)."""
    array = np.asarray(values, dtype=np.float64)
    sem = float(array.std(ddof=1) / np.sqrt(len(array))) if len(array) > 1 else float("nan")
    return float(array.mean()), sem

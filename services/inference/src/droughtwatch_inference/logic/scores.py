"""The scores Observe stores, computed with numpy exactly as Evidently 0.7.23 computes them, for
the rows whose HTML report is not rendered (a predictions file's, by default).

Evidently is the report: each of its runs costs a tenth of a second or more whatever the
sample size, where these functions take well under a millisecond on a file's counts. So a file
whose report is off is measured here, and the day (and any file whose report is on) by
Evidently, which renders the report from the same run. Each function follows the Evidently (or
scipy, or scikit-learn) code named in its docstring, operation for operation where the order
changes the result; tests/test_scores.py runs both on varied data and asserts that the metrics
rows agree to 1e-9.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def fill_zero_shares(shares: np.ndarray) -> np.ndarray:
    """Evidently's ``get_binned_data(..., feel_zeroes=True)``: a category absent from one side
    gets the share 0.0001 (or a millionth of the side's smallest share when that is at most
    0.0001), so PSI's logarithm stays finite and a vanished or a new category weighs
    heavily."""
    filled = shares.copy()
    smallest = filled[filled != 0].min()
    filled[filled == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return filled


def category_drift(reference: Sequence[int], current: Sequence[int], method: str) -> float:
    """Evidently's ``ValueDrift(method="psi" | "jensenshannon")`` of a categorical column,
    from the count of each category on both sides (in one order; missing values are left out,
    as Evidently drops them). Categories neither side holds take no part; each share is the
    category's count over its side's non-missing values."""
    ref = np.asarray(reference, dtype=np.int64)
    cur = np.asarray(current, dtype=np.int64)
    if ref.shape != cur.shape or not ref.sum() or not cur.sum():
        raise ValueError("both sides need the same categories and at least one value")
    held = (ref > 0) | (cur > 0)
    ref_shares = ref[held] / ref.sum()
    cur_shares = cur[held] / cur.sum()
    if method == "psi":  # evidently.legacy.calculations.stattests.psi._psi
        ref_shares, cur_shares = fill_zero_shares(ref_shares), fill_zero_shares(cur_shares)
        return float(np.sum((ref_shares - cur_shares) * np.log(ref_shares / cur_shares)))
    if method == "jensenshannon":  # ...stattests.jensenshannon: no zero filling
        return jensenshannon(ref_shares, cur_shares)
    raise ValueError(f"no categorical drift method {method!r}")


def jensenshannon(p: np.ndarray, q: np.ndarray) -> float:
    """scipy.spatial.distance.jensenshannon(p, q) (natural logarithm), which Evidently calls."""
    p = p / np.sum(p)
    q = q / np.sum(q)
    m = (p + q) / 2.0
    return float(np.sqrt((np.sum(_rel_entr(p, m)) + np.sum(_rel_entr(q, m))) / 2.0))


def _rel_entr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """scipy.special.rel_entr for non-negative x and positive y: x log(x / y), 0 where x is 0."""
    out = np.zeros_like(x)
    positive = x > 0
    out[positive] = x[positive] * np.log(x[positive] / y[positive])
    return out


def wasserstein_distance(u: np.ndarray, v: np.ndarray) -> float:
    """scipy.stats.wasserstein_distance(u, v) of two 1-D samples (its ``_cdf_distance`` with
    p = 1, unweighted): the area between the two empirical distribution functions."""
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    all_values = np.concatenate((u, v))
    all_values.sort(kind="mergesort")
    deltas = np.diff(all_values)
    u_cdf = np.sort(u).searchsorted(all_values[:-1], "right") / u.size
    v_cdf = np.sort(v).searchsorted(all_values[:-1], "right") / v.size
    return float(np.dot(np.abs(u_cdf - v_cdf), deltas))


def wasserstein_norm(reference: np.ndarray, current: np.ndarray) -> float:
    """Evidently's ``ValueDrift(method="wasserstein")`` of a numerical column (its
    ``_wasserstein_distance_norm``): the Wasserstein distance in units of the reference's
    standard deviation (at least 0.001). Both sides hold finite values only (Evidently drops
    the missing and infinite ones first)."""
    norm = max(float(np.std(reference)), 0.001)
    return wasserstein_distance(reference, current) / norm


def classification(
    confusion: Mapping[str, Mapping[str, int]],
) -> tuple[float, float, dict[str, float], dict[str, float]]:
    """(accuracy, macro F1, precision by class, recall by class) from a confusion matrix
    {true class: {predicted class: images}} over the same classes, as Evidently's
    ``Accuracy``, ``F1Score`` (or the mean of ``F1ByLabel`` for two classes),
    ``PrecisionByLabel`` and ``RecallByLabel`` give them through scikit-learn:

    - macro F1 is the mean F1 over the classes that occur among the true or the predicted
      labels (``unique_labels``), F1 = 2 tp / (true + predicted);
    - precision and recall are given for the classes among the true labels only (Evidently's
      ``ClassificationReport`` keys its classes by ``y_true.unique()``); a class never
      predicted has precision 0 (``zero_division``'s default).
    """
    classes = list(confusion)
    matrix = np.array([[confusion[t][p] for p in classes] for t in classes], dtype=np.int64)
    total = int(matrix.sum())
    if not total:
        raise ValueError("no labelled image")
    tp = np.diag(matrix)
    true = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    accuracy = float(np.sum(tp) / total)
    seen = (true + predicted) > 0
    macro_f1 = float(np.mean(2 * tp[seen] / (true[seen] + predicted[seen])))
    precision, recall = {}, {}
    for k, name in enumerate(classes):
        if true[k]:
            precision[name] = float(tp[k] / predicted[k]) if predicted[k] else 0.0
            recall[name] = float(tp[k] / true[k])
    return accuracy, macro_f1, precision, recall

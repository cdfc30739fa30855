"""Input drift: the per-image summaries (``mean_<channel>``) of a file or a day against the
model's reference summaries, one Evidently ``ValueDrift`` per column, before the predictions
move.

The method is named per column type and never left to Evidently, whose default depends on the
sample size (a p-value test below 1,000 rows, a distance above, numbers of opposite meaning):
numerical columns, which all the summaries are, use the normed Wasserstein distance (the
earth mover's distance between the two distributions, in units of the reference's standard
deviation); a categorical column would use PSI, as prediction drift does. Both are distances:
a column drifts when its score reaches the threshold (``drift_detected``, the one comparison).

The default threshold (ObserveConfig.feature_drift_threshold) is a shift of about a third of
the reference's between-image standard deviation. Sampling alone moves the score, the more the
fewer the images (the README's benchmarks give the scores of generated normal days by sample
size, and of the demo's first drought day), which is why days below the minimum sample size
raise no alert.

The input drifts when the share of drifted columns reaches ``share_threshold`` (by default
half of them, Evidently's own dataset-drift rule), compared with the same function.

Where no report is rendered (a file's, by default), the same scores come from logic.scores
without running Evidently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from droughtwatch_preprocess import FEATURE_PREFIX

from droughtwatch_inference.logic.evidently_api import load_evidently
from droughtwatch_inference.logic.scores import wasserstein_norm
from droughtwatch_inference.metrics_row import InputDrift

NUMERICAL_METHOD = "wasserstein"  # every summary is numerical


def empty_drift_values(threshold: float) -> InputDrift:
    """The input drift of no summary: nothing measured, no drift."""
    return {
        "feature_drift": None,
        "drifted_features": None,
        "feature_drift_share": None,
        "feature_drift_method": NUMERICAL_METHOD,
        "feature_drift_threshold": float(threshold),
        "input_drift_detected": False,
    }


def feature_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith(FEATURE_PREFIX)]


def input_drift(
    current: pd.DataFrame,
    reference: pd.DataFrame | None,
    *,
    threshold: float,
    share_threshold: float,
    detected: Callable[[float | None, float], bool],
    evidently: bool = True,
) -> tuple[InputDrift, Any, list[str]]:
    """(values, Evidently snapshot or None, notes) of the summaries of ``current`` against
    ``reference``. ``detected`` is the drift comparison (score, threshold) -> bool. Without
    ``evidently`` the same scores come from logic.scores, and there is no snapshot.

    Compared are the summary columns both sides have with at least one value (a file from an
    older preprocess has no index channels; a reference may summarise other channels)."""
    values = empty_drift_values(threshold)
    if reference is None:
        return values, None, ["the model has no reference summaries: input drift is not computed"]
    if current.empty:
        return values, None, []
    # Evidently leaves missing values out of a column's distribution; an infinite one becomes
    # missing first (its dataset statistics would warn on it).
    current = _finite(current, feature_columns(current))
    reference = _finite(reference, feature_columns(reference))
    columns = [
        c
        for c in reference.columns
        if c in current.columns and current[c].notna().any() and reference[c].notna().any()
    ]
    if not columns:
        return values, None, ["no summary column in common with the reference: no input drift"]
    if evidently:
        snapshot, scores = _evidently_scores(current, reference, columns, threshold)
    else:
        snapshot = None
        scores = {
            c: wasserstein_norm(reference[c].dropna().to_numpy(), current[c].dropna().to_numpy())
            for c in columns
        }
    drifted = sum(detected(score, threshold) for score in scores.values())
    share = drifted / len(scores)
    values.update(
        feature_drift=scores,
        drifted_features=drifted,
        feature_drift_share=share,
        input_drift_detected=detected(share, share_threshold),
    )
    return values, snapshot, []


def _evidently_scores(
    current: pd.DataFrame, reference: pd.DataFrame, columns: list[str], threshold: float
) -> tuple[Any, dict[str, float]]:
    ev = load_evidently()
    definition = ev.DataDefinition(numerical_columns=columns)
    metrics = {
        c: ev.ValueDrift(column=c, method=NUMERICAL_METHOD, threshold=threshold) for c in columns
    }
    snapshot = ev.Report(list(metrics.values())).run(
        ev.Dataset.from_pandas(current[columns], data_definition=definition),
        ev.Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    result = {m["id"]: m["value"] for m in snapshot.dict()["metrics"]}
    return snapshot, {c: float(result[metric.metric_id]) for c, metric in metrics.items()}


def _finite(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return df[columns].astype("float64").replace([np.inf, -np.inf], np.nan)

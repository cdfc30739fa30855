"""Input drift of the per-image summaries: the normed Wasserstein distance of each column,
computed by Evidently with the method named (never its size-dependent default), compared with
the one drift comparison, and the share of drifted columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from droughtwatch_contract.drift import is_drift
from droughtwatch_inference.logic.input_drift import (
    NUMERICAL_METHOD,
    input_drift,
)
from scipy import stats

RNG = np.random.default_rng(3)
REFERENCE = pd.DataFrame(
    {
        "mean_B4": RNG.normal(0.19, 0.08, 1000),
        "mean_NDVI": RNG.normal(0.25, 0.09, 1000),
        "mean_NDMI": RNG.normal(-0.04, 0.12, 1000),
    }
)


def _normed_wasserstein(current: pd.Series, reference: pd.Series) -> float:
    return stats.wasserstein_distance(reference, current) / max(float(np.std(reference)), 0.001)


def _run(current: pd.DataFrame, threshold: float = 0.3, share: float = 0.5):
    return input_drift(
        current, REFERENCE, threshold=threshold, share_threshold=share, detected=is_drift
    )


def test_each_column_scores_its_normed_wasserstein_distance() -> None:
    current = pd.DataFrame(
        {
            "mean_B4": RNG.normal(0.19, 0.08, 300),
            "mean_NDVI": RNG.normal(0.15, 0.09, 300),  # a drought: NDVI falls
            "mean_NDMI": RNG.normal(-0.14, 0.12, 300),
            "label": ["0"] * 300,  # not a summary: ignored
        }
    )
    values, snapshot, notes = _run(current)
    assert snapshot is not None and notes == []
    assert NUMERICAL_METHOD == "wasserstein"
    assert values["feature_drift_method"] == "wasserstein"
    assert values["feature_drift_threshold"] == 0.3
    scores = values["feature_drift"]
    assert list(scores) == ["mean_B4", "mean_NDVI", "mean_NDMI"]
    for column, score in scores.items():
        assert score == pytest.approx(_normed_wasserstein(current[column], REFERENCE[column]))
        assert type(score) is float
    assert scores["mean_B4"] < 0.3 < scores["mean_NDVI"]
    assert values["drifted_features"] == 2
    assert values["feature_drift_share"] == pytest.approx(2 / 3)
    assert values["input_drift_detected"] is True


def test_drift_is_detected_at_exactly_the_threshold() -> None:
    current = REFERENCE.iloc[:200] + 0.02
    values, _, _ = _run(current)
    score = values["feature_drift"]["mean_NDVI"]
    # the same comparison at the score itself, just above and just below
    for threshold, drifted in ((score, True), (score * 0.999, True), (score * 1.001, False)):
        at, _, _ = _run(current, threshold=threshold, share=1 / 3)
        assert (at["feature_drift"]["mean_NDVI"] >= threshold) is drifted
        assert at["drifted_features"] >= drifted
    # the share rule is the same comparison: 1 of 3 drifted reaches a share threshold of 1/3
    one = pd.DataFrame(
        {"mean_B4": REFERENCE["mean_B4"].iloc[:300], "mean_NDVI": REFERENCE["mean_NDVI"] - 0.2}
    )
    shifted, _, _ = _run(one.assign(mean_NDMI=REFERENCE["mean_NDMI"]), share=1 / 3)
    assert shifted["drifted_features"] == 1 and shifted["input_drift_detected"] is True
    shifted, _, _ = _run(one.assign(mean_NDMI=REFERENCE["mean_NDMI"]), share=0.34)
    assert shifted["input_drift_detected"] is False


def test_only_columns_both_sides_have_are_compared() -> None:
    # a file from a preprocess without indices: its NDVI and NDMI summaries are missing
    current = pd.DataFrame(
        {"mean_B4": REFERENCE["mean_B4"].iloc[:100], "mean_NDVI": [np.nan] * 100}
    )
    values, _, _ = _run(current)
    assert list(values["feature_drift"]) == ["mean_B4"]
    # infinite or missing values of a column are left out of its distribution
    current = REFERENCE.copy()
    current.loc[:9, "mean_NDMI"] = np.inf
    values, _, _ = _run(current)
    expected = _normed_wasserstein(current["mean_NDMI"].iloc[10:], REFERENCE["mean_NDMI"])
    assert values["feature_drift"]["mean_NDMI"] == pytest.approx(expected)


def test_without_reference_summaries_input_drift_is_not_computed_and_said() -> None:
    values, snapshot, notes = input_drift(
        REFERENCE, None, threshold=0.3, share_threshold=0.5, detected=is_drift
    )
    assert snapshot is None and "no reference summaries" in notes[0]
    assert values["feature_drift"] is None and values["drifted_features"] is None
    assert values["input_drift_detected"] is False
    values, snapshot, notes = _run(REFERENCE.iloc[:0])
    assert snapshot is None and notes == [] and values["feature_drift"] is None

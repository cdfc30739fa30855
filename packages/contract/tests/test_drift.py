"""The one drift rule: a score at or above the threshold is drift, and Grafana's evaluator
spells the same comparison."""

from __future__ import annotations

import operator

import pytest
from droughtwatch_contract.drift import GRAFANA_EVALUATOR, is_drift

# Grafana's threshold expression types for one value (grafana/grafana pkg/expr/threshold.go).
GRAFANA_COMPARISONS = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "eq": operator.eq,
    "ne": operator.ne,
}


@pytest.mark.parametrize(
    ("score", "drift"), [(0.2499, False), (0.25, True), (0.2501, True), (None, False)]
)
def test_a_score_reaching_the_threshold_is_drift(score: float | None, drift: bool) -> None:
    assert is_drift(score, 0.25) is drift


@pytest.mark.parametrize("score", [0.2499, 0.25, 0.2501])
def test_the_grafana_evaluator_is_the_same_comparison(score: float) -> None:
    assert GRAFANA_COMPARISONS[GRAFANA_EVALUATOR](score, 0.25) is is_drift(score, 0.25)

"""The one drift rule: a score at or above the threshold is drift."""

from __future__ import annotations

import pytest
from droughtwatch_contract.drift import is_drift


@pytest.mark.parametrize(
    ("score", "drift"), [(0.2499, False), (0.25, True), (0.2501, True), (None, False)]
)
def test_a_score_reaching_the_threshold_is_drift(score: float | None, drift: bool) -> None:
    assert is_drift(score, 0.25) is drift

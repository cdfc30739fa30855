"""The run tables print a drift score on the side of the threshold it is on: rounding must not
show 0.250 beside "ok" (the real shard scores 0.24987 against the baseline's reference)."""

from __future__ import annotations

import pytest
from droughtwatch_contract.drift import is_drift, score_text


@pytest.mark.parametrize(
    ("score", "threshold", "text"),
    [
        (0.2498728331640835, 0.25, "0.2499"),  # below: rounded to 3 places it would read 0.250
        (0.24999996, 0.25, "0.24999996"),  # as many places as it takes
        (0.25, 0.25, "0.250"),  # at the threshold is drift, and reads so
        (0.2504, 0.25, "0.250"),  # above, and 0.250 is on the drift side too
        (0.5716, 0.25, "0.572"),
        (0.0123, None, "0.012"),  # no threshold known: three places
        (None, 0.25, "-"),
    ],
)
def test_a_score_reads_on_its_side_of_the_threshold(
    score: float | None, threshold: float | None, text: str
) -> None:
    assert score_text(score, threshold) == text
    if score is not None and threshold is not None:
        assert is_drift(float(text), threshold) == is_drift(score, threshold)

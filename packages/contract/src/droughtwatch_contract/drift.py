"""The drift rule, in one place: a distance score (PSI, Jensen-Shannon distance, the normed
Wasserstein distance of input drift: higher is more drift) at or above the threshold is drift.
Observe calls `is_drift` for its metrics and daily rows and stores the flags; the demo's table
and the Grafana alerts read those flags, so a score exactly at the threshold is drift
everywhere. `score_text` prints a score so that it reads on the side of the threshold its flag
says (the reports' headers and the run tables)."""

from __future__ import annotations

from collections.abc import Callable


def is_drift(score: float | None, threshold: float) -> bool:
    """Drift when the score reaches the threshold; no score (an empty file) is no drift."""
    return score is not None and score >= threshold


def score_text(
    score: float | None,
    threshold: float | None,
    digits: int = 3,
    *,
    rule: Callable[[float | None, float], bool] = is_drift,
) -> str:
    """A score rounded to ``digits``, or to as many more as it takes to stay on its side of the
    threshold under ``rule``: 0.24987 against 0.25 prints 0.2499 (no drift), never 0.250 beside
    "ok"."""
    if score is None:
        return "-"
    if threshold is None:
        return f"{score:.{digits}f}"
    for places in range(digits, 16):
        text = f"{score:.{places}f}"
        if rule(float(text), threshold) == rule(score, threshold):
            return text
    return repr(score)

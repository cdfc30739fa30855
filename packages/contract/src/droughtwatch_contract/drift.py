"""The drift rule, in one place: a distance score (PSI, Jensen-Shannon distance, the normed
Wasserstein distance of input drift: higher is more drift) at or above the threshold is drift.
Observe calls `is_drift` for its metrics and daily rows and stores the flags; the demo's table
and the Grafana alerts read those flags, so a score exactly at the threshold is drift
everywhere."""

from __future__ import annotations


def is_drift(score: float | None, threshold: float) -> bool:
    """Drift when the score reaches the threshold; no score (an empty file) is no drift."""
    return score is not None and score >= threshold

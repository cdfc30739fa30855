"""The drift rule, in one place: a distance score (PSI, Jensen-Shannon distance: higher is more
drift) at or above the threshold is drift. The Observe stage's metrics row and the demo's table
call `is_drift`; the Grafana alert compares with `GRAFANA_EVALUATOR`, Grafana's spelling of the
same comparison, so a score exactly at the threshold is drift everywhere."""

from __future__ import annotations


def is_drift(score: float | None, threshold: float) -> bool:
    """Drift when the score reaches the threshold; no score (an empty file) is no drift."""
    return score is not None and score >= threshold


# Grafana's threshold expression type for `score >= threshold`: "gte" (grafana/grafana#99516,
# 2025; in the grafana/grafana:12.2.0 image the compose file pins). "gt" would let a score equal
# to the threshold pass.
GRAFANA_EVALUATOR = "gte"

"""The class distribution of a model's predictions: counts and shares per class, the shares
rounded so that they sum to exactly one (they go into model.json's reference_class_shares)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from droughtwatch_preprocess import CLASS_NAMES


def class_counts(labels: np.ndarray, classes: Sequence[str] = CLASS_NAMES) -> dict[str, int]:
    """Images per class among ``labels`` (class indices)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))
    return {name: int(c) for name, c in zip(classes, counts[: len(classes)], strict=True)}


def class_shares(labels: np.ndarray, classes: Sequence[str] = CLASS_NAMES) -> dict[str, float]:
    """Share of each class among ``labels`` (class indices), rounded so they sum to one."""
    return shares_of(class_counts(labels, classes))


def shares_of(counts: dict[str, int]) -> dict[str, float]:
    """Shares of ``counts`` rounded to 6 digits; the rounding residue goes to the largest
    class so the shares sum to exactly one."""
    total = max(sum(counts.values()), 1)
    shares = {name: round(c / total, 6) for name, c in counts.items()}
    largest = max(counts, key=lambda name: counts[name])
    shares[largest] = round(shares[largest] + round(1.0 - sum(shares.values()), 6), 6)
    return {name: float(s) for name, s in shares.items()}

"""Data quality of a predictions file or a day: what share of the raw records were blank
(dropped by Processing), what share of the images carry no label, and what share of each band's
pixels sit at 0 or at 255 and of each index's pixels are not finite.

Everything is computed from counts (the quality metadata Inference writes; see
``droughtwatch_inference.predictions``), so a day's values are exact sums over its files, not
averages of averages. A file written without those counts (by an older Inference) has None.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from droughtwatch_preprocess import PixelCounts

from droughtwatch_inference.metrics_row import DataQuality
from droughtwatch_inference.predictions import TRUE_LABEL


def pool_quality(files: Iterable[Mapping[str, Any] | None]) -> dict[str, Any] | None:
    """The quality counts of several files as one (None if any file lacks them: a share over
    part of the day would pass for the whole day's)."""
    records = dropped = 0
    pixels = PixelCounts()
    for quality in files:
        if quality is None or quality.get("records") is None:
            return None
        records += int(quality["records"])
        dropped += int(quality.get("dropped_blank") or 0)
        pixels = pixels.merge(PixelCounts.from_dict(quality["pixels"]))
    return {"records": records, "dropped_blank": dropped, "pixels": pixels.as_dict()}


def data_quality(df: pd.DataFrame, quality: Mapping[str, Any] | None) -> DataQuality:
    """The data-quality values of the images in ``df`` with their file's (or day's) counts."""
    images = len(df)
    if TRUE_LABEL in df.columns:
        missing_label_share = float(df[TRUE_LABEL].isna().mean()) if images else None
    else:  # written before Inference kept labels: unknown, not "all missing"
        missing_label_share = None
    values: DataQuality = {
        "records": None,
        "dropped_blank": None,
        "blank_share": None,
        "missing_label_share": missing_label_share,
        "zero_share": None,
        "saturated_share": None,
        "nonfinite_share": None,
    }
    if quality is None or quality.get("records") is None:
        return values
    records, dropped = int(quality["records"]), int(quality.get("dropped_blank") or 0)
    shares = PixelCounts.from_dict(quality["pixels"]).shares()
    values.update(
        records=records,
        dropped_blank=dropped,
        blank_share=dropped / records if records else None,
        zero_share=shares["zero"],
        saturated_share=shares["saturated"],
        nonfinite_share=shares["nonfinite"],
    )
    return values


def quality_rows(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(what, value) lines for the report: the shares as percentages, worst band first."""

    def percent(share: float | None) -> str:
        return "n/a" if share is None else f"{share:.2%}"

    rows = [
        ("records in the raw files", str(values.get("records", "n/a"))),
        ("blank records (dropped)", percent(values.get("blank_share"))),
        ("images without a label", percent(values.get("missing_label_share"))),
    ]
    for key, what in (
        ("zero_share", "pixels at 0"),
        ("saturated_share", "pixels at 255"),
        ("nonfinite_share", "non-finite index pixels"),
    ):
        shares = values.get(key) or {}
        for channel, share in sorted(shares.items(), key=lambda item: -item[1]):
            rows.append((f"{what}, {channel}", percent(share)))
    return rows

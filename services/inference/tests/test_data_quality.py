"""Data quality from counts: blank share, missing-label share, pixels at 0 and 255 per band,
non-finite index pixels; a day's values are exact sums over its files."""

from __future__ import annotations

import pandas as pd
import pytest
from droughtwatch_inference.logic.data_quality import data_quality, pool_quality, quality_rows
from droughtwatch_preprocess import PIXELS


def _quality(records: int, dropped: int, images: int, zero_b9: int, inf_evi: int) -> dict:
    return {
        "records": records,
        "dropped_blank": dropped,
        "pixels": {
            "images": images,
            "pixels_per_image": PIXELS,
            "zero": {"B4": 0, "B9": zero_b9},
            "saturated": {"B4": 3, "B9": 0},
            "nonfinite": {"EVI": inf_evi},
        },
    }


def test_shares_of_a_file() -> None:
    df = pd.DataFrame({"true_label": ["0", None, "1", None]})
    values = data_quality(df, _quality(records=5, dropped=1, images=4, zero_b9=400, inf_evi=2))
    assert values["records"] == 5 and values["dropped_blank"] == 1
    assert values["blank_share"] == 0.2
    assert values["missing_label_share"] == 0.5
    assert values["zero_share"] == {"B4": 0.0, "B9": 400 / (4 * PIXELS)}
    assert values["saturated_share"] == {"B4": 3 / (4 * PIXELS), "B9": 0.0}
    assert values["nonfinite_share"] == {"EVI": 2 / (4 * PIXELS)}
    rows = dict(quality_rows(values))
    assert rows["blank records (dropped)"] == "20.00%"
    assert rows["images without a label"] == "50.00%"
    assert list(quality_rows(values))[3][0] == "pixels at 0, B9"  # worst band first


def test_a_day_pools_its_files_counts_exactly() -> None:
    a = _quality(records=100, dropped=0, images=100, zero_b9=1000, inf_evi=0)
    b = _quality(records=10, dropped=10, images=0, zero_b9=0, inf_evi=0)
    c = _quality(records=50, dropped=5, images=45, zero_b9=45 * PIXELS, inf_evi=7)
    pooled = pool_quality([a, b, c])
    assert pooled["records"] == 160 and pooled["dropped_blank"] == 15
    assert pooled["pixels"]["images"] == 145
    assert pooled["pixels"]["zero"]["B9"] == 1000 + 45 * PIXELS
    df = pd.DataFrame({"true_label": ["0"] * 145})
    values = data_quality(df, pooled)
    assert values["blank_share"] == pytest.approx(15 / 160)  # not the mean of 0, 1 and 0.1
    assert values["zero_share"]["B9"] == pytest.approx((1000 + 45 * PIXELS) / (145 * PIXELS))
    assert values["nonfinite_share"]["EVI"] == pytest.approx(7 / (145 * PIXELS))
    # one file without counts: the day's shares would cover part of it only
    assert pool_quality([a, None]) is None


def test_files_without_counts_or_labels_have_unknown_values() -> None:
    values = data_quality(pd.DataFrame({"label": ["0"]}), None)
    assert values["blank_share"] is None and values["zero_share"] is None
    assert values["missing_label_share"] is None  # no true_label column: unknown, not 100%
    values = data_quality(pd.DataFrame({"true_label": []}), _quality(0, 0, 0, 0, 0))
    assert values["blank_share"] is None and values["missing_label_share"] is None
    assert values["zero_share"] == {"B4": 0.0, "B9": 0.0}

"""Per-image summaries: channel means over finite pixels, and pixel counts that pool exactly."""

from __future__ import annotations

import numpy as np
import pytest
from droughtwatch_preprocess import (
    CHANNELS,
    PIXELS,
    PixelCounts,
    channel_means,
    feature_channels,
    feature_column,
    read_processed,
)


def test_feature_channels_are_the_model_channels_and_the_indices_in_file_order() -> None:
    assert feature_channels(("NDVI", "B6", "B4", "B5")) == ("B4", "B5", "B6", "NDVI", "NDMI", "EVI")
    assert feature_channels(()) == ("NDVI", "NDMI", "EVI")
    assert feature_column("NDVI") == "mean_NDVI"
    with pytest.raises(ValueError, match="unknown channels"):
        feature_channels(("B12",))


def test_means_skip_non_finite_pixels() -> None:
    images = np.zeros((2, 2, 65, 65), np.float32)
    images[0, 0] = 0.5
    images[1, 0, :, :5] = 1.0  # 5 columns of 65 at 1.0
    images[0, 1] = 2.0
    images[0, 1, 0, 0] = np.inf
    images[0, 1, 0, 1] = np.nan
    images[1, 1] = -np.inf
    means = channel_means(images)
    assert means.dtype == np.float64
    assert means[0, 0] == 0.5 and means[1, 0] == pytest.approx(5 / 65)
    assert means[0, 1] == 2.0  # the two non-finite pixels are left out
    assert np.isnan(means[1, 1])  # no finite pixel at all


def test_counts_on_the_real_shard_equal_a_direct_count(processed_shard) -> None:
    _, path = processed_shard
    chunk = read_processed(path)
    counts = PixelCounts()
    half = len(chunk.ids) // 2
    counts.add(chunk.images[:half], CHANNELS)
    rest = PixelCounts()
    rest.add(chunk.images[half:], CHANNELS)
    pooled = counts.merge(rest)
    assert pooled.images == len(chunk.ids) == 79
    b9 = chunk.images[:, CHANNELS.index("B9")]
    assert pooled.zero["B9"] == np.count_nonzero(b9 == 0)
    # the cirrus band is mostly 0 in the shard (227,071 of its 333,775 pixels); nothing at 255
    assert pooled.zero["B9"] == 227_071
    assert sum(pooled.saturated.values()) == 0
    evi = chunk.images[:, CHANNELS.index("EVI")]
    assert pooled.nonfinite["EVI"] == np.count_nonzero(~np.isfinite(evi))
    assert set(pooled.zero) == set(pooled.saturated) == {f"B{i}" for i in range(1, 12)}
    assert set(pooled.nonfinite) == {"NDVI", "NDMI", "EVI"}
    shares = pooled.shares()
    assert shares["zero"]["B9"] == 227_071 / (79 * PIXELS)
    assert PixelCounts.from_dict(pooled.as_dict()) == pooled


def test_saturated_means_255_and_zero_means_0() -> None:
    raw = np.array([0, 1, 254, 255], np.uint8)
    images = np.zeros((1, 1, 65, 65), np.float32)
    images[0, 0].flat[:4] = raw / np.float32(255)
    images[0, 0].flat[4:] = 0.5
    counts = PixelCounts()
    counts.add(images, ("B1",))
    assert (counts.zero, counts.saturated, counts.nonfinite) == ({"B1": 1}, {"B1": 1}, {})
    with pytest.raises(ValueError, match="channels"):
        counts.add(images, ("B1", "B2"))

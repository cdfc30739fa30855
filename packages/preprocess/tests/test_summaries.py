"""Per-image summaries: channel means over finite pixels, and pixel counts that pool exactly."""

from __future__ import annotations

import numpy as np
import pytest
from droughtwatch_preprocess import (
    BANDS,
    INDICES,
    PIXELS,
    PixelCounts,
    ProcessedReader,
    channel_means,
    channel_means_and_finite,
    feature_column,
    read_processed,
)


def test_a_summary_column_is_named_for_its_channel() -> None:
    assert feature_column("NDVI") == "mean_NDVI"


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


def test_channels_holding_only_finite_pixels_are_told_with_the_means() -> None:
    images = np.random.default_rng(1).random((4, 3, 65, 65), dtype=np.float32)
    images[2, 1, 7, 7] = np.inf
    images[0, 2, 0, 0] = np.nan
    means, finite = channel_means_and_finite(images)
    np.testing.assert_array_equal(means, channel_means(images))
    assert finite.tolist() == [True, False, False]
    means, finite = channel_means_and_finite(images[:, :1])
    assert finite.tolist() == [True] and np.isfinite(means).all()


def test_an_index_known_finite_counts_no_non_finite_pixel_without_a_scan() -> None:
    planes = np.random.default_rng(2).random((3, 65, 65), dtype=np.float32)
    scanned, told = PixelCounts(), PixelCounts()
    scanned.add(None, {"NDVI": planes})
    told.add(None, {"NDVI": planes}, finite={"NDVI"})
    assert scanned == told and told.nonfinite == {"NDVI": 0} and told.images == 3
    planes[1, 2, 3] = np.inf
    counted = PixelCounts()
    counted.add(None, {"NDVI": planes}, finite=set())
    assert counted.nonfinite == {"NDVI": 1}


def test_counts_on_the_real_shard_equal_a_direct_count(processed_shard) -> None:
    _, path = processed_shard
    with ProcessedReader(path) as reader:
        ((chunk, bands),) = list(reader.iter_chunks_with_bands(list(INDICES)))
    half = len(chunk.ids) // 2
    counts = PixelCounts()
    counts.add(bands[:half], {i: chunk.images[:half, k] for k, i in enumerate(INDICES)})
    rest = PixelCounts()
    rest.add(bands[half:], {i: chunk.images[half:, k] for k, i in enumerate(INDICES)})
    pooled = counts.merge(rest)
    assert pooled.images == len(chunk.ids) == 79
    # the cirrus band is mostly 0 in the shard (227,071 of its 333,775 pixels); nothing at 255
    assert pooled.zero["B9"] == np.count_nonzero(bands[:, 8] == 0) == 227_071
    assert sum(pooled.saturated.values()) == 0
    assert pooled.nonfinite["EVI"] == np.count_nonzero(~np.isfinite(chunk.images[:, 2]))
    assert set(pooled.zero) == set(pooled.saturated) == set(BANDS)
    assert set(pooled.nonfinite) == set(INDICES)
    assert pooled.shares()["zero"]["B9"] == 227_071 / (79 * PIXELS)
    assert PixelCounts.from_dict(pooled.as_dict()) == pooled
    # the raw bands are what the float channels are made of
    np.testing.assert_array_equal(bands / np.float32(255), read_processed(path, list(BANDS)).images)


def test_saturated_means_255_and_zero_means_0() -> None:
    bands = np.full((1, 11, 65, 65), 128, np.uint8)
    bands[0, 0].flat[:4] = [0, 1, 254, 255]
    indices = np.zeros((1, 3, 65, 65), np.float32)
    indices[0, 2, 0, :3] = [np.inf, -np.inf, np.nan]
    counts = PixelCounts()
    counts.add(bands, dict(zip(INDICES, indices[0][:, None], strict=True)))
    assert counts.zero == {"B1": 1, **{f"B{i}": 0 for i in range(2, 12)}}
    assert counts.saturated["B1"] == 1 and counts.nonfinite == {"NDVI": 0, "NDMI": 0, "EVI": 3}
    # a file without indices counts its bands only; one without bands, its indices
    bands_only = PixelCounts()
    bands_only.add(bands)
    assert bands_only.images == 1 and bands_only.nonfinite == {}
    with pytest.raises(ValueError, match="uint8"):
        counts.add(bands.astype(np.float32))
    with pytest.raises(ValueError, match="different numbers of images"):
        counts.add(bands, {"EVI": np.zeros((2, 65, 65), np.float32)})

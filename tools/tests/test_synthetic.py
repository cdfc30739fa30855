"""The generated droughtwatch data: format, determinism, realistic statistics, drought."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from droughtwatch_preprocess import (
    BANDS,
    CLASS_NAMES,
    IMAGE_SIZE,
    ProcessedReader,
    compute_indices,
    decode_example,
    iter_records,
    process_file,
)
from droughtwatch_tools import synthetic


def _mean_indices(bands: np.ndarray) -> np.ndarray:
    """Per-image mean NDVI, NDMI of non-blank images: (n, 2)."""
    return compute_indices(bands)[:, :2].mean(axis=(2, 3))


@pytest.fixture(scope="module")
def normal() -> tuple[np.ndarray, np.ndarray]:
    return synthetic.generate_images(np.random.default_rng(5), 2000, blank_share=0.0)


def test_images_are_droughtwatch_shaped_uint8_with_class_labels(
    normal: tuple[np.ndarray, np.ndarray],
) -> None:
    bands, labels = normal
    assert bands.shape == (2000, len(BANDS), IMAGE_SIZE, IMAGE_SIZE)
    assert bands.dtype == np.uint8
    assert labels.dtype == np.int64
    assert set(np.unique(labels)) == set(range(len(CLASS_NAMES)))


def test_same_seed_gives_the_same_images_and_another_seed_does_not() -> None:
    a = synthetic.generate_images(np.random.default_rng(1), 50, drought=0.3)
    b = synthetic.generate_images(np.random.default_rng(1), 50, drought=0.3)
    c = synthetic.generate_images(np.random.default_rng(2), 50, drought=0.3)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_class_shares_follow_the_real_shard(normal: tuple[np.ndarray, np.ndarray]) -> None:
    _, labels = normal
    shares = np.bincount(labels, minlength=4) / len(labels)
    assert np.allclose(shares, [46 / 81, 16 / 81, 14 / 81, 5 / 81], atol=0.03)


def test_band_means_per_class_match_the_table_from_the_shard(
    normal: tuple[np.ndarray, np.ndarray],
) -> None:
    bands, labels = normal
    for c in range(len(CLASS_NAMES)):
        means = bands[labels == c].mean(axis=(0, 2, 3))
        assert np.allclose(means, synthetic.BAND_MEANS[c], rtol=0.06, atol=1.0), c


def test_mean_ndvi_rises_with_the_forage_class(normal: tuple[np.ndarray, np.ndarray]) -> None:
    bands, labels = normal
    ndvi = _mean_indices(bands)[:, 0]
    per_class = [ndvi[labels == c].mean() for c in range(len(CLASS_NAMES))]
    assert per_class == sorted(per_class)
    assert 0.15 < per_class[0] < per_class[-1] < 0.4


def test_images_have_smooth_spatial_texture(normal: tuple[np.ndarray, np.ndarray]) -> None:
    bands, _ = normal
    b5 = bands[:200, BANDS.index("B5")].astype(np.float64)
    assert b5.std(axis=(1, 2)).mean() > 5  # not flat
    # neighbouring pixels are alike (smoothed noise), far ones much less so
    centred = b5 - b5.mean(axis=(1, 2), keepdims=True)
    near = (centred[:, :, 1:] * centred[:, :, :-1]).mean() / centred.var()
    far = (centred[:, :, 32:] * centred[:, :, :-32]).mean() / centred.var()
    assert near > 0.6 and abs(far) < near / 2


def test_drought_lowers_ndvi_and_ndmi_of_every_class() -> None:
    normal_bands, labels = synthetic.generate_images(np.random.default_rng(9), 600, blank_share=0)
    dry_bands, dry_labels = synthetic.generate_images(
        np.random.default_rng(9), 600, drought=1.0, blank_share=0
    )
    assert np.array_equal(labels, dry_labels)  # same images, only the drought differs
    normal_idx = _mean_indices(normal_bands)
    dry_idx = _mean_indices(dry_bands)
    for c in range(len(CLASS_NAMES)):
        mask = labels == c
        assert dry_idx[mask, 0].mean() < normal_idx[mask, 0].mean() - 0.15  # NDVI
        assert dry_idx[mask, 1].mean() < normal_idx[mask, 1].mean() - 0.05  # NDMI
    # red and SWIR rise, near infrared falls
    for band, sign in (("B4", 1), ("B5", -1), ("B6", 1)):
        j = BANDS.index(band)
        assert sign * (dry_bands[:, j].mean() - normal_bands[:, j].mean()) > 2, band
    # in full drought the greenest class looks drier than the driest class in normal weather
    assert dry_idx[labels == 3, 0].mean() < normal_idx[labels == 0, 0].mean()


def test_some_images_are_blank_and_processing_drops_them(tmp_path: Path) -> None:
    raw = tmp_path / "day.tfrecord"
    labels = synthetic.write_raw_file(raw, np.random.default_rng(4), 400, blank_share=0.05)
    result = process_file(raw, tmp_path / "day.npz")
    assert result.records == len(labels) == 400
    assert 5 <= result.dropped_blank <= 40
    assert result.kept + result.dropped_blank == 400


def test_raw_file_goes_through_the_real_preprocessing(tmp_path: Path) -> None:
    raw = tmp_path / "day.tfrecord"
    labels = synthetic.write_raw_file(
        raw, np.random.default_rng(3), 300, filename_prefix="scene-x", blank_share=0.0
    )
    first = decode_example(next(iter(iter_records(raw))))
    assert first["filename"].values == (b"scene-x-000000",)
    assert first["label"].values == (int(labels[0]),)
    process_file(raw, tmp_path / "day.npz")
    with ProcessedReader(tmp_path / "day.npz") as reader:
        chunk = reader.read(["B4", "B5", "NDVI"])
    assert chunk.images.shape == (300, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert np.array_equal(chunk.labels, labels)


def test_the_same_seed_writes_the_same_file(tmp_path: Path) -> None:
    for name in ("a", "b"):
        synthetic.write_raw_file(tmp_path / name, np.random.default_rng(8), 20, drought=0.5)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_scenario_ends_with_a_drought_ramping_up() -> None:
    assert synthetic.scenario(6, 2) == [0.0, 0.0, 0.0, 0.0, 0.5, 1.0]
    assert synthetic.scenario(14, 4) == [0.0] * 10 + [0.25, 0.5, 0.75, 1.0]
    assert synthetic.scenario(3, 0) == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(("days", "drought_days"), [(0, 0), (3, 4), (3, -1)])
def test_scenario_rejects_impossible_plans(days: int, drought_days: int) -> None:
    with pytest.raises(ValueError, match="days"):
        synthetic.scenario(days, drought_days)


@pytest.mark.parametrize("drought", [-0.1, 1.5])
def test_drought_outside_zero_to_one_is_rejected(drought: float) -> None:
    with pytest.raises(ValueError, match="drought"):
        synthetic.generate_images(np.random.default_rng(0), 2, drought=drought)

"""Per-image summaries of model-ready images, the numbers that input drift and data quality
compare: Inference computes them on the images it predicts, and droughtwatch_inference's
input_summaries (training's and `model publish --reference`'s reference summaries) with the
same functions, so both sides summarise alike. Which channels a model's summaries cover is
input_summaries.summary_channels.

An image's *features* are the means of channels over its 65x65 pixels. Only finite pixels
count: EVI is infinite (or NaN) where its denominator is zero, and one such pixel would make
the mean infinite; how many pixels are non-finite is counted on its own (``PixelCounts``).

``PixelCounts`` are counts, not shares, so that files pool exactly into a day: a band's pixels
at 0 and at 255 (saturated), counted on the raw uint8 bands, and an index's non-finite pixels,
over ``images`` images of ``PIXELS`` pixels each.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .bands import BANDS, PIXELS

FEATURE_PREFIX = "mean_"


def feature_column(channel: str) -> str:
    """The column that holds an image's mean of ``channel`` (``mean_NDVI``)."""
    return f"{FEATURE_PREFIX}{channel}"


def channel_means(images: np.ndarray) -> np.ndarray:
    """float64 (n, C): each image's mean of each channel over its finite pixels, NaN for a
    channel without a finite pixel. ``images`` is float32 (n, C, H, W)."""
    return channel_means_and_finite(images)[0]


def channel_means_and_finite(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``channel_means``, and bool (C,): which channels hold only finite pixels in every image.

    The second comes almost free: a mean over finite pixels is finite (a sum of 4,225 float32
    values overflows only beyond about 8e34 each, and no channel comes near: a band is at most
    1, EVI's largest finite value is about 4e7), so where every image's plain mean is finite no
    pixel needs checking."""
    n, c = images.shape[:2]
    flat = images.reshape(n, c, -1)
    # numpy sums float32 pairwise (relative error about 1e-7 here), faster than accumulating
    # in float64 (the README's benchmarks); the means are stored as float32 anyway.
    means = flat.mean(axis=2).astype(np.float64)
    all_finite = np.isfinite(means).all(axis=0)
    if all_finite.all():  # the usual case: no infinite EVI pixel in the chunk
        return means, all_finite
    finite = np.isfinite(flat)
    counts = finite.sum(axis=2)
    sums = np.where(finite, flat, np.float32(0)).sum(axis=2, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return means, finite.all(axis=(0, 2))


@dataclass
class PixelCounts:
    """Pixels at 0 and at 255 per band, and non-finite pixels per index, over ``images``
    images. Only the channels that were summarised have an entry."""

    images: int = 0
    zero: dict[str, int] = field(default_factory=dict)
    saturated: dict[str, int] = field(default_factory=dict)
    nonfinite: dict[str, int] = field(default_factory=dict)

    def add(
        self,
        bands: np.ndarray | None = None,
        indices: Mapping[str, np.ndarray] | None = None,
        *,
        finite: Collection[str] = (),
    ) -> None:
        """Count the pixels of one chunk of images: its raw bands (uint8 (n, 11, H, W), B1..B11
        as stored) and its indices ({name: float32 (n, H, W)}), either of which may be missing
        (a file from a preprocess without indices). ``finite`` names indices known to hold only
        finite pixels (``channel_means_and_finite`` tells): their count is 0 without a scan."""
        sizes = set()
        if bands is not None:
            if bands.dtype != np.uint8 or bands.ndim != 4 or bands.shape[1] != len(BANDS):
                raise ValueError(
                    f"bands must be uint8 (n, 11, H, W), got {bands.dtype}{bands.shape}"
                )
            sizes.add(bands.shape[0])
            for k, band in enumerate(BANDS):
                plane = bands[:, k]
                # the zeros are what count_nonzero leaves: no temporary array of the plane's size
                _bump(self.zero, band, plane.size - np.count_nonzero(plane))
                _bump(self.saturated, band, np.count_nonzero(plane == 255))
        for index, plane in (indices or {}).items():
            sizes.add(plane.shape[0])
            if index in finite:
                _bump(self.nonfinite, index, 0)
            else:
                _bump(self.nonfinite, index, plane.size - np.count_nonzero(np.isfinite(plane)))
        if len(sizes) > 1:
            raise ValueError(f"the bands and indices hold different numbers of images: {sizes}")
        self.images += sizes.pop() if sizes else 0

    def merge(self, other: PixelCounts) -> PixelCounts:
        """The counts of both (e.g. two files of one day)."""
        merged = PixelCounts(self.images + other.images)
        for name in ("zero", "saturated", "nonfinite"):
            target = getattr(merged, name)
            for source in (getattr(self, name), getattr(other, name)):
                for channel, count in source.items():
                    _bump(target, channel, count)
        return merged

    def shares(self) -> dict[str, dict[str, float]]:
        """Each count as a share of the pixels counted: {"zero": {band: share}, ...}."""
        pixels = self.images * PIXELS
        return {
            name: {c: (n / pixels if pixels else 0.0) for c, n in getattr(self, name).items()}
            for name in ("zero", "saturated", "nonfinite")
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "pixels_per_image": PIXELS,
            "zero": dict(self.zero),
            "saturated": dict(self.saturated),
            "nonfinite": dict(self.nonfinite),
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> PixelCounts:
        if int(value.get("pixels_per_image", PIXELS)) != PIXELS:
            raise ValueError(f"pixel counts are for {value['pixels_per_image']} pixels per image")
        return cls(
            int(value["images"]),
            {str(k): int(v) for k, v in value.get("zero", {}).items()},
            {str(k): int(v) for k, v in value.get("saturated", {}).items()},
            {str(k): int(v) for k, v in value.get("nonfinite", {}).items()},
        )


def _bump(counts: dict[str, int], key: str, by: int) -> None:
    counts[key] = counts.get(key, 0) + int(by)

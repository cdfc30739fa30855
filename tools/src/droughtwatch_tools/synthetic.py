"""Generated droughtwatch data (raw TFRecords as the real benchmark has them) for the demo,
training the baseline model and tests: numpy and the preprocess package's TFRecord writer, no torch.

Each image is drawn from real band statistics (``BAND_MEANS`` of its class, ``BAND_TEXTURE``,
measured once on the public shard), with smooth spatial texture and an image-level vegetation
state. ``drought`` in [0, 1] lowers the vegetation state: near infrared (B5) falls, red (B4)
and short-wave infrared (B6, B7) rise, so NDVI and NDMI fall and a model trained on normal
data predicts lower forage classes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from droughtwatch_preprocess import BANDS, CLASS_NAMES, IMAGE_SIZE, encode_example, write_tfrecord

# Landsat 8 surface reflectance as uint8, per class ("0", "1", "2", "3+") and band B1..B11,
# measured once on the public shard part-r-00012 (81 records, the 79 non-blank ones):
# BAND_MEANS is the mean pixel value, BAND_TEXTURE the standard deviation of the pixels within
# an image (averaged over the class's images). The per-class mean NDVI these give rises with
# the class (0.20, 0.23, 0.28, 0.31), as in the shard.
BAND_MEANS = np.array(
    [
        [38.5, 35.6, 37.6, 50.1, 75.5, 83.1, 67.2, 41.7, 1.2, 204.9, 201.3],
        [45.4, 42.5, 43.0, 49.9, 79.9, 79.7, 60.5, 45.1, 2.0, 198.6, 195.9],
        [34.8, 31.7, 32.7, 40.0, 70.9, 80.4, 60.1, 34.9, 1.0, 202.7, 199.4],
        [32.4, 28.8, 29.6, 36.5, 69.8, 72.6, 54.0, 31.7, 0.1, 204.5, 200.2],
    ],
    dtype=np.float32,
)
BAND_TEXTURE = np.array(
    [
        [5.1, 5.7, 6.7, 9.3, 9.6, 12.6, 11.7, 7.6, 0.6, 2.3, 2.1],
        [10.8, 11.3, 11.6, 13.5, 13.3, 13.9, 12.0, 12.3, 1.2, 3.7, 3.4],
        [2.6, 3.1, 4.2, 6.9, 8.1, 12.5, 11.1, 5.2, 0.4, 1.5, 1.4],
        [4.7, 5.2, 6.0, 7.9, 12.8, 14.6, 12.3, 6.6, 0.2, 1.7, 1.6],
    ],
    dtype=np.float32,
)
# The shard's labels: 46, 16, 14 and 5 of 81 records.
CLASS_PRIOR = np.array([46, 16, 14, 5], dtype=np.float64) / 81
# Two of the shard's 81 records are blank (all zero); Processing drops such images.
BLANK_SHARE = 0.025

# What the shard does not pin down, chosen so that forage is learnable from the vegetation
# signal and from nothing else: in the shard the images of one class spread so widely
# (between-image standard deviation 10-30 per band) that 81 images barely separate by band
# means. Here an image's spread is a brightness factor shared by the reflective bands (which
# leaves NDVI unchanged), an independent jitter per band and a small vegetation state; its
# texture is that of a class drawn independently of its label (in 81 images, texture differs
# between classes by chance).
BRIGHTNESS_SIGMA = 0.15  # log-normal brightness of the reflective bands B1..B9
BAND_JITTER = 0.04  # independent relative jitter of each band's image mean
VEGETATION_SIGMA = 0.025  # image-level vegetation state (about the same in NDVI units)
THERMAL_SIGMA = 4.0  # image-level offset of the thermal bands B10, B11
DROUGHT_VEGETATION_LOSS = 0.25  # vegetation state lost at drought severity 1

_REFLECTIVE = np.array([b not in ("B10", "B11") for b in BANDS])
# How a vegetation state v scales each band's mean: (1 + v * VEGETATION_RESPONSE).
# Green vegetation reflects near infrared (B5) and absorbs red (B4); its water absorbs
# short-wave infrared (B6, B7).
VEGETATION_RESPONSE = np.array(
    [0.0, 0.0, 0.0, -1.0, 1.0, -0.5, -0.5, 0.0, 0.0, 0.0, 0.0], dtype=np.float32
)
# Loadings of each band's texture on two smooth fields (a brightness pattern and a vegetation
# pattern); each row has unit norm so BAND_TEXTURE stays the pixel standard deviation.
_TEXTURE_LOADINGS = np.array(
    [
        [1.0, 0.0],  # B1
        [1.0, 0.0],  # B2
        [1.0, 0.0],  # B3
        [0.9, -0.436],  # B4 red: darker where vegetation is
        [0.8, 0.6],  # B5 near infrared: brighter where vegetation is
        [0.6, 0.8],  # B6
        [0.6, 0.8],  # B7
        [1.0, 0.0],  # B8
        [1.0, 0.0],  # B9
        [-0.9, -0.436],  # B10 thermal: cooler where brighter and greener
        [-0.9, -0.436],  # B11
    ],
    dtype=np.float32,
)
# Texture is the sum of two scales of random grids interpolated to 65 x 65: patches of about
# a quarter of the image and of a few pixels.
_GRIDS = ((6, 0.6), (22, 0.4))  # (grid points per side, share of the variance)
_BLOCK = 256  # images generated at once by write_raw_file (bounds memory)


def _interpolation(points: int, size: int = IMAGE_SIZE) -> np.ndarray:
    """(size, points) linear interpolation matrix whose rows have unit L2 norm, so that
    ``U @ G @ U.T`` of a grid G of independent unit normals has unit variance at every pixel."""
    position = np.linspace(0, points - 1, size)
    low = np.minimum(np.floor(position).astype(int), points - 2)
    frac = position - low
    matrix = np.zeros((size, points), dtype=np.float64)
    matrix[np.arange(size), low] = 1 - frac
    matrix[np.arange(size), low + 1] = frac
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix.astype(np.float32)


_INTERPOLATIONS = [(_interpolation(points), share) for points, share in _GRIDS]


def _smooth_fields(rng: np.random.Generator, n: int, fields: int) -> np.ndarray:
    """(n, fields, 65, 65) float32 smooth noise with unit variance per pixel."""
    out = np.zeros((n, fields, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    for matrix, share in _INTERPOLATIONS:
        points = matrix.shape[1]
        grid = rng.standard_normal((n, fields, points, points), dtype=np.float32)
        out += np.float32(np.sqrt(share)) * (matrix @ grid @ matrix.T)
    return out


def generate_images(
    rng: np.random.Generator,
    n: int,
    drought: float = 0.0,
    *,
    blank_share: float = BLANK_SHARE,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` generated images: (bands uint8 (n, 11, 65, 65), labels int64 (n,)).

    ``drought`` in [0, 1] is the severity (0 = normal). About ``blank_share`` of the images are
    all zero (blank), as some real records are. The same ``rng`` state gives the same images.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= drought <= 1.0:
        raise ValueError(f"drought must be in [0, 1], got {drought}")
    labels = rng.choice(len(CLASS_NAMES), size=n, p=CLASS_PRIOR).astype(np.int64)
    brightness = np.exp(rng.normal(0.0, BRIGHTNESS_SIGMA, n)).astype(np.float32)
    vegetation = rng.normal(0.0, VEGETATION_SIGMA, n) - DROUGHT_VEGETATION_LOSS * drought
    jitter = rng.normal(0.0, BAND_JITTER, (n, len(BANDS)))
    thermal = rng.normal(0.0, THERMAL_SIGMA, n)
    blank = rng.random(n) < blank_share
    texture = rng.choice(len(CLASS_NAMES), size=n, p=CLASS_PRIOR)

    scale = (1.0 + vegetation[:, None] * VEGETATION_RESPONSE) * (1.0 + jitter)
    scale[:, _REFLECTIVE] *= brightness[:, None]
    means = BAND_MEANS[labels] * scale.astype(np.float32)
    means[:, ~_REFLECTIVE] += thermal[:, None].astype(np.float32)

    fields = _smooth_fields(rng, n, 2).reshape(n, 2, -1)
    loadings = BAND_TEXTURE[texture][:, :, None] * _TEXTURE_LOADINGS  # (n, 11, 2)
    pixels = loadings @ fields  # (n, 11, 4225)
    pixels += means[:, :, None]
    np.rint(pixels, out=pixels)
    np.clip(pixels, 0, 255, out=pixels)
    bands = pixels.astype(np.uint8).reshape(n, len(BANDS), IMAGE_SIZE, IMAGE_SIZE)
    bands[blank] = 0
    return bands, labels


def write_raw_file(
    path: str | os.PathLike[str],
    rng: np.random.Generator,
    n: int,
    drought: float = 0.0,
    *,
    filename_prefix: str = "synthetic",
    blank_share: float = BLANK_SHARE,
) -> np.ndarray:
    """Write ``n`` generated images as a raw droughtwatch TFRecord file at ``path``; return
    their labels (int64, in record order, blank images included)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    labels: list[np.ndarray] = []

    def payloads():
        for start in range(0, n, _BLOCK):
            bands, block_labels = generate_images(
                rng, min(_BLOCK, n - start), drought, blank_share=blank_share
            )
            labels.append(block_labels)
            for i, (image, label) in enumerate(zip(bands, block_labels, strict=True)):
                yield encode_example(image, int(label), f"{filename_prefix}-{start + i:06d}")

    write_tfrecord(path, payloads())
    return np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)


def scenario(days: int, drought_days: int) -> list[float]:
    """Drought severity per day: ``days - drought_days`` normal days (0.0), then a drought
    ramping up linearly to 1.0 on the last day (e.g. ``scenario(6, 2)`` = [0, 0, 0, 0, 0.5, 1])."""
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if not 0 <= drought_days <= days:
        raise ValueError(f"drought_days must be in 0..{days}, got {drought_days}")
    normal = [0.0] * (days - drought_days)
    return normal + [(i + 1) / drought_days for i in range(drought_days)]

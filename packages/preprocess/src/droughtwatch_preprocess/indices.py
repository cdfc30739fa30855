"""Spectral indices (NDVI, NDMI, EVI) of a chunk of images, vectorised, in float32.

On bands normalised to [0, 1] (uint8 / float32(255)), with B2 blue, B4 red, B5 near
infrared and B6 short-wave infrared:

    NDVI = (B5 - B4) / (B5 + B4 + 1e-7)
    NDMI = (B5 - B6) / (B5 + B6 + 1e-7)
    EVI  = 2.5 * (B5 - B4) / (B5 + 6*B4 - 7.5*B2 + 1)

Every operation is done in float32 in exactly this order, so the result is bit-for-bit what
these expressions give on float32 numpy arrays. EVI's denominator can be zero or nearly so
(e.g. a bright blue pixel over dark red and near infrared); the result is then +-inf or
large, as in the reference implementation, and no warning is raised.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .bands import BANDS, INDICES, PIXELS

_EPS = np.float32(1e-7)
_SCALE = np.float32(255)
_B2, _B4, _B5, _B6 = (BANDS.index(b) for b in ("B2", "B4", "B5", "B6"))
# Images per inner block: keeps the 7 float32 work planes (1.9 MB) near the core; measured
# fastest among 2..256.
_BLOCK = 16


def indices_work() -> np.ndarray:
    """Scratch space for ``compute_indices(..., work=...)``, reusable across calls."""
    return np.empty((7, _BLOCK, PIXELS), np.float32)


def compute_indices(
    bands: np.ndarray,
    out: np.ndarray | None = None,
    *,
    work: np.ndarray | None = None,
    scaled: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """NDVI, NDMI and EVI of ``bands`` (N, 11, 65, 65) -> float32 (N, 3, 65, 65).

    ``bands`` is either raw uint8 (normalised here, reading only B2, B4, B5 and B6) or
    float32 already normalised. ``out``, if given, is a float32 array of the result's shape to
    fill whose images' pixels are contiguous (C-contiguous, or three channels of a larger image
    array); ``work``, if given, comes from ``indices_work()``. ``scaled`` ({band: float32
    (N, 65, 65)}, e.g. channels a reader has already normalised) holds bands normalised
    already: those are read from there, not normalised again (the same values either way).
    """
    if bands.ndim != 4 or bands.shape[1] != len(BANDS) or bands.shape[2] * bands.shape[3] != PIXELS:
        raise ValueError(f"bands must have shape (N, {len(BANDS)}, 65, 65), got {bands.shape}")
    if bands.dtype not in (np.uint8, np.float32):
        raise ValueError(f"bands must be uint8 (raw) or float32 (normalised), got {bands.dtype}")
    n = bands.shape[0]
    shape = (n, len(INDICES), *bands.shape[2:])
    if out is None:
        out = np.empty(shape, np.float32)
    elif out.shape != shape or out.dtype != np.float32:
        raise ValueError(f"out must be float32 of shape {shape}")
    src = bands.reshape(n, len(BANDS), PIXELS)
    dst = _pixels(out)
    given = {BANDS.index(b): _pixels(plane) for b, plane in (scaled or {}).items()}
    block = _BLOCK
    b2, b4, b5, b6, t1, t2, t3 = indices_work() if work is None else work
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for lo in range(0, n, block):
            hi = min(lo + block, n)
            m = hi - lo
            planes = [
                given[k][lo:hi] if k in given else _load(src[lo:hi, k], into[:m])
                for k, into in ((_B2, b2), (_B4, b4), (_B5, b5), (_B6, b6))
            ]
            _indices(*planes, t1[:m], t2[:m], t3[:m], dst[lo:hi])
    return out


def _pixels(images: np.ndarray) -> np.ndarray:
    """A view of ``images`` (..., 65, 65) with each image's pixels on one axis; refuses an
    array whose 65 x 65 pixels are not contiguous (a reshape would copy, and writes be lost)."""
    flat = images.reshape(*images.shape[:-2], PIXELS)
    if not np.may_share_memory(flat, images):
        raise ValueError("each image's pixels must be contiguous")
    return flat


def _load(band: np.ndarray, into: np.ndarray) -> np.ndarray:
    if band.dtype == np.uint8:
        np.divide(band, _SCALE, out=into)
    else:
        into[...] = band
    return into


def _indices(b2, b4, b5, b6, t1, t2, t3, dst) -> None:
    # NDVI = (B5 - B4) / ((B5 + B4) + eps)
    np.subtract(b5, b4, out=t1)
    np.add(b5, b4, out=t2)
    t2 += _EPS
    np.divide(t1, t2, out=dst[:, 0])
    # NDMI = (B5 - B6) / ((B5 + B6) + eps)
    np.subtract(b5, b6, out=t2)
    np.add(b5, b6, out=t3)
    t3 += _EPS
    np.divide(t2, t3, out=dst[:, 1])
    # EVI = (2.5 * (B5 - B4)) / (((B5 + 6*B4) - 7.5*B2) + 1); t1 still holds B5 - B4.
    t1 *= np.float32(2.5)
    np.multiply(b4, np.float32(6), out=t2)
    t2 += b5
    np.multiply(b2, np.float32(7.5), out=t3)
    t2 -= t3
    t2 += np.float32(1)
    np.divide(t1, t2, out=dst[:, 2])

"""NDVI, NDMI and EVI equal their formulas on normalised float32 bands, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from droughtwatch_preprocess import compute_indices, decode_records


def reference_indices(raw: np.ndarray) -> np.ndarray:
    """The formulas written plainly, on bands normalised as uint8 / float32(255)."""
    b = raw.astype(np.float32) / np.float32(255)
    b2, b4, b5, b6 = b[:, 1], b[:, 3], b[:, 4], b[:, 5]
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = (b5 - b4) / (b5 + b4 + 1e-7)
        ndmi = (b5 - b6) / (b5 + b6 + 1e-7)
        evi = 2.5 * (b5 - b4) / (b5 + 6 * b4 - 7.5 * b2 + 1)
    return np.stack([ndvi, ndmi, evi], axis=1)


def test_indices_of_real_shard_equal_the_formulas(shard_payloads):
    raw, _ = decode_records(shard_payloads)
    result = compute_indices(raw)
    assert result.shape == (81, 3, 65, 65) and result.dtype == np.float32
    np.testing.assert_array_equal(result, reference_indices(raw))
    # real vegetation: NDVI and NDMI stay within [-1, 1]
    assert np.abs(result[:, :2]).max() <= 1


@pytest.mark.parametrize("n", [1, 15, 16, 17, 50])
def test_indices_of_random_bands_equal_the_formulas_for_any_chunk_length(n: int):
    raw = np.random.default_rng(n).integers(0, 256, (n, 11, 65, 65), dtype=np.uint8)
    np.testing.assert_array_equal(compute_indices(raw), reference_indices(raw))


def test_normalised_float_input_gives_the_same_indices():
    raw = np.random.default_rng(7).integers(0, 256, (5, 11, 65, 65), dtype=np.uint8)
    normalised = raw.astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(compute_indices(normalised), compute_indices(raw))


def test_zero_denominators_give_nan_or_huge_values_without_warnings():
    raw = np.zeros((1, 11, 65, 65), np.uint8)
    raw[0, 1] = 34  # B2 = 34/255, so 7.5 * B2 == 1: EVI's denominator is 0 where B4 = B5 = 0
    raw[0, 3, 0, 0], raw[0, 1, 0, 0] = 5, 38  # 6*B4 - 7.5*B2 + 1 == 0 with B5 - B4 != 0
    result = compute_indices(raw)  # filterwarnings=error: a RuntimeWarning would fail here
    np.testing.assert_array_equal(result, reference_indices(raw))
    assert result[0, 0, 1, 1] == 0  # NDVI of an all-zero pixel: 0 / 1e-7
    assert np.isnan(result[0, 2, 1, 1])  # EVI 0/0
    assert abs(result[0, 2, 0, 0]) > 1e5  # EVI x/(~0)


def test_out_parameter_is_filled():
    raw = np.random.default_rng(8).integers(0, 256, (3, 11, 65, 65), dtype=np.uint8)
    out = np.empty((3, 3, 65, 65), np.float32)
    assert compute_indices(raw, out=out) is out
    np.testing.assert_array_equal(out, reference_indices(raw))


def test_wrong_shape_or_dtype_is_rejected():
    with pytest.raises(ValueError, match="shape"):
        compute_indices(np.zeros((2, 10, 65, 65), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        compute_indices(np.zeros((2, 11, 65, 65), np.float64))


def test_indices_fill_three_channels_of_a_larger_image_array_in_place():
    """As the reader fills them, beside the band channels of the same images."""
    raw = np.random.default_rng(9).integers(0, 256, (20, 11, 65, 65), dtype=np.uint8)
    images = np.full((20, 6, 65, 65), -1.0, np.float32)
    out = images[:, 2:5]
    assert compute_indices(raw, out) is out
    np.testing.assert_array_equal(images[:, 2:5], reference_indices(raw))
    assert (images[:, [0, 1, 5]] == -1).all()  # the other channels are left alone


def test_bands_given_normalised_are_read_from_there():
    raw = np.random.default_rng(10).integers(0, 256, (17, 11, 65, 65), dtype=np.uint8)
    normalised = raw / np.float32(255)
    images = np.stack([normalised[:, 3], normalised[:, 4]], axis=1)  # B4, B5 as a reader has them
    given = {"B4": images[:, 0], "B5": images[:, 1]}
    np.testing.assert_array_equal(compute_indices(raw, scaled=given), reference_indices(raw))
    # ...and it is those planes that are read: another B4 gives another NDVI
    other = {"B4": np.zeros((17, 65, 65), np.float32)}
    ndvi = compute_indices(raw, scaled=other)[:, 0]
    b5 = normalised[:, 4]
    np.testing.assert_array_equal(ndvi, b5 / (b5 + np.float32(1e-7)))


def test_an_out_whose_pixels_are_not_contiguous_is_refused():
    raw = np.zeros((2, 11, 65, 65), np.uint8)
    strided = np.empty((2, 3, 65, 66), np.float32)[..., :65]  # rows 66 pixels apart
    with pytest.raises(ValueError, match="contiguous"):
        compute_indices(raw, strided)

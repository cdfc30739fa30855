"""Decode droughtwatch Example payloads into band arrays and labels, checking each record.

A record must hold B1..B11 as bytes_list features of one value with at least 65*65 bytes
(only the first 65*65 are the image) and, optionally, ``label``: an int64_list of one value
in 0..3. Records without a label get -1 (unknown), as inference data has none.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from .bands import BANDS, CLASS_NAMES, IMAGE_SIZE, PIXELS, UNKNOWN_LABEL
from .errors import BadLabelError, BandTooShortError, MalformedExampleError, MissingBandError
from .example import (
    BYTES_LIST,
    INT64_LIST,
    KIND_NAMES,
    bytes_spans,
    expect_bytes_features,
    feature_spans,
    int64_values,
)

#: Bytes of one image in a band array: 11 bands of 65*65 uint8.
IMAGE_BYTES = len(BANDS) * PIXELS
_BAND_OFFSETS = tuple((band, j * PIXELS) for j, band in enumerate(BANDS))
_MAX_LABEL = len(CLASS_NAMES) - 1
# Droughtwatch writers put the bands first, each exactly 65*65 bytes: the fast path.
_EXPECTED = expect_bytes_features(BANDS, PIXELS)


class DecodedRecords(NamedTuple):
    bands: np.ndarray  # uint8 (N, 11, 65, 65)
    labels: np.ndarray  # int64 (N,), -1 where the record has no label


def decode_into(payload: bytes, out: memoryview, offset: int, *, path: str, index: int) -> int:
    """Copy one record's 11 bands into ``out[offset : offset + IMAGE_BYTES]``; return its label.

    ``out`` is a writable flat byte view (e.g. ``memoryview(array.reshape(-1))`` of a
    C-contiguous uint8 array), so that each band is one memcpy. Raises MissingBandError,
    BandTooShortError, BadLabelError or MalformedExampleError naming ``path`` and ``index``.
    """
    try:
        spans = feature_spans(payload, _EXPECTED)
        view = memoryview(payload)
        for band, band_offset in _BAND_OFFSETS:
            span = spans.get(band)
            if span is None:
                raise MissingBandError(path, index, f"band {band} is missing")
            kind, start, stop = span
            if kind != BYTES_LIST:
                raise MalformedExampleError(
                    path, index, f"band {band} is a {KIND_NAMES[kind]}, expected a bytes_list"
                )
            values = bytes_spans(payload, start, stop)
            if len(values) != 1:
                raise MalformedExampleError(
                    path, index, f"band {band} holds {len(values)} values, expected 1"
                )
            start, stop = values[0]
            if stop - start < PIXELS:
                raise BandTooShortError(
                    path, index, f"band {band} holds {stop - start} bytes, expected {PIXELS}"
                )
            at = offset + band_offset
            out[at : at + PIXELS] = view[start : start + PIXELS]
        span = spans.get("label")
        if span is None:
            return UNKNOWN_LABEL
        kind, start, stop = span
        if kind != INT64_LIST:
            raise BadLabelError(
                path, index, f"the label is a {KIND_NAMES[kind]}, expected an int64_list"
            )
        labels = int64_values(payload, start, stop)
    except ValueError as exc:
        raise MalformedExampleError(path, index, f"not a valid tf.train.Example: {exc}") from exc
    if len(labels) != 1 or not 0 <= labels[0] <= _MAX_LABEL:
        raise BadLabelError(
            path, index, f"the label is {labels}, expected one value in 0..{_MAX_LABEL}"
        )
    return labels[0]


def decode_records(
    payloads: Iterable[bytes], *, path: str = "<memory>", first_index: int = 0
) -> DecodedRecords:
    """Decode Example payloads into bands uint8 (N, 11, 65, 65) and labels int64 (N,).

    ``path`` and ``first_index`` (the index of the first payload in its file) go into errors.
    """
    payloads = list(payloads)
    bands = np.empty((len(payloads), len(BANDS), IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    labels = np.empty(len(payloads), np.int64)
    flat = memoryview(bands.reshape(-1))  # a flat uint8 byte view
    for i, payload in enumerate(payloads):
        labels[i] = decode_into(payload, flat, i * IMAGE_BYTES, path=path, index=first_index + i)
    return DecodedRecords(bands, labels)

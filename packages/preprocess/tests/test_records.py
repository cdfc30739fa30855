"""Decoding Example payloads into bands and labels, and the error for each bad record."""

from __future__ import annotations

import numpy as np
import pytest
from droughtwatch_preprocess import (
    BANDS,
    BadLabelError,
    BandTooShortError,
    Feature,
    MalformedExampleError,
    MissingBandError,
    PreprocessError,
    decode_example,
    decode_records,
    encode_example,
    encode_features,
)

from .conftest import make_synthetic


def test_real_shard_decodes_to_81_images_with_label_counts(shard_payloads):
    bands, labels = decode_records(shard_payloads, path="part-r-00012")
    assert bands.shape == (81, 11, 65, 65) and bands.dtype == np.uint8
    assert labels.shape == (81,) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [46, 16, 14, 5]
    # each band is the first 65*65 bytes of its feature, row-major
    features = decode_example(shard_payloads[10])
    for j, band in enumerate(BANDS):
        expected = np.frombuffer(features[band].values[0][:4225], np.uint8).reshape(65, 65)
        np.testing.assert_array_equal(bands[10, j], expected)


def test_synthetic_records_decode_exactly():
    synthetic = make_synthetic(9, seed=1)
    bands, labels = decode_records(synthetic.payloads)
    np.testing.assert_array_equal(bands, synthetic.bands)
    assert labels.tolist() == [-1 if v is None else v for v in synthetic.labels]


def test_no_payloads_give_empty_arrays():
    bands, labels = decode_records([])
    assert bands.shape == (0, 11, 65, 65) and labels.shape == (0,)


def test_longer_band_uses_its_first_4225_bytes():
    image = make_synthetic(1, seed=2).bands[0]
    bands = {band: image[j].tobytes() for j, band in enumerate(BANDS)}
    bands["B7"] += b"\xff" * 100
    decoded, _ = decode_records([encode_example(bands, 0)])
    np.testing.assert_array_equal(decoded[0], image)


def _bands(seed: int = 4) -> dict[str, bytes]:
    image = make_synthetic(1, seed=seed).bands[0]
    return {band: image[j].tobytes() for j, band in enumerate(BANDS)}


def _features(bands: dict[str, bytes], **extra: Feature) -> dict[str, Feature]:
    return {band: Feature("bytes_list", (data,)) for band, data in bands.items()} | extra


def _bad_payload(case: str) -> bytes:
    bands = _bands()
    if case == "missing band":
        del bands["B6"]
        return encode_example(bands, 1)
    if case == "short band":
        bands["B11"] = bands["B11"][:4224]
        return encode_example(bands, 1)
    if case == "band as int64":
        return encode_features(_features(bands) | {"B2": Feature("int64_list", (1,))})
    if case == "band with two values":
        return encode_features(_features(bands) | {"B2": Feature("bytes_list", (b"a", b"b"))})
    if case == "label as bytes":
        return encode_features(_features(bands, label=Feature("bytes_list", (b"2",))))
    if case == "label as float":
        return encode_features(_features(bands, label=Feature("float_list", (2.0,))))
    if case == "label out of range":
        return encode_features(_features(bands, label=Feature("int64_list", (4,))))
    if case == "label negative":
        return encode_features(_features(bands, label=Feature("int64_list", (-1,))))
    if case == "two labels":
        return encode_features(_features(bands, label=Feature("int64_list", (1, 2))))
    if case == "not protobuf":
        return b"\x0a\xff\xff\x03garbage"
    raise AssertionError(case)


BAD_RECORDS = [
    ("missing band", MissingBandError, "B6"),
    ("short band", BandTooShortError, "4224"),
    ("band as int64", MalformedExampleError, "int64_list"),
    ("band with two values", MalformedExampleError, "2 values"),
    ("label as bytes", BadLabelError, "bytes_list"),
    ("label as float", BadLabelError, "float_list"),
    ("label out of range", BadLabelError, "[4]"),
    ("label negative", BadLabelError, "[-1]"),
    ("two labels", BadLabelError, "[1, 2]"),
    ("not protobuf", MalformedExampleError, "tf.train.Example"),
]


@pytest.mark.parametrize(("case", "error", "detail"), BAD_RECORDS)
def test_bad_record_raises_its_error_naming_file_and_record(case, error, detail):
    good = make_synthetic(4, seed=5).payloads
    payloads = [*good[:3], _bad_payload(case), good[3]]
    with pytest.raises(error) as err:
        decode_records(payloads, path="s3://bucket/raw/part-1", first_index=100)
    assert isinstance(err.value, PreprocessError)
    assert err.value.path == "s3://bucket/raw/part-1"
    assert err.value.index == 103
    assert detail in err.value.reason
    assert str(err.value).startswith("s3://bucket/raw/part-1, record 103: ")
    # the good records beside it still decode
    bands, _ = decode_records(good)
    assert bands.shape[0] == 4


def test_errors_survive_pickling():
    import pickle

    err = BadLabelError("f", 3, "the label is [7]")
    again = pickle.loads(pickle.dumps(err))
    assert (type(again), again.path, again.index, str(again)) == (
        BadLabelError,
        "f",
        3,
        str(err),
    )

"""tf.train.Example wire format: encode/decode round trips and malformed payloads."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from droughtwatch_preprocess import BANDS, Feature, decode_example, encode_example, encode_features
from droughtwatch_preprocess.example import expect_bytes_features, feature_spans

from .conftest import make_synthetic


def test_encode_example_round_trips_bands_label_and_filename():
    synthetic = make_synthetic(6, seed=3)
    for i, payload in enumerate(synthetic.payloads):
        features = decode_example(payload)
        expected_keys = [*BANDS, "filename"]
        if synthetic.labels[i] is not None:
            expected_keys.insert(len(BANDS), "label")
        assert list(features) == expected_keys
        for j, band in enumerate(BANDS):
            assert features[band] == Feature("bytes_list", (synthetic.bands[i, j].tobytes(),))
        if synthetic.labels[i] is not None:
            assert features["label"] == Feature("int64_list", (synthetic.labels[i],))
        assert features["filename"] == Feature("bytes_list", (synthetic.filenames[i].encode(),))


def test_encode_example_reproduces_every_real_record(shard_payloads):
    for payload in shard_payloads:
        features = decode_example(payload)
        bands = {band: features[band].values[0] for band in BANDS}
        label = features["label"].values[0]
        filename = features["filename"].values[0].decode()
        assert encode_example(bands, label, filename) == payload


def test_encode_features_round_trips_every_kind():
    features = {
        "b": Feature("bytes_list", (b"", b"\x00\xff", b"z" * 300)),
        "i": Feature("int64_list", (0, 1, -1, 2**63 - 1, -(2**63), 300)),
        "f": Feature("float_list", (0.5, -2.0, 3.25)),
        "empty_i": Feature("int64_list", ()),
        "empty_f": Feature("float_list", ()),
        "empty_b": Feature("bytes_list", ()),
        "no_list": Feature("empty feature", ()),
    }
    assert decode_example(encode_features(features)) == features


def test_unpacked_int64_and_float_values_decode_like_packed():
    # Example{features{feature{key "x", value{int64_list{value: 5, value: -2 (unpacked)}}}}}
    minus_two = bytes([0xFE] + [0xFF] * 8 + [0x01])
    int64_list = b"\x08\x05\x08" + minus_two
    float_list = b"\x0d" + struct.pack("<f", 1.5) + b"\x0d" + struct.pack("<f", -4.0)

    def entry(key: bytes, feature: bytes) -> bytes:
        body = b"\x0a" + bytes([len(key)]) + key + b"\x12" + bytes([len(feature)]) + feature
        return b"\x0a" + bytes([len(body)]) + body

    entries = entry(b"x", b"\x1a" + bytes([len(int64_list)]) + int64_list) + entry(
        b"y", b"\x12" + bytes([len(float_list)]) + float_list
    )
    payload = b"\x0a" + bytes([len(entries)]) + entries
    assert decode_example(payload) == {
        "x": Feature("int64_list", (5, -2)),
        "y": Feature("float_list", (1.5, -4.0)),
    }


def test_unknown_fields_are_skipped():
    base = encode_example(np.zeros((11, 65, 65), np.uint8), 2)
    # an unknown varint field 5 and fixed64 field 6 after Example.features
    payload = base + b"\x28\x96\x01" + b"\x31" + b"\x00" * 8
    assert decode_example(payload) == decode_example(base)


def test_later_entry_with_the_same_key_wins():
    payload = encode_features({"label": Feature("int64_list", (1,))}) + encode_features(
        {"label": Feature("int64_list", (3,))}
    )
    assert decode_example(payload)["label"] == Feature("int64_list", (3,))


@pytest.mark.parametrize(
    "payload",
    [
        b"\x0a\x05\x0a\x03",  # features message longer than the payload
        b"\x0a",  # length missing
        b"\x0b\x00",  # wire type 3 (groups) is not supported
        b"\x0a\x02\x0a\x7f",  # map entry longer than the features message
        b"\xff" * 11,  # varint longer than 10 bytes
    ],
)
def test_malformed_payloads_raise_value_error(payload: bytes):
    with pytest.raises(ValueError):
        decode_example(payload)


def test_band_layout_fast_path_gives_the_general_parse(shard_payloads):
    expected = expect_bytes_features(BANDS, 65 * 65)
    # entry(len 4238){key "B1", value(len 4231){bytes_list(len 4228){value(len 4225)}}}
    assert expected[0].header == bytes.fromhex("0a8e21 0a024231 128721 0a8421 0a8121")
    for payload in shard_payloads:
        assert feature_spans(payload, expected) == feature_spans(payload)
    # a record laid out differently (bands reversed, one longer) parses the same either way
    bands = {band: bytes([j + 1]) * (4225 + (j == 3)) for j, band in enumerate(BANDS)}
    for mapping in (bands, dict(reversed(bands.items()))):
        payload = encode_example(mapping, 1, "f")
        assert feature_spans(payload, expected) == feature_spans(payload)


def test_encode_example_rejects_bad_shapes_and_labels():
    with pytest.raises(ValueError, match="uint8"):
        encode_example(np.zeros((11, 65, 65), np.float32))
    with pytest.raises(ValueError, match="label"):
        encode_example(np.zeros((11, 65, 65), np.uint8), 4)

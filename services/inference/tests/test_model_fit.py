"""Whether weights fit their model.json, from shapes and a probe's answer alone (no runtime):
the layout, the channels, the classes, NaN, and which input to feed; and the batch handed to
the model in its layout with at most one copy."""

from __future__ import annotations

import numpy as np
import pytest
from droughtwatch_inference.model.fit import (
    UnfitModel,
    choose_input,
    probe_problems,
    signature_problems,
)
from droughtwatch_inference.model.layout import to_layout
from droughtwatch_inference.model.manifest import ModelManifest
from droughtwatch_inference.model.predictor import Signature

MANIFEST = ModelManifest(
    name="m",
    version="v1",
    channels=("B4", "B5", "B6", "NDVI"),
    classes=("0", "1", "2", "3+"),
    reference_class_shares={"0": 0.25, "1": 0.25, "2": 0.25, "3+": 0.25},
)
NHWC = MANIFEST.model_copy(update={"contract_version": 2, "layout": "NHWC"})


def _problems(shape, out=(None, 4), manifest=MANIFEST):
    signature = Signature("x", shape, out)
    return [
        (p.source, p.field, p.message) for p in signature_problems(signature, manifest, "m.onnx")
    ]


def test_shapes_that_fit_have_no_problems() -> None:
    assert _problems((None, 4, 65, 65)) == []
    assert _problems((None, 65, 65, 4), manifest=NHWC) == []
    assert _problems(None, None) == []  # a runtime that does not say: the probe decides


def test_channels_last_weights_declared_channels_first_name_the_layout() -> None:
    ((source, field, message),) = _problems((None, 65, 65, 4))
    assert (source, field) == ("m.onnx", "layout")
    assert "N x 65 x 65 x 4, which is NHWC" in message and '"layout": "NHWC"' in message
    ((_, field, message),) = _problems((None, 4, 65, 65), manifest=NHWC)
    assert field == "layout" and '"layout": "NCHW"' in message


def test_the_wrong_number_of_channels_names_the_channels() -> None:
    ((source, field, message),) = _problems((None, 3, 65, 65))
    assert (source, field) == ("m.onnx", "channels")
    assert "takes 3 channels, but channels lists 4 (B4, B5, B6, NDVI)" in message
    ((_, field, _),) = _problems((None, 65, 65, 5), manifest=NHWC)
    assert field == "channels"


def test_another_image_size_and_a_fixed_batch_are_named() -> None:
    ((_, field, message),) = _problems((None, 4, 64, 64))
    assert field == "image_size" and "64 x 64 pixels, but image_size is 65" in message
    ((_, field, message),) = _problems((1, 4, 65, 65))
    assert field is None and "batch dimension fixed at 1" in message


def test_the_wrong_number_of_classes_names_the_classes() -> None:
    ((source, field, message),) = _problems((None, 4, 65, 65), (None, 3))
    assert (source, field) == ("m.onnx", "classes")
    assert "gives 3 classes, but classes lists 4 (0, 1, 2, 3+)" in message


def _probe(out, manifest=MANIFEST):
    return [(p.field, p.message) for p in probe_problems(np.asarray(out), manifest, "m.onnx")]


def test_probe_answers_are_checked() -> None:
    good = np.full((2, 4), 0.25, np.float32)
    assert _probe(good) == []
    ((field, message),) = _probe(np.full((2, 3), 1 / 3))
    assert field == "classes" and "3 scores per image" in message
    ((field, message),) = _probe(np.where(np.eye(2, 4) > 0, np.nan, 0.25))
    assert field == "outputs" and message.startswith("returns NaN for the probe")
    probabilities = MANIFEST.model_copy(update={"outputs": "probabilities"})
    ((field, message),) = _probe(np.full((2, 4), 2.0), probabilities)
    assert field == "outputs" and 'declare "outputs": "logits"' in message


def test_the_input_to_feed_is_the_only_one_or_the_named_one() -> None:
    assert choose_input(["images"], [], None) == "images"
    assert choose_input(["images"], ["scale"], "images") == "images"
    with pytest.raises(UnfitModel, match=r"several inputs \('a', 'b'\): name the one") as caught:
        choose_input(["a", "b"], [], None)
    assert caught.value.field == "input_name"
    with pytest.raises(UnfitModel, match=r"'c' is not an input of the model \(its inputs: 'a'"):
        choose_input(["a"], ["s"], "c")
    with pytest.raises(UnfitModel, match=r"also requires 'b'"):
        choose_input(["a", "b"], [], "a")


def test_channels_first_batches_reach_the_model_without_a_copy() -> None:
    chunk = np.random.default_rng(0).random((10, 4, 65, 65), dtype=np.float32)
    batch = chunk[2:6]  # as predict_file slices a chunk
    assert to_layout(batch, "NCHW") is batch


def test_channels_last_batches_are_copied_once() -> None:
    batch = np.random.default_rng(0).random((3, 4, 65, 65), dtype=np.float32)
    nhwc = to_layout(batch, "NHWC")
    assert nhwc.shape == (3, 65, 65, 4) and nhwc.flags.c_contiguous and nhwc.dtype == np.float32
    assert nhwc.base is None  # its own memory: one allocation, no intermediate
    np.testing.assert_array_equal(nhwc, np.moveaxis(batch, 1, -1))
    as_float64 = to_layout(batch.astype(np.float64), "NHWC")
    assert as_float64.dtype == np.float32 and as_float64.base is None

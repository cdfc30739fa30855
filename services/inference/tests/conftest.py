"""Model files for the service's tests: tiny ONNX graphs written with onnx.helper (any input
shape, output size, layout, a NaN output), and a small BaselineCNN trained once per session
with its exports in both formats and both layouts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CLASSES = ("0", "1", "2", "3+")
CHANNELS = ("B4", "B5", "B6", "NDVI")
SHARES = {"0": 0.4, "1": 0.3, "2": 0.2, "3+": 0.1}


def build_tiny_onnx(
    *,
    channels: int = 4,
    classes: int = 4,
    layout: str = "NCHW",
    probabilities: bool = False,
    nan: bool = False,
    batch: int | str = "N",
    size: int = 65,
    extra_input: str | None = None,
) -> bytes:
    """An ONNX model: each channel's mean over the image, times a fixed matrix (C x K), plus
    optionally a softmax, a NaN, or a second required input added to the means."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shape = [batch, channels, size, size] if layout == "NCHW" else [batch, size, size, channels]
    axes = [2, 3] if layout == "NCHW" else [1, 2]
    weights = np.linspace(-2, 2, channels * classes, dtype=np.float32).reshape(channels, classes)
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["means"], axes=axes, keepdims=0),
        helper.make_node("MatMul", ["means" if extra_input is None else "fed", "W"], ["scores"]),
    ]
    inputs = [helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)]
    if extra_input is not None:
        inputs.append(helper.make_tensor_value_info(extra_input, TensorProto.FLOAT, [channels]))
        nodes.insert(1, helper.make_node("Add", ["means", extra_input], ["fed"]))
    initializers = [numpy_helper.from_array(weights, "W")]
    last = "scores"
    if nan:
        initializers.append(numpy_helper.from_array(np.array([np.nan], np.float32), "nan"))
        nodes.append(helper.make_node("Mul", [last, "nan"], ["with_nan"]))
        last = "with_nan"
    if probabilities:
        nodes.append(helper.make_node("Softmax", [last], ["softmax"], axis=1))
        last = "softmax"
    nodes.append(helper.make_node("Identity", [last], ["out"]))
    graph = helper.make_graph(
        nodes,
        "tiny",
        inputs,
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [batch, classes])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()


def manifest_values(**changes: Any) -> dict[str, Any]:
    return {
        "name": "tiny",
        "version": "v1",
        "format": "onnx",
        "channels": list(CHANNELS),
        "classes": list(CLASSES),
        "reference_class_shares": SHARES,
        **changes,
    }


def write_model(folder: Path, weights: dict[str, bytes], **manifest: Any) -> Path:
    """A model folder: model.json (manifest_values with ``manifest``'s changes; a value None
    removes the key) and the weight files."""
    folder.mkdir(parents=True, exist_ok=True)
    values = {k: v for k, v in manifest_values(**manifest).items() if v is not None}
    (folder / "model.json").write_text(json.dumps(values, indent=2))
    for name, body in weights.items():
        (folder / name).write_bytes(body)
    return folder


@pytest.fixture
def tiny_onnx() -> Callable[..., bytes]:
    """build_tiny_onnx, for the tests to call with their own shapes."""
    return build_tiny_onnx


@pytest.fixture
def model_folder(tmp_path: Path) -> Callable[..., Path]:
    """write_model into a fresh folder under tmp_path."""
    count = iter(range(1_000_000))

    def make(weights: dict[str, bytes] | None = None, **manifest: Any) -> Path:
        if weights is None:
            weights = {"model.onnx": build_tiny_onnx()}
        return write_model(tmp_path / f"model-{next(count)}", weights, **manifest)

    return make


@pytest.fixture(scope="session")
def baseline_exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small BaselineCNN (trained once per session) exported three ways: model.pt2 and
    model.onnx taking N x C x 65 x 65 and giving logits, keras.onnx taking N x 65 x 65 x C and
    giving probabilities (what tf2onnx makes of a Keras classifier)."""
    from droughtwatch_inference import network, training

    model, manifest, _ = training.train_baseline(
        seed=1, train_images=300, holdout_images=200, epochs=1
    )
    out = tmp_path_factory.mktemp("baseline")
    return {
        "model": model,
        "manifest": manifest,
        "model.pt2": network.export_torch(model, out / "model.pt2"),
        "model.onnx": network.export_onnx(model, out / "model.onnx"),
        "keras.onnx": network.export_onnx(
            model, out / "keras.onnx", layout="NHWC", probabilities=True
        ),
    }

"""The model gets what model.json declares, under the real runtimes: the same weights exported
channels first and channels last (Keras-style, softmax at the end) give the same probabilities
on the real shard, under onnxruntime and under torch; the named input is the one fed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from droughtwatch_inference import predictions
from droughtwatch_inference.adapters.models import load_checked
from droughtwatch_inference.logic.inference import predict_file
from droughtwatch_inference.model.manifest import ModelManifest
from droughtwatch_preprocess import process_file


@pytest.fixture(scope="module")
def shard_processed(shard_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shard") / "part-r-00012.npz"
    process_file(shard_path, out)
    return out


def _probabilities(path: Path, manifest: ModelManifest, processed: Path, out: Path) -> np.ndarray:
    predictor, problems = load_checked(path, manifest, 1, path.name)
    assert problems == [] and predictor is not None
    predict_file(processed, predictor, manifest, 32, out)
    frame, _ = predictions.read(out)
    return frame[[predictions.probability_column(c) for c in manifest.classes]].to_numpy()


def test_channels_last_onnx_twin_gives_the_same_probabilities_on_the_shard(
    baseline_exports, shard_processed: Path, tmp_path: Path
) -> None:
    manifest = baseline_exports["manifest"].model_copy(update={"format": "onnx"})
    keras = manifest.model_copy(
        update={"contract_version": 2, "layout": "NHWC", "outputs": "probabilities"}
    )
    nchw = _probabilities(baseline_exports["model.onnx"], manifest, shard_processed, tmp_path / "a")
    nhwc = _probabilities(baseline_exports["keras.onnx"], keras, shard_processed, tmp_path / "b")
    assert nchw.shape == (79, 4)
    np.testing.assert_allclose(nhwc, nchw, rtol=0, atol=1e-6)
    # the probabilities really differ between images: the model is not a constant
    assert nchw.std(axis=0).max() > 1e-3


def test_channels_last_torch_program_gives_the_same_probabilities_on_the_shard(
    baseline_exports, shard_processed: Path, tmp_path: Path
) -> None:
    from droughtwatch_tools.baseline_cnn import export_torch

    manifest = baseline_exports["manifest"]
    nhwc_path = export_torch(baseline_exports["model"], tmp_path / "nhwc.pt2", layout="NHWC")
    nhwc_manifest = manifest.model_copy(update={"contract_version": 2, "layout": "NHWC"})
    nchw = _probabilities(baseline_exports["model.pt2"], manifest, shard_processed, tmp_path / "a")
    nhwc = _probabilities(nhwc_path, nhwc_manifest, shard_processed, tmp_path / "b")
    np.testing.assert_allclose(nhwc, nchw, rtol=0, atol=1e-6)


def test_input_name_picks_the_input_that_takes_the_images(tmp_path: Path, tiny_onnx) -> None:
    import onnx

    # a graph whose other input has a default value (an initializer that may be overridden)
    model = onnx.load_from_string(tiny_onnx())
    model.graph.input.append(
        onnx.helper.make_tensor_value_info("W", onnx.TensorProto.FLOAT, [4, 4])
    )
    path = tmp_path / "two-inputs.onnx"
    path.write_bytes(model.SerializeToString())
    base = ModelManifest(
        contract_version=2,
        name="tiny",
        version="v1",
        format="onnx",
        channels=("B4", "B5", "B6", "NDVI"),
        classes=("0", "1", "2", "3+"),
        reference_class_shares={"0": 0.25, "1": 0.25, "2": 0.25, "3+": 0.25},
    )
    named = base.model_copy(update={"input_name": "images"})
    predictor, problems = load_checked(path, named, 1, "two-inputs.onnx")
    assert problems == [] and predictor is not None
    assert predictor.signature.input_name == "images"
    wrong = base.model_copy(update={"input_name": "image"})
    predictor, problems = load_checked(path, wrong, 1, "two-inputs.onnx")
    assert predictor is None
    ((problem),) = problems
    assert (problem.source, problem.field) == ("two-inputs.onnx", "input_name")
    assert "'image' is not an input of the model (its inputs: 'images', 'W')" in problem.message


def test_a_model_with_two_required_inputs_asks_for_input_name(tmp_path: Path, tiny_onnx) -> None:
    path = tmp_path / "two.onnx"
    path.write_bytes(tiny_onnx(extra_input="bias"))
    manifest = ModelManifest(
        name="tiny",
        version="v1",
        format="onnx",
        channels=("B4", "B5", "B6", "NDVI"),
        classes=("0", "1", "2", "3+"),
        reference_class_shares={"0": 0.25, "1": 0.25, "2": 0.25, "3+": 0.25},
    )
    _, (problem,) = load_checked(path, manifest, 1, "two.onnx")
    assert problem.field == "input_name"
    assert "several inputs ('images', 'bias')" in problem.message

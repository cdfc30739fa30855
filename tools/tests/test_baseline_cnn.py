"""BaselineCNN and its two artifact formats: the exported programs compute what the network
computes, at any batch size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from droughtwatch_tools import baseline_cnn


@pytest.fixture(scope="module")
def model() -> baseline_cnn.BaselineCNN:
    """A network with random weights and random batch-norm statistics, so that folding batch
    norm into the convolutions is really exercised."""
    torch.manual_seed(0)
    net = baseline_cnn.BaselineCNN(in_channels=4)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).random((300, 4, 65, 65), dtype=np.float32)


def _eager(model: baseline_cnn.BaselineCNN, images: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return torch.softmax(model(torch.from_numpy(images)), dim=1).numpy()


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_baseline_has_at_least_250k_parameters() -> None:
    assert baseline_cnn.parameter_count(baseline_cnn.BaselineCNN()) == 390_212
    assert (
        baseline_cnn.parameter_count(baseline_cnn.for_inference(baseline_cnn.BaselineCNN()))
        == 389_732
    )


@pytest.mark.parametrize("channels", [1, 4, 14])
def test_forward_gives_one_logit_per_class(channels: int) -> None:
    net = baseline_cnn.BaselineCNN(in_channels=channels).eval()
    with torch.inference_mode():
        out = net(torch.zeros(3, channels, 65, 65))
    assert out.shape == (3, 4)


def test_folding_batch_norm_keeps_the_outputs(
    model: baseline_cnn.BaselineCNN, images: np.ndarray
) -> None:
    folded = baseline_cnn.for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # copy, not edit
    np.testing.assert_allclose(_eager(folded, images), _eager(model, images), atol=1e-5)


def test_torch_export_round_trip_matches_eager_at_any_batch_size(
    model: baseline_cnn.BaselineCNN, images: np.ndarray, tmp_path: Path
) -> None:
    path = baseline_cnn.export_torch(model, tmp_path / "model.pt2")
    loaded = torch.export.load(str(path)).module()
    expected = _eager(model, images)
    for n in (1, 3, 300):
        with torch.inference_mode():
            logits = loaded(torch.from_numpy(images[:n])).numpy()
        np.testing.assert_allclose(_softmax(logits), expected[:n], atol=1e-5)


def test_onnx_round_trip_matches_eager_at_any_batch_size(
    model: baseline_cnn.BaselineCNN, images: np.ndarray, tmp_path: Path
) -> None:
    import onnxruntime as ort

    path = baseline_cnn.export_onnx(model, tmp_path / "model.onnx")
    assert not list(tmp_path.glob("*.data"))  # one self-contained file
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == baseline_cnn.INPUT_NAME and inp.shape[1:] == [4, 65, 65]
    assert [o.name for o in session.get_outputs()] == [baseline_cnn.OUTPUT_NAME]
    expected = _eager(model, images)
    for n in (1, 5, 300):
        (logits,) = session.run(None, {baseline_cnn.INPUT_NAME: images[:n]})
        np.testing.assert_allclose(_softmax(logits), expected[:n], atol=1e-5)


def test_exported_program_rejects_another_channel_count(
    model: baseline_cnn.BaselineCNN, tmp_path: Path
) -> None:
    path = baseline_cnn.export_torch(model, tmp_path / "model.pt2")
    loaded = torch.export.load(str(path)).module()
    with pytest.raises(Exception, match=r"4|channel|shape|size"):
        loaded(torch.zeros(2, 3, 65, 65))

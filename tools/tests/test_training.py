"""Training the baseline: deterministic, better than guessing, a valid manifest whose reference
is the model's own predictions, and a published artifact that follows the model contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from droughtwatch_inference.model.manifest import ModelManifest
from droughtwatch_tools import baseline_cnn, training

Trained = training.Trained


@pytest.fixture(scope="module")
def trained(baseline: Trained) -> Trained:
    """The default baseline, as the demo trains it (the session's, trained once)."""
    return baseline


def _small(seed: int) -> Trained:
    return training.train_baseline(seed, train_images=200, holdout_images=100, epochs=1)


def test_training_is_deterministic_for_a_seed() -> None:
    a_model, a_manifest, _, a_reference = _small(3)
    b_model, b_manifest, _, b_reference = _small(3)
    for (name, a), (_, b) in zip(
        a_model.state_dict().items(), b_model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert a_manifest == b_manifest
    assert a_reference == b_reference
    assert a_manifest.version.startswith("s3-")
    assert not torch.are_deterministic_algorithms_enabled()  # the process setting is restored


def test_another_seed_gives_another_model_version() -> None:
    assert _small(3)[1].version != _small(4)[1].version


def test_trained_model_beats_the_majority_baseline_on_held_out_data(trained: Trained) -> None:
    metrics = trained.metrics
    assert metrics["holdout_images"] > 900
    assert metrics["accuracy"] > metrics["majority_accuracy"] + 0.08, metrics


def test_manifest_follows_the_contract_and_its_reference_is_the_predictions(
    trained: Trained,
) -> None:
    model, manifest, metrics, _ = trained
    assert manifest.channels == training.DEFAULT_CHANNELS
    assert manifest.classes == ("0", "1", "2", "3+")
    assert manifest.outputs == "logits" and manifest.format == "torch.export"
    assert metrics["parameters"] == baseline_cnn.parameter_count(model) >= 250_000
    # the reference shares are those of the model's predictions on the held-out images
    x, _ = training.processed_images(np.random.default_rng([7, 1]), 1000, manifest.channels)
    shares = training.class_shares(training.predict_labels(model, x))
    assert shares == manifest.reference_class_shares
    assert abs(sum(shares.values()) - 1.0) < 1e-9


def test_drought_moves_predictions_to_lower_forage_classes(trained: Trained) -> None:
    model, manifest, _, _ = trained
    share_of_zero = []
    for drought in (0.0, 0.5, 1.0):
        x, _ = training.processed_images(
            np.random.default_rng(99), 400, manifest.channels, drought=drought
        )
        share_of_zero.append(training.class_shares(training.predict_labels(model, x))["0"])
    assert share_of_zero == sorted(share_of_zero)
    assert share_of_zero[1] > manifest.reference_class_shares["0"] + 0.1


def test_class_shares_sum_to_one_and_name_every_class() -> None:
    shares = training.class_shares(np.array([0, 0, 1, 3, 3, 3, 0]))
    assert list(shares) == ["0", "1", "2", "3+"]
    assert shares["2"] == 0.0 and abs(sum(shares.values()) - 1.0) < 1e-12
    assert training.class_shares(np.array([0, 1, 2])) == pytest.approx(
        {"0": 1 / 3, "1": 1 / 3, "2": 1 / 3, "3+": 0.0}, abs=1e-6
    )


def test_publish_goes_through_the_model_publish_path(s3: Any, tmp_path: Path) -> None:
    import onnxruntime as ort

    model, manifest, _, reference = _small(5)
    keys = training.publish_model(
        s3, "dw-test-models", "models/v1/", model, manifest, reference_features=reference
    )
    here = f"models/v1/versions/{manifest.version}/"
    assert keys == [
        f"{here}model.pt2",
        f"{here}reference_features.parquet",
        f"{here}model.json",
        "models/v1/model.json",
    ]
    body = s3.get_object(Bucket="dw-test-models", Key="models/v1/model.json")["Body"].read()
    pointer = ModelManifest.model_validate(json.loads(body))
    assert pointer.weights == f"versions/{manifest.version}/model.pt2"
    assert pointer.reference_features == f"versions/{manifest.version}/reference_features.parquet"
    moved = {"contract_version", "weights", "weights_sha256", "reference_features"}
    assert pointer.model_dump(exclude=moved) == manifest.model_dump(exclude=moved)
    assert pointer.reference_metrics == manifest.reference_metrics
    stored = s3.get_object(Bucket="dw-test-models", Key=f"models/v1/{pointer.reference_features}")
    assert stored["Body"].read() == reference
    x, _ = training.processed_images(np.random.default_rng(0), 20, manifest.channels)
    with torch.inference_mode():
        eager = torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()
    pt2 = tmp_path / "model.pt2"
    s3.download_file("dw-test-models", f"{here}model.pt2", str(pt2))
    with torch.inference_mode():
        logits = torch.export.load(str(pt2)).module()(torch.from_numpy(x))
    np.testing.assert_allclose(torch.softmax(logits, dim=1).numpy(), eager, atol=1e-5)
    # the ONNX export of the same model gives the same probabilities
    onnx = training.artifacts(model, manifest, reference_features=reference)["model.onnx"]
    (logits,) = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"]).run(
        None, {baseline_cnn.INPUT_NAME: x}
    )
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(logits), 1).numpy(), eager, atol=1e-5)


def test_publish_refuses_a_model_that_does_not_fit_its_manifest(s3: Any) -> None:
    from droughtwatch_tools.errors import ModelCheckFailed

    model, manifest, _, reference = _small(5)
    wrong = manifest.model_copy(update={"channels": ("B4", "B5", "B6")})
    with pytest.raises(ModelCheckFailed) as refused:
        training.publish_model(
            s3, "dw-test-models", "m/", model, wrong, reference_features=reference
        )
    assert any("model.pt2: channels: " in p for p in refused.value.problems)
    with pytest.raises(ValueError, match="reference_features"):
        training.publish_model(s3, "dw-test-models", "m/", model, manifest)
    assert "Contents" not in s3.list_objects_v2(Bucket="dw-test-models", Prefix="m/")


def test_the_reference_is_the_held_out_images_summaries_and_quality(trained: Trained) -> None:
    import io

    import pyarrow.parquet as pq
    from droughtwatch_inference import input_summaries

    model, manifest, _, reference = trained
    assert manifest.contract_version == 2
    assert manifest.reference_features == "reference_features.parquet"
    summarised = input_summaries.summary_channels(manifest.channels)
    assert summarised == ("B4", "B5", "B6", "NDVI", "NDMI", "EVI")
    table = pq.read_table(io.BytesIO(reference))
    # the format `droughtwatch model publish --reference` writes
    assert table.column_names == ["id", "source", "label"] + [f"mean_{c}" for c in summarised]
    # the same held-out images the reference shares come from, summarised as Inference does
    x, y = training.processed_images(np.random.default_rng([7, 1]), 1000, summarised)
    assert table.num_rows == len(x) > 900
    means = table.select([f"mean_{c}" for c in summarised]).to_pandas().to_numpy()
    np.testing.assert_allclose(means, input_summaries.channel_means(x), rtol=1e-6)
    predicted = training.predict_labels(model, x[:, :4])
    assert table.column("label").to_pylist() == [manifest.classes[k] for k in predicted]
    quality = manifest.reference_metrics
    assert quality["images"] == len(y)
    assert quality["accuracy"] == pytest.approx(float((predicted == y).mean()))
    assert quality["macro_f1"] == pytest.approx(_macro_f1(y, predicted), abs=1e-12)


def _macro_f1(true: np.ndarray, predicted: np.ndarray) -> float:
    """Macro F1 as the reference states it: the unweighted mean of the F1 of each class that
    occurs among the true or the predicted labels."""
    f1 = []
    for k in np.union1d(true, predicted):
        tp = int(np.sum((predicted == k) & (true == k)))
        wrong = int(np.sum((predicted == k) != (true == k)))  # false positives + negatives
        f1.append(2 * tp / (2 * tp + wrong))
    return float(np.mean(f1))


def test_macro_f1_is_the_mean_over_classes_seen_of_each_class_f1() -> None:
    """Training's macro F1 (scikit-learn's, called as training calls it) gives these numbers."""
    from sklearn.metrics import f1_score

    def macro_f1(true: np.ndarray, predicted: np.ndarray) -> float:
        return float(f1_score(true, predicted, average="macro", zero_division=0))

    true = np.array([0, 0, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0])
    # class 0: tp 1, fp 1, fn 1 -> 0.5; class 1: tp 2, fp 1, fn 0 -> 0.8; class 2: 0
    assert macro_f1(true, predicted) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert macro_f1(true, predicted) == pytest.approx(_macro_f1(true, predicted), abs=1e-15)
    # class 3 occurs nowhere: it does not count
    assert macro_f1(np.array([3, 3]), np.array([3, 3])) == 1.0

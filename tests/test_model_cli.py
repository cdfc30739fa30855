"""`droughtwatch model check` and `model publish`, and the issue's done-when: a Keras-style
model (channels last, softmax at the end, exported to ONNX) runs through `droughtwatch local
run --model DIR` on the real shard and its class counts equal onnxruntime's on the same
images, called directly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from droughtwatch_tools.cli import app
from typer.testing import CliRunner

runner = CliRunner()
LOCAL_MODELS = "droughtwatch-local-models"
LOCAL_DATA = "droughtwatch-local-data"


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder as a TensorFlow user brings it: tf2onnx's shape of a Keras classifier
    (input N x 65 x 65 x C, softmax probabilities out), model.json declaring it."""
    from droughtwatch_tools import baseline_cnn, training

    model, manifest, _, _ = training.train_baseline(
        seed=2, train_images=300, holdout_images=200, epochs=1
    )
    folder = tmp_path_factory.mktemp("keras-model")
    baseline_cnn.export_onnx(model, folder / "model.onnx", layout="NHWC", probabilities=True)
    values = {
        "contract_version": 2,
        "name": "keras-cnn",
        "version": "k1",
        "format": "onnx",
        "layout": "NHWC",
        "outputs": "probabilities",
        "channels": list(manifest.channels),
        "classes": list(manifest.classes),
        "reference_class_shares": manifest.reference_class_shares,
    }
    (folder / "model.json").write_text(json.dumps(values, indent=2))
    return folder


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, aws_env: None) -> Path:
    monkeypatch.setenv("DROUGHTWATCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path / "home"


def _said(result: Any) -> str:
    """The command's output with rich's line wrapping undone (it wraps at the terminal's
    width, which xdist workers do not share)."""
    return " ".join(result.output.split())


def _onnxruntime_direct(model_dir: Path, raw: Path, tmp_path: Path) -> np.ndarray:
    """The model's probabilities on the raw file's images: the real preprocessing, then
    onnxruntime called directly on N x 65 x 65 x C."""
    import onnxruntime as ort
    from droughtwatch_preprocess import ProcessedReader, process_file

    manifest = json.loads((model_dir / "model.json").read_text())
    process_file(raw, tmp_path / "direct.npz")
    with ProcessedReader(tmp_path / "direct.npz") as reader:
        images = reader.read(manifest["channels"]).images
    session = ort.InferenceSession(
        str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    (name,) = [i.name for i in session.get_inputs()]
    (probabilities,) = session.run(None, {name: np.ascontiguousarray(np.moveaxis(images, 1, -1))})
    return probabilities


def test_keras_style_model_runs_through_local_run_like_onnxruntime_directly(
    home: Path, admin_dsn: str, monkeypatch, keras_model: Path, shard_path: Path, tmp_path
) -> None:
    from droughtwatch_inference import predictions

    # a user's own DSN is used for everything (migrations included): the database's owner
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_DSN", admin_dsn)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    shutil.copy(shard_path, incoming / shard_path.name)
    result = runner.invoke(
        app, ["local", "run", str(incoming), "--date", "2026-11-27", "--model", str(keras_model)]
    )
    assert result.exit_code == 0, result.output
    output = _said(result)
    assert "model keras-cnn k1 published" in output
    assert f" {shard_path.name} done 79 2 " in output  # file, status, images, blank

    (path,) = (home / "buckets" / LOCAL_DATA / "predictions").rglob("*.parquet")
    frame, meta = predictions.read(path)
    assert meta["name"] == "keras-cnn" and meta["version"] == "k1"
    direct = _onnxruntime_direct(keras_model, shard_path, tmp_path)
    classes = ["0", "1", "2", "3+"]
    pipeline_counts = [int((frame["label"] == c).sum()) for c in classes]
    direct_counts = np.bincount(direct.argmax(1), minlength=4).tolist()
    assert pipeline_counts == direct_counts and sum(direct_counts) == 79
    columns = [predictions.probability_column(c) for c in classes]
    np.testing.assert_allclose(frame[columns].to_numpy(), direct, rtol=0, atol=1e-6)


def test_model_check_prints_shares_throughput_and_memory(
    home: Path, keras_model: Path, shard_path: Path, tmp_path: Path
) -> None:
    from droughtwatch_tools import synthetic

    other = tmp_path / "generated.tfrecord"
    synthetic.write_raw_file(other, np.random.default_rng(3), 21, blank_share=0.0)
    result = runner.invoke(
        app, ["model", "check", str(keras_model), "--data", str(shard_path), str(other)]
    )
    assert result.exit_code == 0, result.output
    output = _said(result)
    assert "100 images from 2 file(s)" in output
    assert "images/s in the model" in output and "peak memory" in output
    assert "layout NHWC" in output
    assert f"{keras_model} passes the model contract" in result.output.replace("\n", "")


def test_model_check_lists_every_problem_and_exits_1(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "model.json").write_text(
        json.dumps({"name": "m", "version": "v", "format": "onnx", "labels": [], "classes": []})
    )
    result = runner.invoke(app, ["model", "check", str(folder)])
    assert result.exit_code == 1
    output = _said(result)
    for words in (
        "model.json: labels: unknown key",
        "model.json: channels: missing",
        "model.json: classes: ",
        "model.json: reference_class_shares: missing",
        "model.onnx: weights: missing from",
    ):
        assert words in output
    assert "5 problem(s)" in output


def test_model_publish_local_with_reference(
    home: Path, keras_model: Path, shard_path: Path
) -> None:
    result = runner.invoke(
        app, ["model", "publish", str(keras_model), "--local", "--reference", str(shard_path)]
    )
    assert result.exit_code == 0, result.output
    assert "Inference now reads keras-cnn k1" in _said(result)
    prefix = home / "buckets" / LOCAL_MODELS / "models" / "baseline"
    pointer = json.loads((prefix / "model.json").read_text())
    assert pointer["weights"] == "versions/k1/model.onnx"
    assert pointer["reference_features"] == "versions/k1/reference_features.parquet"
    assert (prefix / "versions" / "k1" / "reference_features.parquet").is_file()
    direct = _onnxruntime_direct(keras_model, shard_path, prefix.parent)
    counts = np.bincount(direct.argmax(1), minlength=4)
    assert list(pointer["reference_class_shares"].values()) == pytest.approx(counts / 79)
    # the same folder again: the version is reused and only the pointer is written
    again = runner.invoke(
        app, ["model", "publish", str(keras_model), "--local", "--reference", str(shard_path)]
    )
    assert again.exit_code == 0, again.output
    assert "only the pointer moved" in _said(again)


def test_model_publish_to_a_stack_bucket(home: Path, keras_model: Path, s3: Any) -> None:
    result = runner.invoke(
        app,
        [
            "model",
            "publish",
            str(keras_model),
            "--stack",
            "dev",
            "--model-bucket",
            "dw-test-models",
            "--model-prefix",
            "models/keras/",
            "--region",
            "eu-west-1",
        ],
    )
    assert result.exit_code == 0, result.output
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="dw-test-models")["Contents"]]
    assert sorted(keys) == [
        "models/keras/model.json",
        "models/keras/versions/k1/model.json",
        "models/keras/versions/k1/model.onnx",
    ]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], "say where to publish: --local, or --stack NAME"),
        (["--local", "--stack", "dev"], "say where to publish"),
        (["--local", "stray.tfrecord"], "name raw files after --reference"),
    ],
)
def test_model_publish_needs_one_destination(
    home: Path, keras_model: Path, args: list[str], words: str
) -> None:
    result = runner.invoke(app, ["model", "publish", str(keras_model), *args])
    assert result.exit_code == 2
    assert words in _said(result)

"""`droughtwatch model check` on model folders: each documented bad input gets an error naming
the file and the model.json key, and publishing it leaves the stored model as it was; every
problem is reported together; a good model runs on raw files through the real preprocessing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from droughtwatch_inference.adapters import models
from droughtwatch_inference.adapters.storage import ObjectStore
from droughtwatch_preprocess import ProcessedReader, process_file
from droughtwatch_tools.errors import ModelCheckFailed
from droughtwatch_tools.model_check import check_model
from droughtwatch_tools.model_publish import publish_folder

MODEL_BUCKET = "dw-test-models"
PREFIX = "models/byo/"


def _truncated(body: bytes) -> bytes:
    return body[: len(body) // 2]


# (case id, how to build the folder from (tiny_onnx, baseline_exports), file, key, words)
BAD: list[tuple[str, Callable[[Any, Any], dict[str, Any]], str, str, str]] = [
    (
        "wrong number of channels",
        lambda tiny, _: {"weights": {"model.onnx": tiny(channels=3)}},
        "model.onnx",
        "channels",
        "takes 3 channels, but channels lists 4 (B4, B5, B6, NDVI)",
    ),
    (
        "channels-last weights declared channels first",
        lambda tiny, _: {"weights": {"model.onnx": tiny(layout="NHWC")}},
        "model.onnx",
        "layout",
        'which is NHWC, but model.json declares layout NCHW: set "layout": "NHWC"',
    ),
    (
        "wrong number of classes",
        lambda tiny, _: {"weights": {"model.onnx": tiny(classes=3)}},
        "model.onnx",
        "classes",
        "the output gives 3 classes, but classes lists 4 (0, 1, 2, 3+)",
    ),
    (
        "NaN outputs",
        lambda tiny, _: {"weights": {"model.onnx": tiny(nan=True)}},
        "model.onnx",
        "outputs",
        "returns NaN for the probe",
    ),
    (
        "unknown keys",
        lambda tiny, _: {"weights": {"model.onnx": tiny()}, "labels": ["a", "b"]},
        "model.json",
        "labels",
        "unknown key; the model contract knows",
    ),
    (
        "weights missing from the folder",
        lambda tiny, _: {"weights": {}},
        "model.onnx",
        "weights",
        "missing from",
    ),
    (
        "truncated .onnx",
        lambda tiny, _: {"weights": {"model.onnx": _truncated(tiny())}},
        "model.onnx",
        "format",
        "the file is truncated or not a ONNX model",
    ),
    (
        "truncated .pt2",
        lambda _, exports: {
            "weights": {"model.pt2": _truncated(exports["model.pt2"].read_bytes())},
            "format": "torch.export",
        },
        "model.pt2",
        "format",
        "not a complete .pt2 archive",
    ),
]


def _objects(s3: Any) -> dict[str, bytes]:
    listing = s3.list_objects_v2(Bucket=MODEL_BUCKET).get("Contents", [])
    return {
        o["Key"]: s3.get_object(Bucket=MODEL_BUCKET, Key=o["Key"])["Body"].read() for o in listing
    }


@pytest.mark.parametrize(
    ("build", "source", "field", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD],
)
def test_bad_model_is_named_and_the_stored_model_stays(
    build, source, field, words, model_folder, tiny_onnx, baseline_exports, s3, tmp_path
) -> None:
    store = ObjectStore(client=s3)
    good = publish_folder(model_folder(version="v1"), store, MODEL_BUCKET, PREFIX)
    before = _objects(s3)

    folder = model_folder(version="v2", **build(tiny_onnx, baseline_exports))
    report = check_model(folder)
    assert not report.ok
    named = [p for p in report.problems if (p.source, p.field) == (source, field)]
    assert named, [str(p) for p in report.problems]
    assert words in named[0].message
    assert str(named[0]).startswith(f"{source}: {field}: ")

    with pytest.raises(ModelCheckFailed) as refused:
        publish_folder(folder, store, MODEL_BUCKET, PREFIX)
    assert any(p.startswith(f"{source}: {field}: ") for p in refused.value.problems)
    assert "nothing was published" in str(refused.value)
    assert _objects(s3) == before
    loaded = models.load_model(
        store, MODEL_BUCKET, PREFIX, tmp_path, threads=1, cache=models.ModelCache()
    )
    assert loaded.manifest.version == good.manifest.version == "v1"


def test_every_problem_is_reported_together(model_folder, tmp_path: Path) -> None:
    folder = model_folder(weights={}, labels=["a"], layout="NHWC", image_size=64)
    corrupt = tmp_path / "corrupt.tfrecord"
    corrupt.write_bytes(b"\x00" * 40)
    report = check_model(folder, [corrupt, tmp_path / "absent.tfrecord"])
    found = [(p.source, p.field) for p in report.problems]
    assert ("model.json", "labels") in found
    assert ("model.json", "layout") in found  # without "contract_version": 2
    assert ("model.onnx", "weights") in found
    assert ("corrupt.tfrecord", None) in found
    assert (str(tmp_path / "absent.tfrecord"), None) in found
    assert len(found) == 5, [str(p) for p in report.problems]


def test_a_good_model_runs_on_raw_files_through_the_real_preprocessing(
    model_folder, tiny_onnx, shard_path: Path, tmp_path: Path
) -> None:
    import onnxruntime as ort

    body = tiny_onnx(layout="NHWC", probabilities=True)
    folder = model_folder(
        weights={"model.onnx": body}, contract_version=2, layout="NHWC", outputs="probabilities"
    )
    report = check_model(folder, [shard_path])
    assert report.ok, [str(p) for p in report.problems]
    run = report.data
    assert run is not None and run.files == ("part-r-00012",)
    assert (run.images, run.dropped) == (79, 2)
    # what onnxruntime gives on the same preprocessed images, called directly
    process_file(shard_path, tmp_path / "shard.npz")
    with ProcessedReader(tmp_path / "shard.npz") as reader:
        images = reader.read(["B4", "B5", "B6", "NDVI"]).images
    session = ort.InferenceSession(body, providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(None, {"images": np.moveaxis(images, 1, -1).copy()})
    counts = np.bincount(probabilities.argmax(1), minlength=4)
    assert list(run.class_counts.values()) == counts.tolist()
    assert run.class_shares == pytest.approx(dict(zip(run.class_counts, counts / 79, strict=True)))
    assert run.images_per_second > 0 and run.seconds > 0
    assert report.peak_rss_mb > 50


def test_a_folder_without_model_json_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (problem,) = check_model(tmp_path / "empty").problems
    assert problem.source == "model.json" and "missing from" in problem.message
    (problem,) = check_model(tmp_path / "nowhere").problems
    assert "is not a folder" in problem.message


def test_model_json_that_is_not_json_is_named(model_folder) -> None:
    folder = model_folder()
    (folder / "model.json").write_text("{'name': 1")
    (problem,) = check_model(folder).problems
    assert problem.source == "model.json" and problem.message.startswith("is not JSON")


def test_reference_shares_are_needed_unless_computed(model_folder) -> None:
    folder = model_folder(reference_class_shares=None)
    (problem,) = check_model(folder).problems
    assert (problem.source, problem.field) == ("model.json", "reference_class_shares")
    assert json.loads((folder / "model.json").read_text()).get("reference_class_shares") is None

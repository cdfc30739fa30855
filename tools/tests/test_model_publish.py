"""Publishing a model: every object of the version first, the model.json Inference reads last,
earlier versions kept (rolling back is publishing one again), versions immutable, and with
reference files the reference class shares and input summaries computed from the data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from droughtwatch_inference import input_summaries
from droughtwatch_inference.adapters import models
from droughtwatch_inference.adapters.folder_store import FolderStore
from droughtwatch_inference.adapters.storage import ObjectStore
from droughtwatch_inference.errors import StorageError
from droughtwatch_inference.model.manifest import ModelManifest
from droughtwatch_preprocess import ProcessedReader, process_file
from droughtwatch_tools.errors import VersionConflict
from droughtwatch_tools.model_publish import publish_folder

BUCKET = "dw-test-models"
PREFIX = "models/byo/"


class RecordingStore(FolderStore):
    """A folder-backed bucket that records the keys written, in order, and can fail the n-th
    write (as a dropped connection would)."""

    def __init__(self, root: Path, fail_at: int | None = None) -> None:
        super().__init__(root)
        self.written: list[str] = []
        self.fail_at = fail_at

    def _replace(self, bucket: str, key: str, write: Any) -> None:
        if self.fail_at is not None and len(self.written) == self.fail_at:
            raise StorageError(f"cannot upload s3://{bucket}/{key}: connection reset")
        super()._replace(bucket, key, write)
        self.written.append(key)


def _load(store: Any, tmp_path: Path) -> models.LoadedModel:
    return models.load_model(
        store, BUCKET, PREFIX, tmp_path / "cache", threads=1, cache=models.ModelCache()
    )


def _pointer(store: FolderStore) -> dict[str, Any]:
    return json.loads(store.get_bytes(BUCKET, f"{PREFIX}model.json")[0])


def test_the_version_goes_up_first_and_the_pointer_last(model_folder, tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "buckets")
    published = publish_folder(model_folder(), store, BUCKET, PREFIX)
    assert store.written == [
        "models/byo/versions/v1/model.onnx",
        "models/byo/versions/v1/model.json",
        "models/byo/model.json",
    ]
    assert list(published.keys) == store.written and not published.reused
    pointer = _pointer(store)
    assert pointer["contract_version"] == 2
    assert pointer["weights"] == "versions/v1/model.onnx"
    body = store.get_bytes(BUCKET, "models/byo/versions/v1/model.onnx")[0]
    assert pointer["weights_sha256"] == models.file_sha256(tmp_path / "model-0" / "model.onnx")
    assert len(body) > 0
    # Inference reads the pointer and the weights it names
    loaded = _load(store, tmp_path)
    assert loaded.manifest.version == "v1" and loaded.manifest.format == "onnx"


def test_a_failed_upload_leaves_the_previous_version_served(model_folder, tmp_path: Path) -> None:
    root = tmp_path / "buckets"
    publish_folder(model_folder(version="v1"), FolderStore(root), BUCKET, PREFIX)
    broken = RecordingStore(root, fail_at=1)  # the weights go up, the version's model.json not
    with pytest.raises(StorageError):
        publish_folder(model_folder(version="v2"), broken, BUCKET, PREFIX)
    assert _pointer(FolderStore(root))["version"] == "v1"
    assert _load(FolderStore(root), tmp_path).manifest.version == "v1"
    # publishing v2 again completes it
    publish_folder(model_folder(version="v2"), FolderStore(root), BUCKET, PREFIX)
    assert _load(FolderStore(root), tmp_path).manifest.version == "v2"


def test_rolling_back_is_publishing_an_earlier_version_again(
    model_folder, tiny_onnx, tmp_path: Path
) -> None:
    store = RecordingStore(tmp_path / "buckets")
    first = model_folder(version="v1")
    publish_folder(first, store, BUCKET, PREFIX)
    publish_folder(
        model_folder(version="v2", weights={"model.onnx": tiny_onnx(classes=4, size=65)}),
        store,
        BUCKET,
        PREFIX,
    )
    assert _load(store, tmp_path).manifest.version == "v2"
    store.written.clear()
    again = publish_folder(first, store, BUCKET, PREFIX)
    assert again.reused and store.written == ["models/byo/model.json"]  # only the pointer moves
    assert _load(store, tmp_path).manifest.version == "v1"
    for version in ("v1", "v2"):  # both versions are kept
        store.get_bytes(BUCKET, f"{PREFIX}versions/{version}/model.json")


def test_a_published_version_does_not_change(model_folder, tiny_onnx, tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "buckets")
    publish_folder(model_folder(version="v1"), store, BUCKET, PREFIX)
    before = _pointer(store)
    other = model_folder(version="v1", weights={"model.onnx": tiny_onnx(probabilities=True)})
    with pytest.raises(VersionConflict, match=r"already published .* with other weights_sha256"):
        publish_folder(other, store, BUCKET, PREFIX)
    assert _pointer(store) == before


def test_a_version_that_cannot_name_a_folder_is_refused(model_folder, tmp_path: Path) -> None:
    from droughtwatch_tools.errors import ModelCheckFailed

    with pytest.raises(ModelCheckFailed) as refused:
        publish_folder(model_folder(version="v1/../x"), FolderStore(tmp_path), BUCKET, PREFIX)
    (problem,) = refused.value.problems
    assert problem.startswith("model.json: version: 'v1/../x' names a folder in the bucket")
    assert not (tmp_path / BUCKET).exists()


def test_reference_files_give_the_shares_and_the_input_summaries(
    model_folder, tiny_onnx, shard_path: Path, s3, tmp_path: Path
) -> None:
    """Published to (moto) S3 with the real shard as reference, from a model.json without
    reference_class_shares."""
    import onnxruntime as ort

    body = tiny_onnx()
    folder = model_folder(weights={"model.onnx": body}, reference_class_shares=None)
    store = ObjectStore(client=s3)
    published = publish_folder(folder, store, "dw-test-models", PREFIX, reference=[shard_path])
    assert published.keys[-2:] == ("models/byo/versions/v1/model.json", "models/byo/model.json")

    process_file(shard_path, tmp_path / "shard.npz")
    channels = ("B4", "B5", "B6", "NDVI", "NDMI", "EVI")
    with ProcessedReader(tmp_path / "shard.npz") as reader:
        chunk = reader.read(list(channels))
    session = ort.InferenceSession(body, providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"images": chunk.images[:, :4].copy()})
    counts = np.bincount(logits.argmax(1), minlength=4)

    pointer = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}model.json")["Body"].read())
    shares = pointer["reference_class_shares"]
    assert shares == pytest.approx(dict(zip(["0", "1", "2", "3+"], counts / 79, strict=True)))
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-9)
    assert pointer["reference_features"] == "versions/v1/reference_features.parquet"
    ModelManifest.model_validate(pointer)

    path = tmp_path / "features.parquet"
    s3.download_file(BUCKET, f"{PREFIX}{pointer['reference_features']}", str(path))
    table = pq.read_table(path)
    assert table.column_names == ["id", "source", "label"] + [f"mean_{c}" for c in channels]
    assert table.num_rows == 79
    assert table.column("id").to_pylist() == list(chunk.ids)
    assert set(table.column("source").to_pylist()) == {"part-r-00012"}
    labels = np.array(["0", "1", "2", "3+"])[logits.argmax(1)]
    assert table.column("label").to_pylist() == labels.tolist()
    for k, channel in enumerate(channels):
        values = chunk.images[:, k].reshape(79, -1).astype(np.float64)
        finite = np.isfinite(values)
        expected = np.where(finite, values, 0).sum(1) / finite.sum(1)
        np.testing.assert_allclose(table.column(f"mean_{channel}").to_numpy(), expected, rtol=1e-6)
    meta = json.loads(table.schema.metadata[input_summaries.METADATA_KEY])
    assert meta["channels"] == list(channels) and meta["version"] == "v1"


def test_a_reference_without_images_is_refused(model_folder, tmp_path: Path) -> None:
    import numpy as np
    from droughtwatch_tools import synthetic
    from droughtwatch_tools.errors import ModelCheckFailed

    blank = tmp_path / "clouds.tfrecord"
    synthetic.write_raw_file(blank, np.random.default_rng(0), 5, blank_share=1.0)
    folder = model_folder(reference_class_shares=None)
    with pytest.raises(ModelCheckFailed) as refused:
        publish_folder(folder, FolderStore(tmp_path / "b"), BUCKET, PREFIX, reference=[blank])
    assert any("reference_class_shares: no image went through" in p for p in refused.value.problems)


def test_weights_cut_short_in_the_bucket_are_refused_not_served(
    model_folder, tmp_path: Path
) -> None:
    from droughtwatch_inference.errors import InvalidModel

    store = FolderStore(tmp_path / "buckets")
    publish_folder(model_folder(), store, BUCKET, PREFIX)
    weights = store.path(BUCKET, f"{PREFIX}versions/v1/model.onnx")
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(InvalidModel, match=r"model\.onnx: weights_sha256: the file's sha256 is"):
        _load(store, tmp_path)

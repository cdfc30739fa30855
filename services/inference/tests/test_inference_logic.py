"""Inference logic on one processed file, with a stand-in predictor (no model, no S3, no
database): what is read, what is written, and each documented input error."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_inference import predictions
from droughtwatch_inference.errors import InvalidProcessedFile, ModelInputMismatch, ObjectMissing
from droughtwatch_inference.logic.inference import (
    infer_entry,
    inference_threads,
    predict_file,
    read_ahead,
)
from droughtwatch_inference.logic.ports import LoadedModelPort, StorePort
from droughtwatch_inference.model.manifest import ModelManifest
from droughtwatch_inference.model.predictor import Predictor
from droughtwatch_inference.records import LedgerEntry, RawObject
from droughtwatch_preprocess import ProcessedReader, ProcessedWriter, process_file
from droughtwatch_tools import synthetic

SHARES = {"0": 0.5, "1": 0.2, "2": 0.2, "3+": 0.1}


def _manifest(**changes: object) -> ModelManifest:
    values = {
        "name": "stub",
        "version": "v1",
        "channels": ("B4", "B5", "NDVI"),
        "classes": ("0", "1", "2", "3+"),
        "reference_class_shares": SHARES,
        **changes,
    }
    return ModelManifest(**values)


class MeanPredictor:
    """Probabilities from each image's channel means (deterministic, batch-independent); keeps
    every batch it was given."""

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []

    def predict(self, images: np.ndarray) -> np.ndarray:
        self.batches.append(images.copy())
        means = images.mean(axis=(2, 3)).astype(np.float64)  # (n, C)
        logits = np.stack([means.sum(1), -means.sum(1), means[:, 0] * 3, means[:, -1] * 5], 1)
        e = np.exp(logits - logits.max(1, keepdims=True))
        return (e / e.sum(1, keepdims=True)).astype(np.float32)


@pytest.fixture
def processed(tmp_path: Path) -> Path:
    raw = tmp_path / "day.tfrecord"
    synthetic.write_raw_file(raw, np.random.default_rng(0), 70, blank_share=0.05)
    process_file(raw, tmp_path / "day.npz", chunk_size=32)
    return tmp_path / "day.npz"


def test_predictions_file_has_one_row_per_image_in_order(processed: Path, tmp_path: Path) -> None:
    manifest = _manifest()
    predictor = MeanPredictor()
    result = predict_file(processed, predictor, manifest, 16, tmp_path / "p.parquet")
    with ProcessedReader(processed) as reader:
        chunk = reader.read(list(manifest.channels))
    assert result.rows == len(chunk.ids) > 0
    frame, meta = predictions.read(tmp_path / "p.parquet")
    assert list(frame["id"]) == list(chunk.ids)
    expected = MeanPredictor().predict(chunk.images)
    columns = [predictions.probability_column(c) for c in manifest.classes]
    np.testing.assert_allclose(frame[columns].to_numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(frame[columns].sum(axis=1), 1.0, atol=1e-5)
    assert list(frame["label"]) == [manifest.classes[k] for k in expected.argmax(1)]
    assert set(frame["model_name"]) == {"stub"} and set(frame["model_version"]) == {"v1"}
    assert meta["reference_class_shares"] == SHARES


def test_images_reach_the_model_in_the_manifest_channel_order_in_batches(
    processed: Path, tmp_path: Path
) -> None:
    manifest = _manifest(channels=("NDVI", "B5", "B4"))
    predictor = MeanPredictor()
    predict_file(processed, predictor, manifest, 10, tmp_path / "p.parquet")
    assert max(len(b) for b in predictor.batches) == 10
    seen = np.concatenate(predictor.batches)
    with ProcessedReader(processed) as reader:
        assert np.array_equal(seen, reader.read(["NDVI", "B5", "B4"]).images)


def test_batch_size_does_not_change_the_predictions(processed: Path, tmp_path: Path) -> None:
    frames = []
    for batch_size in (1, 7, 1000):
        predict_file(processed, MeanPredictor(), _manifest(), batch_size, tmp_path / "p.parquet")
        frames.append(predictions.read(tmp_path / "p.parquet")[0])
    for frame in frames[1:]:
        assert frame.equals(frames[0])


def test_model_threads_follow_the_cpus_available() -> None:
    assert inference_threads(0) == len(os.sched_getaffinity(0))
    assert inference_threads(3) == 3


def test_processed_file_without_images_gives_an_empty_predictions_file(tmp_path: Path) -> None:
    raw = tmp_path / "blank.tfrecord"
    synthetic.write_raw_file(raw, np.random.default_rng(0), 5, blank_share=1.0)
    assert process_file(raw, tmp_path / "blank.npz").kept == 0
    predictor = MeanPredictor()
    result = predict_file(tmp_path / "blank.npz", predictor, _manifest(), 8, tmp_path / "p")
    assert result.rows == 0 and predictor.batches == []
    frame, meta = predictions.read(tmp_path / "p")
    assert len(frame) == 0 and meta["version"] == "v1"
    assert "p_3+" in frame.columns


def test_missing_channel_names_the_file_the_channel_and_what_to_do(
    processed: Path, tmp_path: Path, bands_only
) -> None:
    old = bands_only(processed, tmp_path / "old.npz")
    with pytest.raises(ModelInputMismatch) as caught:
        predict_file(old, MeanPredictor(), _manifest(), 8, tmp_path / "p", name="s3://b/old.npz")
    text = caught.value.describe()
    assert "s3://b/old.npz" in text and "'NDVI'" in text
    assert "stub v1" in text and "Reprocess" in text
    assert not (tmp_path / "p").exists()
    # the same file serves a model that needs only bands
    result = predict_file(old, MeanPredictor(), _manifest(channels=("B4", "B5")), 8, tmp_path / "p")
    assert result.rows > 0


def test_processed_file_of_an_older_format_names_the_file_and_what_to_do(
    processed: Path, tmp_path: Path, as_version_1
) -> None:
    old = as_version_1(processed, tmp_path / "old.npz")
    with pytest.raises(InvalidProcessedFile) as caught:
        predict_file(old, MeanPredictor(), _manifest(), 8, tmp_path / "p", name="s3://b/old.npz")
    text = caught.value.describe()
    assert text.startswith("s3://b/old.npz: format version 1 is older than the version")
    assert "Reprocess the raw file" in text
    assert not (tmp_path / "p").exists()


def test_another_image_size_is_a_mismatch(processed: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelInputMismatch, match=r"65x65 pixels.*at 64x64"):
        predict_file(processed, MeanPredictor(), _manifest(image_size=64), 8, tmp_path / "p")


def test_non_finite_input_values_are_a_mismatch_naming_the_channel(tmp_path: Path) -> None:
    path = tmp_path / "inf.npz"
    bands = np.full((3, 11, 65, 65), 20, np.uint8)
    bands[1, [1, 3, 4], 5, 5] = (34, 0, 0)  # B2, B4, B5: EVI's denominator is 0 (NaN)
    with ProcessedWriter(path, chunk_size=3) as writer:
        writer.write_chunk(bands, np.zeros(3, np.int16), np.arange(3))
        writer.finish(source_digest="ab" * 32, source_name="x", records=3, dropped_blank=0)
    manifest = _manifest(channels=("B4", "EVI"))
    with pytest.raises(ModelInputMismatch, match=r"EVI hold non-finite"):
        predict_file(path, MeanPredictor(), manifest, 8, tmp_path / "p")


def test_read_ahead_gives_every_item_in_order_and_reads_the_next_meanwhile() -> None:
    import threading

    read_in: list[str] = []

    def items():
        for k in range(5):
            read_in.append(threading.current_thread().name)
            yield k

    ahead = read_ahead(items())
    assert next(ahead) == 0
    # the next item is read while the first is in hand (in the background: wait for it)
    deadline = time.monotonic() + 10
    while len(read_in) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(read_in) == 2
    assert [0, *ahead] == [0, 1, 2, 3, 4]
    assert all(name.startswith("read-ahead") for name in read_in)


def test_read_ahead_raises_an_error_where_its_item_is_taken() -> None:
    def items():
        yield 1
        raise ValueError("damaged chunk")

    ahead = read_ahead(items())
    assert next(ahead) == 1
    with pytest.raises(ValueError, match="damaged chunk"):
        next(ahead)


def test_a_damaged_chunk_read_ahead_fails_the_file_alone(tmp_path: Path) -> None:
    """The second chunk's bands are damaged: the error comes from the read-ahead thread and
    is the file's own InvalidProcessedFile, as when read in line."""
    import zipfile

    path = tmp_path / "two.npz"
    bands = np.full((6, 11, 65, 65), 20, np.uint8)
    with ProcessedWriter(path, chunk_size=3) as writer:
        writer.write_chunk(bands[:3], np.zeros(3, np.int16), np.arange(3))
        writer.write_chunk(bands[3:], np.zeros(3, np.int16), np.arange(3, 6))
        writer.finish(source_digest="ab" * 32, source_name="x", records=6, dropped_blank=0)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("chunk-00001/bands.npy")
    data[info.header_offset + 200 + 10_000] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidProcessedFile, match="chunk-00001/bands"):
        predict_file(path, MeanPredictor(), _manifest(), 8, tmp_path / "p")


class MemoryStore:
    """The object store port over a dict of objects (ETag: the content's MD5, as S3's)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.content_types: dict[tuple[str, str], str | None] = {}

    def list(self, bucket: str, prefix: str) -> Iterator[RawObject]:
        for (b, key), body in sorted(self.objects.items()):
            if b == bucket and key.startswith(prefix):
                yield RawObject(key, hashlib.md5(body).hexdigest(), len(body))

    def download(self, bucket: str, key: str, dest: Path, etag: str | None = None) -> Path:
        if (bucket, key) not in self.objects:
            raise ObjectMissing(f"s3://{bucket}/{key} does not exist")
        dest.write_bytes(self.objects[(bucket, key)])
        return dest

    def upload(self, path: Path, bucket: str, key: str, content_type: str | None = None) -> None:
        self.objects[(bucket, key)] = path.read_bytes()
        self.content_types[(bucket, key)] = content_type

    def get_bytes(self, bucket: str, key: str) -> tuple[bytes, str]:
        body = self.objects[(bucket, key)]
        return body, hashlib.md5(body).hexdigest()


def test_the_test_doubles_implement_the_ports() -> None:
    assert isinstance(MemoryStore(), StorePort)
    assert isinstance(MeanPredictor(), Predictor)
    assert isinstance(Loaded(_manifest()), LoadedModelPort)


def test_memory_store_lists_what_was_uploaded(tmp_path: Path) -> None:
    store = MemoryStore()
    (tmp_path / "f").write_bytes(b"abc")
    store.upload(tmp_path / "f", "data", "raw/2026-11-27/f")
    store.upload(tmp_path / "f", "data", "processed/f")
    assert [o.key for o in store.list("data", "raw/")] == ["raw/2026-11-27/f"]
    assert store.get_bytes("data", "processed/f") == (b"abc", hashlib.md5(b"abc").hexdigest())


class Loaded:
    def __init__(self, manifest: ModelManifest) -> None:
        self.manifest = manifest
        self.predictor = MeanPredictor()


def _entry(**changes: object) -> LedgerEntry:
    values = {
        "id": 4,
        "bucket": "data",
        "raw_key": "raw/2026-11-27/scene.tfrecord",
        "etag": "e",
        "size_bytes": 1,
        "batch_date": None,
        "stage": "inference",
        "status": "running",
        "attempts": 1,
        "source_digest": "0123456789abcdef" * 4,
        "processed_key": "processed/2026-11-27/scene.tfrecord/0123456789ab.npz",
        **changes,
    }
    return LedgerEntry(**values)


def test_infer_entry_uploads_predictions_under_the_key_layout(
    processed: Path, tmp_path: Path
) -> None:
    store = MemoryStore()
    entry = _entry()
    store.objects[("data", entry.processed_key)] = processed.read_bytes()
    layout = KeyLayout()
    result = infer_entry(entry, store, Loaded(_manifest()), layout, tmp_path / "work", 16)
    key = "predictions/2026-11-27/scene.tfrecord/0123456789ab.parquet"
    assert key == layout.predictions_key(entry.raw_key, entry.source_digest)
    assert result.ledger_values == {
        "predictions_key": key,
        "predicted_images": result.images,
        "model_name": "stub",
        "model_version": "v1",
    }
    assert store.content_types[("data", key)] == "application/vnd.apache.parquet"
    (tmp_path / "p.parquet").write_bytes(store.objects[("data", key)])
    frame, _ = predictions.read(tmp_path / "p.parquet")
    assert len(frame) == result.images > 0
    assert list((tmp_path / "work").iterdir()) == []  # scratch files removed


def test_infer_entry_refuses_a_row_without_a_processed_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reprocess"):
        infer_entry(
            _entry(processed_key=None),
            MemoryStore(),
            Loaded(_manifest()),
            KeyLayout(),
            tmp_path,
            16,
        )

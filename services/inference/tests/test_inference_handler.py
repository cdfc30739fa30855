"""The Inference handler and the model adapter against moto S3 and a real PostgreSQL, with a
small model really trained and exported."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_inference import input_summaries, predictions
from droughtwatch_inference.adapters import models
from droughtwatch_inference.adapters.ledger import Ledger
from droughtwatch_inference.adapters.storage import ObjectStore
from droughtwatch_inference.adapters.torch_predictor import TORCH_SLICE, TorchExportPredictor
from droughtwatch_inference.errors import (
    InvalidModel,
    ModelNotFound,
    ObjectForbidden,
    StorageError,
)
from droughtwatch_inference.handlers.inference import handler
from droughtwatch_inference.logic.ports import LoadedModelPort, StorePort
from droughtwatch_inference.model.manifest import ModelManifest
from droughtwatch_inference.model.predictor import Predictor
from droughtwatch_inference.records import RawObject
from droughtwatch_preprocess import (
    CHANNELS,
    CLASS_NAMES,
    PixelCounts,
    ProcessedReader,
    channel_means,
    feature_column,
    process_file,
)
from droughtwatch_tools import synthetic, training

DATA_BUCKET = "dw-test-data"
MODEL_BUCKET = "dw-test-models"
PREFIX = "models/baseline/"
DAY = dt.date(2026, 11, 27)
LAYOUT = KeyLayout()


class Context:
    def get_remaining_time_in_millis(self) -> int:
        return 900_000


@pytest.fixture(scope="session")
def small_model() -> tuple[Any, ModelManifest, dict[str, bytes]]:
    """A small model trained once per session, and its published files (both formats)."""
    model, manifest, _, reference = training.train_baseline(
        seed=1, train_images=300, holdout_images=200, epochs=1
    )
    return model, manifest, training.artifacts(model, manifest, reference_features=reference)


@pytest.fixture(autouse=True)
def fresh_model_cache() -> Iterator[None]:
    """Each test starts as a cold container."""
    models.CACHE.clear()
    yield
    models.CACHE.clear()


def _publish(s3: Any, files: dict[str, bytes], prefix: str = PREFIX, **manifest: Any) -> None:
    files = dict(files)
    if manifest:
        values = {**json.loads(files["model.json"]), **manifest}
        files["model.json"] = json.dumps(values).encode()
    for name, body in files.items():
        s3.put_object(Bucket=MODEL_BUCKET, Key=f"{prefix}{name}", Body=body)


def _seed(s3: Any, dsn: str, raw: Path, tmp_path: Path, name: str | None = None) -> dict:
    """A file that Processing has done: its processed file in S3, its ledger row at inference.
    Returns what the test needs to know about it."""
    name = name or raw.name
    processed = tmp_path / f"{name}.npz"
    result = process_file(raw, processed, chunk_size=64, source_name=name)
    raw_key = LAYOUT.raw_key(name, DAY)
    processed_key = LAYOUT.processed_key(raw_key, result.source_digest)
    s3.upload_file(str(raw), DATA_BUCKET, raw_key)
    s3.upload_file(str(processed), DATA_BUCKET, processed_key)
    etag = s3.head_object(Bucket=DATA_BUCKET, Key=raw_key)["ETag"].strip('"')
    with psycopg.connect(dsn, autocommit=True) as conn:
        ledger = Ledger(conn)
        ledger.register(DATA_BUCKET, [(RawObject(raw_key, etag, raw.stat().st_size), DAY)], "seed")
        entry = ledger.claim("processing", max_attempts=3, lease_seconds=600)
        assert entry is not None and entry.raw_key == raw_key
        ledger.complete(
            entry.id,
            "processing",
            source_digest=result.source_digest,
            processed_key=processed_key,
            records=result.records,
            images=result.kept,
            dropped=result.dropped_blank,
        )
    with ProcessedReader(processed) as reader:
        ids = list(reader.read(["B4"]).ids)
    return {
        "raw_key": raw_key,
        "processed_key": processed_key,
        "digest": result.source_digest,
        "kept": result.kept,
        "ids": ids,
        "local": processed,
    }


def _generated(tmp_path: Path, name: str, n: int, seed: int, drought: float = 0.0) -> Path:
    path = tmp_path / name
    synthetic.write_raw_file(path, np.random.default_rng(seed), n, drought=drought)
    return path


def _rows(dsn: str) -> list[dict]:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM ledger ORDER BY id")
        names = [d.name for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _predictions(s3: Any, key: str, tmp_path: Path) -> tuple[Any, dict]:
    local = tmp_path / "downloaded.parquet"
    s3.download_file(DATA_BUCKET, key, str(local))
    return predictions.read(local)


def test_each_file_is_predicted_and_moves_on_to_observe(
    service_env, s3, small_model, tmp_path
) -> None:
    model, manifest, files = small_model
    _publish(s3, files)
    dsn = service_env["DROUGHTWATCH_DATABASE_DSN"]
    seeded = [
        _seed(s3, dsn, _generated(tmp_path, "a.tfrecord", 90, seed=1), tmp_path),
        _seed(s3, dsn, _generated(tmp_path, "b.tfrecord", 40, seed=2, drought=1.0), tmp_path),
    ]
    response = handler({"run_id": "run-1", "input": {"trigger": "test"}}, Context())
    assert response["statusCode"] == 200, response
    counts = response["body"]["inference"]
    assert counts["files_done"] == 2 and counts["files_failed"] == 0
    assert counts["images"] == sum(s["kept"] for s in seeded) and counts["remaining"] == 0
    assert response["body"]["input"] == {"trigger": "test"}

    for row, seed in zip(_rows(dsn), seeded, strict=True):
        key = LAYOUT.predictions_key(seed["raw_key"], seed["digest"])
        assert row["stage"] == "observe" and row["status"] == "pending"
        assert row["attempts"] == 0 and row["last_error"] is None and row["lease_until"] is None
        assert row["predictions_key"] == key
        assert row["predicted_images"] == seed["kept"]
        assert row["model_name"] == manifest.name == "baseline-cnn"
        assert row["model_version"] == manifest.version
        assert row["predicted_at"] is not None
        # what Processing recorded is untouched
        assert row["processed_key"] == seed["processed_key"] and row["images"] == seed["kept"]

        frame, meta = _predictions(s3, key, tmp_path)
        assert list(frame["id"]) == seed["ids"]
        columns = [predictions.probability_column(c) for c in manifest.classes]
        probabilities = frame[columns].to_numpy()
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
        assert list(frame["label"]) == [manifest.classes[k] for k in probabilities.argmax(1)]
        np.testing.assert_allclose(frame["probability"], probabilities.max(1))
        assert set(frame["model_version"]) == {manifest.version}
        assert meta["reference_class_shares"] == manifest.reference_class_shares

        # the same probabilities as the trained model itself, through the real preprocessing
        with ProcessedReader(seed["local"]) as reader:
            images = reader.read(list(manifest.channels)).images
        import torch

        with torch.inference_mode():
            eager = torch.softmax(model(torch.from_numpy(images)), dim=1).numpy()
        np.testing.assert_allclose(probabilities, eager, atol=1e-4)

    with psycopg.connect(dsn) as conn:
        run = conn.execute("SELECT stage, status, files_done, images FROM runs").fetchone()
    assert run == ("inference", "succeeded", 2, counts["images"])


def test_rerun_changes_nothing(service_env, s3, small_model, tmp_path) -> None:
    _publish(s3, small_model[2])
    dsn = service_env["DROUGHTWATCH_DATABASE_DSN"]
    seed = _seed(s3, dsn, _generated(tmp_path, "a.tfrecord", 30, seed=3), tmp_path)
    assert handler({"run_id": "r1"}, Context())["statusCode"] == 200
    before = _rows(dsn)
    key = LAYOUT.predictions_key(seed["raw_key"], seed["digest"])
    head = s3.head_object(Bucket=DATA_BUCKET, Key=key)
    again = handler({"run_id": "r2"}, Context())
    assert again["statusCode"] == 200
    assert again["body"]["inference"]["files_done"] == 0
    assert again["body"]["inference"]["images"] == 0
    assert _rows(dsn) == before
    assert s3.head_object(Bucket=DATA_BUCKET, Key=key)["LastModified"] == head["LastModified"]


def test_missing_model_fails_the_stage_and_loses_no_file(service_env, s3, tmp_path) -> None:
    dsn = service_env["DROUGHTWATCH_DATABASE_DSN"]
    _seed(s3, dsn, _generated(tmp_path, "a.tfrecord", 10, seed=4), tmp_path)
    response = handler({"run_id": "r1"}, Context())
    assert response["statusCode"] == 500
    assert response["body"]["error"] == "ModelNotFound"
    assert f"s3://{MODEL_BUCKET}/{PREFIX}model.json" in response["body"]["cause"]
    (row,) = _rows(dsn)
    assert (row["stage"], row["status"], row["attempts"]) == ("inference", "pending", 0)
    assert row["predictions_key"] is None
    with psycopg.connect(dsn) as conn:
        run = conn.execute("SELECT stage, status, error FROM runs").fetchone()
    assert run[:2] == ("inference", "failed") and "ModelNotFound" in run[2]


def test_nothing_to_do_needs_no_model(service_env, s3) -> None:
    response = handler({"run_id": "r1"}, Context())
    assert response["statusCode"] == 200
    assert response["body"]["inference"]["files_done"] == 0


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        ({"channels": ["B4", "B99"]}, "InvalidModel", "unknown channels"),
        ({"reference_class_shares": {"0": 1.0}}, "InvalidModel", "reference_class_shares"),
        ({"weights": "missing.pt2"}, "ModelNotFound", "missing.pt2"),
        ({"channels": ["B4", "B5", "B6"]}, "InvalidModel", "does not load"),  # weights take 4
        ({"weights": "model.onnx"}, "InvalidModel", "does not load"),  # not a torch.export file
        ({"reference_features": "missing.parquet"}, "ModelNotFound", "missing.parquet"),
        ({"reference_features": "model.onnx"}, "InvalidModel", "not a Parquet file"),
    ],
)
def test_bad_model_fails_the_stage_naming_the_problem(
    service_env, s3, small_model, tmp_path, change, error, words
) -> None:
    _publish(s3, small_model[2], **change)
    dsn = service_env["DROUGHTWATCH_DATABASE_DSN"]
    _seed(s3, dsn, _generated(tmp_path, "a.tfrecord", 10, seed=5), tmp_path)
    response = handler({"run_id": "r1"}, Context())
    assert response["statusCode"] == 500
    assert response["body"]["error"] == error
    assert words in response["body"]["cause"]
    assert f"s3://{MODEL_BUCKET}/{PREFIX}" in response["body"]["cause"]
    (row,) = _rows(dsn)
    assert (row["stage"], row["status"], row["attempts"]) == ("inference", "pending", 0)


def test_processed_file_of_an_older_format_fails_alone_and_the_others_go_on(
    service_env, s3, small_model, tmp_path, as_version_1
) -> None:
    _publish(s3, small_model[2])
    dsn = service_env["DROUGHTWATCH_DATABASE_DSN"]
    good = _seed(s3, dsn, _generated(tmp_path, "good.tfrecord", 20, seed=6), tmp_path)
    old = _seed(s3, dsn, _generated(tmp_path, "old.tfrecord", 20, seed=7), tmp_path)
    # replace its processed file by what an older preprocess (format version 1) wrote
    version_1 = as_version_1(old["local"], tmp_path / "version-1.npz")
    s3.upload_file(str(version_1), DATA_BUCKET, old["processed_key"])

    response = handler({"run_id": "r1"}, Context())
    assert response["statusCode"] == 200, response
    counts = response["body"]["inference"]
    assert counts["files_done"] == 1 and counts["files_failed"] == 1
    (failure,) = counts["failures"]
    assert failure["key"] == old["raw_key"]
    good_row, old_row = _rows(dsn)
    assert good_row["stage"] == "observe" and good_row["predicted_images"] == good["kept"]
    assert (old_row["stage"], old_row["status"]) == ("inference", "failed")
    error = old_row["last_error"]
    assert error.startswith("InvalidProcessedFile:")
    assert old["processed_key"] in error and "format version 1 is older" in error
    assert "Reprocess the raw file" in error
    assert old_row["predictions_key"] is None


def test_an_expired_processed_file_goes_back_to_processing_and_a_lost_one_fails(
    service_env, s3, small_model, tmp_path
) -> None:
    """The stack's lifecycle rule deleted one file's processed file after its recorded expiry:
    that file is sent back to Processing, which makes it again from the raw file, and is
    predicted at the next run. Another's vanished before its expiry: that is a lost object."""
    from droughtwatch_inference.handlers.processing import handler as processing

    _publish(s3, small_model[2])
    dsn = service_env["DROUGHTWATCH_DATABASE_DSN"]
    expired = _seed(s3, dsn, _generated(tmp_path, "expired.tfrecord", 20, seed=8), tmp_path)
    lost = _seed(s3, dsn, _generated(tmp_path, "lost.tfrecord", 20, seed=9), tmp_path)
    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE ledger SET processed_expires_at = %s WHERE raw_key = %s",
            (yesterday, expired["raw_key"]),
        )
        conn.execute(
            "UPDATE ledger SET processed_expires_at = %s WHERE raw_key = %s",
            (yesterday + dt.timedelta(days=30), lost["raw_key"]),
        )
    for seeded in (expired, lost):
        s3.delete_object(Bucket=DATA_BUCKET, Key=seeded["processed_key"])

    response = handler({"run_id": "r1"}, Context())
    assert response["statusCode"] == 200, response
    assert response["body"]["inference"]["files_failed"] == 2
    expired_row, lost_row = _rows(dsn)
    assert (expired_row["stage"], expired_row["status"]) == ("processing", "pending")
    assert expired_row["attempts"] == 0
    error = expired_row["last_error"]
    assert error.startswith(f"ProductExpired: {expired['processed_key']} expired on ")
    assert "sent back to processing" in error and "Nothing is lost" in error
    assert (lost_row["stage"], lost_row["status"]) == ("inference", "failed")
    assert lost_row["last_error"].startswith("ObjectMissing:")

    assert processing({"run_id": "r2"}, Context())["statusCode"] == 200
    assert s3.head_object(Bucket=DATA_BUCKET, Key=expired["processed_key"])
    again = handler({"run_id": "r3"}, Context())
    assert again["body"]["inference"]["files_done"] == 1
    assert _rows(dsn)[0]["stage"] == "observe"


def test_onnx_model_gives_the_same_predictions(service_env, s3, small_model, tmp_path) -> None:
    _, manifest, files = small_model
    _publish(s3, files, format="onnx")
    dsn = service_env["DROUGHTWATCH_DATABASE_DSN"]
    seed = _seed(s3, dsn, _generated(tmp_path, "a.tfrecord", 50, seed=8), tmp_path)
    assert handler({"run_id": "r1"}, Context())["statusCode"] == 200
    frame, _ = _predictions(s3, LAYOUT.predictions_key(seed["raw_key"], seed["digest"]), tmp_path)
    columns = [predictions.probability_column(c) for c in manifest.classes]
    with ProcessedReader(seed["local"]) as reader:
        images = reader.read(list(manifest.channels)).images
    torch_probs = TorchExportPredictor(_file(files, "model.pt2", tmp_path), manifest, threads=1)
    np.testing.assert_allclose(frame[columns].to_numpy(), torch_probs.predict(images), atol=1e-4)


def _file(files: dict[str, bytes], name: str, tmp_path: Path) -> Path:
    path = tmp_path / name
    path.write_bytes(files[name])
    return path


def test_weights_load_once_per_container_and_a_new_version_is_picked_up(
    service_env, s3, small_model, tmp_path, monkeypatch
) -> None:
    _, manifest, files = small_model
    loads: list[str] = []
    real = models.load_predictor

    def counting(path: Path, manifest: ModelManifest, threads: int) -> Any:
        loads.append(manifest.version)
        return real(path, manifest, threads)

    monkeypatch.setattr(models, "load_predictor", counting)
    _publish(s3, files)
    dsn = service_env["DROUGHTWATCH_DATABASE_DSN"]
    for i in range(2):
        _seed(s3, dsn, _generated(tmp_path, f"day{i}.tfrecord", 10, seed=10 + i), tmp_path)
        assert handler({"run_id": f"r{i}"}, Context())["statusCode"] == 200
    assert loads == [manifest.version]  # two invocations, one load

    _publish(s3, files, version="v2")
    _seed(s3, dsn, _generated(tmp_path, "day2.tfrecord", 10, seed=12), tmp_path)
    assert handler({"run_id": "r2"}, Context())["statusCode"] == 200
    assert loads == [manifest.version, "v2"]
    assert [r["model_version"] for r in _rows(dsn)] == [manifest.version] * 2 + ["v2"]


def test_processed_file_without_images_gets_an_empty_predictions_file(
    service_env, s3, small_model, tmp_path
) -> None:
    _publish(s3, small_model[2])
    dsn = service_env["DROUGHTWATCH_DATABASE_DSN"]
    raw = tmp_path / "clouds.tfrecord"
    synthetic.write_raw_file(raw, np.random.default_rng(0), 6, blank_share=1.0)
    seed = _seed(s3, dsn, raw, tmp_path)
    assert seed["kept"] == 0
    response = handler({"run_id": "r1"}, Context())
    assert response["body"]["inference"]["files_done"] == 1
    (row,) = _rows(dsn)
    assert row["stage"] == "observe" and row["predicted_images"] == 0
    frame, _ = _predictions(s3, row["predictions_key"], tmp_path)
    assert len(frame) == 0


def test_real_shard_goes_through(service_env, s3, small_model, shard_path, tmp_path) -> None:
    _, manifest, files = small_model
    _publish(s3, files)
    dsn = service_env["DROUGHTWATCH_DATABASE_DSN"]
    seed = _seed(s3, dsn, shard_path, tmp_path, name="part-r-00012")
    assert seed["kept"] == 79  # two of the 81 records are blank
    response = handler({"run_id": "r1"}, Context())
    assert response["statusCode"] == 200, response
    assert response["body"]["inference"]["images"] == 79
    (row,) = _rows(dsn)
    assert row["predicted_images"] == 79 and row["model_version"] == manifest.version
    frame, meta = _predictions(s3, row["predictions_key"], tmp_path)
    assert list(frame["id"]) == seed["ids"]
    assert set(frame["label"]) <= set(manifest.classes)

    # what Observe needs is kept beside the predictions: the true labels ...
    with ProcessedReader(seed["local"]) as reader:
        chunk = reader.read(list(CHANNELS))
        bands = np.concatenate([b for _, b in reader.iter_chunks_with_bands(["B1"])])
    assert list(frame["true_label"]) == [CLASS_NAMES[k] for k in chunk.labels]
    assert frame["true_label"].value_counts().to_dict() == {"0": 46, "1": 14, "2": 14, "3+": 5}
    # ... each image's mean of the model's channels and of the indices ...
    summarised = input_summaries.summary_channels(manifest.channels)
    means = channel_means(chunk.images[:, [CHANNELS.index(c) for c in summarised]])
    np.testing.assert_array_equal(
        frame[[feature_column(c) for c in summarised]].to_numpy(), means.astype(np.float32)
    )
    # ... the raw file's record counts and the pixel counts of every band and index ...
    pixels = PixelCounts()
    pixels.add(bands, {i: chunk.images[:, CHANNELS.index(i)] for i in ("NDVI", "NDMI", "EVI")})
    assert meta["quality"] == {"records": 81, "dropped_blank": 2, "pixels": pixels.as_dict()}
    assert meta["quality"]["pixels"]["zero"]["B9"] == 227_071
    # ... and where the model's reference summaries are, copied into the data bucket
    reference = files["reference_features.parquet"]
    key = LAYOUT.reference_features_key(hashlib.sha256(reference).hexdigest())
    assert meta["reference_features_key"] == key
    assert s3.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read() == reference
    assert meta["reference_metrics"] == manifest.reference_metrics


def test_a_model_without_reference_summaries_still_predicts(
    service_env, s3, small_model, tmp_path
) -> None:
    files = {k: v for k, v in small_model[2].items() if k != "reference_features.parquet"}
    _publish(s3, files, reference_features=None, reference_metrics=None)
    dsn = service_env["DROUGHTWATCH_DATABASE_DSN"]
    _seed(s3, dsn, _generated(tmp_path, "a.tfrecord", 20, seed=4), tmp_path)
    assert handler({"run_id": "r1"}, Context())["statusCode"] == 200
    (row,) = _rows(dsn)
    _, meta = _predictions(s3, row["predictions_key"], tmp_path)
    assert meta["reference_features_key"] is None and meta["reference_metrics"] is None
    listing = s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix="predictions/_reference/")
    assert "Contents" not in listing


def _store() -> ObjectStore:
    return ObjectStore(types.SimpleNamespace(aws_endpoint_url=None, aws_region="eu-west-1"))


def test_load_model_errors_name_the_s3_uri(s3, small_model, tmp_path) -> None:
    store = _store()
    with pytest.raises(ModelNotFound, match=rf"s3://{MODEL_BUCKET}/other/model\.json"):
        models.load_model(store, MODEL_BUCKET, "other/", tmp_path, threads=1)
    s3.put_object(Bucket=MODEL_BUCKET, Key="bad/model.json", Body=b"{not json")
    with pytest.raises(InvalidModel, match=rf"s3://{MODEL_BUCKET}/bad/model\.json"):
        models.load_model(store, MODEL_BUCKET, "bad/", tmp_path, threads=1)
    files = {**small_model[2], "model.pt2": b"not a pt2 archive"}
    _publish(s3, files, prefix="corrupt/")
    with pytest.raises(InvalidModel, match=rf"s3://{MODEL_BUCKET}/corrupt/model\.pt2"):
        models.load_model(store, MODEL_BUCKET, "corrupt/", tmp_path, threads=1)
    assert list(tmp_path.rglob("*.pt2")) == []  # nothing left behind in the cache dir


def test_a_forbidden_model_stops_the_stage_unlike_a_forbidden_file(tmp_path) -> None:
    """Every file needs the model: a 403 on it is a stage error (StorageError), not the
    per-file ObjectForbidden that a 403 on one file's object is."""
    from droughtwatch_inference.logic.stage import is_stage_error

    class Forbidding:
        def get_bytes(self, bucket: str, key: str) -> tuple[bytes, str]:
            raise ObjectForbidden(f"access denied reading s3://{bucket}/{key} (AccessDenied)")

    with pytest.raises(StorageError) as raised:
        models.load_model(Forbidding(), MODEL_BUCKET, PREFIX, tmp_path, threads=1)  # type: ignore[arg-type]
    assert not isinstance(raised.value, ObjectForbidden)
    assert f"s3://{MODEL_BUCKET}/{PREFIX}model.json" in str(raised.value)
    assert is_stage_error(raised.value)
    assert not is_stage_error(ObjectForbidden("one file"))


def test_loaded_model_predicts_probabilities(s3, small_model, tmp_path) -> None:
    import torch

    model, manifest, files = small_model
    _publish(s3, files)
    store = _store()
    assert isinstance(store, StorePort)
    loaded = models.load_model(store, MODEL_BUCKET, PREFIX, tmp_path, threads=1)
    assert isinstance(loaded, LoadedModelPort) and isinstance(loaded.predictor, Predictor)
    assert loaded.manifest == manifest
    assert loaded.uri == f"s3://{MODEL_BUCKET}/{PREFIX}model.json"
    # more images than one forward pass takes: the slices are put back together in order
    n = 2 * TORCH_SLICE + 22
    images = np.random.default_rng(0).random((n, 4, 65, 65), dtype=np.float32)
    probabilities = loaded.predictor.predict(images)
    assert probabilities.shape == (n, 4) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    with torch.inference_mode():
        eager = torch.softmax(model(torch.from_numpy(images)), dim=1).numpy()
    np.testing.assert_allclose(probabilities, eager, atol=1e-5)
    # the second call is served from the container's cache
    assert models.load_model(_store(), MODEL_BUCKET, PREFIX, tmp_path, threads=1) is loaded


def test_torch_model_runs_on_the_threads_it_was_loaded_with(small_model, tmp_path) -> None:
    import torch

    _, manifest, files = small_model
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        predictor = TorchExportPredictor(_file(files, "model.pt2", tmp_path), manifest, threads=1)
        predictor.predict(np.zeros((1, 4, 65, 65), np.float32))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)

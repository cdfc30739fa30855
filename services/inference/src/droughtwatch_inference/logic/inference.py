"""Inference: run the model over one processed file and write its predictions file.

The processed file is read chunk by chunk with exactly the channels the model's manifest
names (the preprocessing shared with training does the rest), so memory stays bounded by the
chunk size whatever the file size.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_preprocess import MissingChannelError, ProcessedFormatError, ProcessedReader

from droughtwatch_inference import predictions
from droughtwatch_inference.errors import (
    InvalidProcessedFile,
    ModelInputMismatch,
    ModelOutputError,
)
from droughtwatch_inference.logic.ports import StorePort
from droughtwatch_inference.logic.stage import FileResult
from droughtwatch_inference.manifest import ModelManifest
from droughtwatch_inference.records import LedgerEntry

PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"


@runtime_checkable
class Predictor(Protocol):
    """A loaded model (adapters.models loads one for torch.export and ONNX; each sets its own
    runtime's threads, so this module imports neither runtime)."""

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities float32 (n, K), rows summing to one, of images float32
        (n, C, H, W) with the manifest's channels in order; n >= 1. The predictor gives the
        model the layout it declares."""
        ...


@runtime_checkable
class LoadedModelPort(Protocol):
    """adapters.models.LoadedModel; a stub in the tests."""

    @property
    def manifest(self) -> ModelManifest: ...
    @property
    def predictor(self) -> Predictor: ...


@dataclass(frozen=True)
class FilePredictions:
    rows: int  # images predicted (= rows written)
    seconds: float  # wall time of predict_file

    @property
    def images_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def inference_threads(configured: int = 0) -> int:
    """Threads for the model: ``configured``, or 0 = the CPUs available to this process."""
    if configured > 0:
        return configured
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _mismatch(name: str, manifest: ModelManifest, problem: str) -> ModelInputMismatch:
    return ModelInputMismatch(
        f"{name}: {problem}; model {manifest.name} {manifest.version} needs channels "
        f"{', '.join(manifest.channels)} at {manifest.image_size}x{manifest.image_size} pixels."
    )


def predict_file(
    processed_path: Path,
    predictor: Predictor,
    manifest: ModelManifest,
    batch_size: int,
    out_path: Path,
    *,
    name: str | None = None,
) -> FilePredictions:
    """Predict every image of the processed file and write the predictions Parquet file.

    ``name`` is what errors call the file (default: its path). Raises ModelInputMismatch when
    the file lacks a channel the model needs, has another image size, or holds values the
    model cannot take (non-finite), ModelOutputError when the model answers an image with
    anything but finite probabilities, and InvalidProcessedFile when it is not a processed
    file this preprocess reads (another format version, a damaged archive). A file with no
    images gives an empty predictions file.
    """
    started = time.perf_counter()
    name = name or str(processed_path)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tables = []
    try:
        reader = ProcessedReader(processed_path, name=name)
    except ProcessedFormatError as exc:
        raise InvalidProcessedFile(str(exc)) from exc
    with reader:
        size = int(reader.meta["image_size"])
        if size != manifest.image_size:
            raise _mismatch(name, manifest, f"the images are {size}x{size} pixels")
        try:
            chunks = reader.iter_chunks(list(manifest.channels))
            for chunk in chunks:
                probabilities = np.empty((len(chunk.ids), len(manifest.classes)), np.float32)
                for start in range(0, len(chunk.ids), batch_size):
                    batch = chunk.images[start : start + batch_size]
                    _check_finite(batch, name, manifest)
                    out = predictor.predict(batch)
                    _check_outputs(out, chunk.ids[start : start + len(batch)], name, manifest)
                    probabilities[start : start + len(batch)] = out
                tables.append(predictions.build_table(chunk.ids, probabilities, manifest))
        except MissingChannelError as exc:
            raise _mismatch(
                name,
                manifest,
                f"the processed file has no channel {exc.channel!r} (it holds "
                f"{', '.join(exc.available)})",
            ) from exc
        except ProcessedFormatError as exc:  # a damaged member, found as it is read
            raise InvalidProcessedFile(str(exc)) from exc
    if not tables:
        empty = np.zeros((0, len(manifest.classes)), np.float32)
        tables.append(predictions.build_table(np.array([], dtype=str), empty, manifest))
    rows = predictions.write(tables, out_path)
    return FilePredictions(rows=rows, seconds=time.perf_counter() - started)


def _check_finite(batch: np.ndarray, name: str, manifest: ModelManifest) -> None:
    finite = np.isfinite(batch)
    if finite.all():
        return
    bad = [manifest.channels[c] for c in range(batch.shape[1]) if not finite[:, c].all()]
    raise _mismatch(
        name,
        manifest,
        f"channel(s) {', '.join(bad)} hold non-finite values (EVI is infinite where its "
        "denominator is zero), which the model cannot take",
    )


def _check_outputs(out: np.ndarray, ids: np.ndarray, name: str, manifest: ModelManifest) -> None:
    expected = (len(ids), len(manifest.classes))
    if out.shape != expected:
        raise ModelOutputError(
            f"{name}: model {manifest.name} {manifest.version} returned shape {out.shape} for "
            f"{len(ids)} images, expected {expected}."
        )
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        bad = [str(i) for i in ids[~finite][:3]]
        raise ModelOutputError(
            f"{name}: model {manifest.name} {manifest.version} returned non-finite scores "
            f"(NaN or infinite) for {int((~finite).sum())} image(s), e.g. {', '.join(bad)}."
        )


def infer_entry(
    entry: LedgerEntry,
    store: StorePort,
    model: LoadedModelPort,
    layout: KeyLayout,
    work_dir: Path,
    batch_size: int,
) -> FileResult:
    """Download the entry's processed file, predict it, upload the predictions file."""
    if not entry.processed_key or not entry.source_digest:
        raise ValueError(
            f"{entry.raw_key}: the ledger row has no processed file (processed_key or "
            "source_digest is empty); reprocess it"
        )
    manifest = model.manifest
    scratch = work_dir / f"inference-{entry.id}"
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        processed = store.download(entry.bucket, entry.processed_key, scratch / "processed.npz")
        out = scratch / "predictions.parquet"
        result = predict_file(
            processed,
            model.predictor,
            manifest,
            batch_size,
            out,
            name=f"s3://{entry.bucket}/{entry.processed_key}",
        )
        key = layout.predictions_key(entry.raw_key, entry.source_digest)
        store.upload(out, entry.bucket, key, PARQUET_CONTENT_TYPE)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return FileResult(
        ledger_values={
            "predictions_key": key,
            "predicted_images": result.rows,
            "model_name": manifest.name,
            "model_version": manifest.version,
        },
        images=result.rows,
        extra={
            "predictions_key": key,
            "model_version": manifest.version,
            "images_per_second": round(result.images_per_second, 1),
        },
    )

"""Inference: run the model over one processed file and write its predictions file.

The processed file is read chunk by chunk (the preprocessing shared with training does the
rest), so memory stays bounded by the chunk size whatever the file size. Each chunk is read
with the model's channels first, then the indices the model does not read: the model sees
exactly its channels, and the images are summarised where they are, for Observe (each
image's channel means, for input drift; the file's pixel counts per band, on the raw uint8
bands, and per index, for data quality; its true labels, for model quality). What summarising
costs is in the README's benchmarks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import shutil
import time
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.retention import is_expired
from droughtwatch_contract.stages import STAGES
from droughtwatch_preprocess import (
    CLASS_NAMES,
    INDICES,
    UNKNOWN_LABEL,
    MissingChannelError,
    PixelCounts,
    ProcessedFormatError,
    ProcessedReader,
    channel_means_and_finite,
    feature_column,
)

from droughtwatch_inference import input_summaries, predictions
from droughtwatch_inference.errors import (
    InvalidProcessedFile,
    ModelInputMismatch,
    ModelOutputError,
    ObjectMissing,
    ProductExpired,
)
from droughtwatch_inference.logic.ports import LoadedModelPort, StorePort
from droughtwatch_inference.logic.stage import FileResult
from droughtwatch_inference.model.manifest import ModelManifest
from droughtwatch_inference.model.predictor import Predictor
from droughtwatch_inference.records import LedgerEntry

PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"
# The stage that writes the processed files Inference reads (and can write them again).
PROCESSED_BY = STAGES.writer_of("processed").name
T = TypeVar("T")


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
    reference_features_key: str | None = None,
) -> FilePredictions:
    """Predict every image of the processed file and write the predictions Parquet file, with
    the images' true labels, input summaries and pixel counts (see the module's docstring).

    ``name`` is what errors call the file (default: its path); ``reference_features_key`` is
    recorded in the file's metadata for Observe. Raises ModelInputMismatch when the file lacks
    a channel the model needs, has another image size, or holds values the model cannot take
    (non-finite), ModelOutputError when the model answers an image with anything but finite
    probabilities, and InvalidProcessedFile when it is not a processed file this preprocess
    reads (another format version, a damaged archive). A file with no images gives an empty
    predictions file.
    """
    started = time.perf_counter()
    name = name or str(processed_path)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tables = []
    model_channels = len(manifest.channels)
    try:
        reader = ProcessedReader(processed_path, name=name)
    except ProcessedFormatError as exc:
        raise InvalidProcessedFile(str(exc)) from exc
    with reader, contextlib.ExitStack() as stack:
        size = int(reader.meta["image_size"])
        if size != manifest.image_size:
            raise _mismatch(name, manifest, f"the images are {size}x{size} pixels")
        # An older processed file may lack the indices: only what it holds is summarised.
        summarised = [
            c for c in input_summaries.summary_channels(manifest.channels) if c in reader.channels
        ]
        channels = [*manifest.channels, *(c for c in summarised if c not in manifest.channels)]
        at = [channels.index(c) for c in summarised]
        at_indices = {c: channels.index(c) for c in INDICES if c in channels}
        labels = _label_names(reader.meta)
        pixels = PixelCounts()
        build = partial(
            predictions.build_table,
            manifest=manifest,
            reference_features_key=reference_features_key,
        )
        try:
            if "bands" in reader.meta["stored"]:
                chunks = reader.iter_chunks_with_bands(channels)
            else:
                chunks = zip(reader.iter_chunks(channels), repeat(None))
            if int(reader.meta["chunks"]) > 1:  # one chunk: nothing to read meanwhile
                chunks = read_ahead(chunks)
                stack.callback(chunks.close)  # before the reader closes: no read in flight
            for chunk, bands in chunks:
                # every channel read is summarised (the model's and the indices)
                means, all_finite = channel_means_and_finite(chunk.images)
                _check_finite(all_finite[:model_channels], name, manifest)
                pixels.add(
                    bands,
                    {c: chunk.images[:, k] for c, k in at_indices.items()},
                    finite={c for c, k in at_indices.items() if all_finite[k]},
                )
                probabilities = np.empty((len(chunk.ids), len(manifest.classes)), np.float32)
                for start in range(0, len(chunk.ids), batch_size):
                    batch = chunk.images[start : start + batch_size, :model_channels]
                    out = predictor.predict(batch)
                    _check_outputs(out, chunk.ids[start : start + len(batch)], name, manifest)
                    probabilities[start : start + len(batch)] = out
                tables.append(
                    build(
                        chunk.ids,
                        probabilities,
                        true_labels=[labels.get(int(k)) for k in chunk.labels],
                        features={
                            feature_column(c): means[:, at[k]] for k, c in enumerate(summarised)
                        },
                    )
                )
        except MissingChannelError as exc:
            raise _mismatch(
                name,
                manifest,
                f"the processed file has no channel {exc.channel!r} (it holds "
                f"{', '.join(exc.available)})",
            ) from exc
        except ProcessedFormatError as exc:  # a damaged member, found as it is read
            raise InvalidProcessedFile(str(exc)) from exc
        quality = {
            "records": reader.meta.get("records"),
            "dropped_blank": reader.meta.get("dropped_blank"),
            "pixels": pixels.as_dict(),
        }
    if not tables:
        empty = np.zeros((0, len(manifest.classes)), np.float32)
        nothing = np.zeros(0, np.float32)
        tables.append(
            build(
                np.array([], dtype=str),
                empty,
                true_labels=[],
                features={feature_column(c): nothing for c in summarised},
            )
        )
    rows = predictions.write(tables, out_path, quality=quality)
    return FilePredictions(rows=rows, seconds=time.perf_counter() - started)


def read_ahead(items: Iterator[T]) -> Generator[T, None, None]:
    """``items`` in order, each next one produced in a background thread while the caller works
    on the current one. Reading a chunk (the archive's CRC, the bands' normalisation, the
    indices) is numpy and zlib work that releases the GIL, so on two or more cores it overlaps
    summarising and predicting the previous chunk. An error in producing an item is raised
    where that item is taken; closing the generator waits for the read in flight."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as pool:
        pending = pool.submit(next, items, _END)
        while True:
            item = pending.result()
            if item is _END:
                return
            pending = pool.submit(next, items, _END)
            yield item


_END: Any = object()  # read_ahead's end of the items


def _label_names(meta: dict) -> dict[int, str]:
    """Class index -> name as the processed file names them (UNKNOWN_LABEL has no name)."""
    names = meta.get("class_names") or CLASS_NAMES
    unknown = int(meta.get("unknown_label", UNKNOWN_LABEL))
    return {k: str(n) for k, n in enumerate(names) if k != unknown}


def _check_finite(all_finite: np.ndarray, name: str, manifest: ModelManifest) -> None:
    """The model's channels of a chunk must be finite: ``all_finite`` says, per model channel,
    whether every pixel of the chunk is (``channel_means_and_finite``; a band always is, uint8
    / 255)."""
    bad = [channel for channel, ok in zip(manifest.channels, all_finite, strict=True) if not ok]
    if bad:
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


def publish_reference_features(
    store: StorePort, bucket: str, layout: KeyLayout, body: bytes | None, work_dir: Path
) -> str | None:
    """Copy a model's reference input summaries into the data bucket, under a key made of
    their digest, and return that key (None when the model has none). Observe reads them
    there: it may read the predictions prefix, not the model bucket. The same bytes always go
    to the same key, so copying again (each invocation does) changes nothing."""
    if body is None:
        return None
    digest = hashlib.sha256(body).hexdigest()
    key = layout.reference_features_key(digest)
    path = work_dir / f"reference-{digest[:12]}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    try:
        store.upload(path, bucket, key, PARQUET_CONTENT_TYPE)
    finally:
        path.unlink(missing_ok=True)
    return key


def _download_processed(entry: LedgerEntry, store: StorePort, dest: Path) -> Path:
    """The entry's processed file; one that the stack's lifecycle rule has expired (the ledger
    knows when) is ProductExpired, which sends the file back to the stage that makes it."""
    try:
        return store.download(entry.bucket, str(entry.processed_key), dest)
    except ObjectMissing:
        now = dt.datetime.now(dt.UTC)
        if not is_expired(entry.processed_expires_at, now):
            raise
        expired = entry.processed_expires_at
        raise ProductExpired(
            f"{entry.processed_key} expired on {expired:%Y-%m-%d %H:%M} UTC (the stack keeps "
            f"processed files processed_retention_days) before {entry.raw_key} was predicted; "
            f"sent back to {PROCESSED_BY}, which processes the raw file again",
            back_to=PROCESSED_BY,
        ) from None


def infer_entry(
    entry: LedgerEntry,
    store: StorePort,
    model: LoadedModelPort,
    layout: KeyLayout,
    work_dir: Path,
    batch_size: int,
    reference_features_key: str | None = None,
) -> FileResult:
    """Download the entry's processed file, predict it, upload the predictions file (which
    names ``reference_features_key``, the model's reference summaries for Observe)."""
    if not entry.processed_key or not entry.source_digest:
        raise ValueError(
            f"{entry.raw_key}: the ledger row has no processed file (processed_key or "
            "source_digest is empty); reprocess it"
        )
    manifest = model.manifest
    scratch = work_dir / f"inference-{entry.id}"
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        processed = _download_processed(entry, store, scratch / "processed.npz")
        out = scratch / "predictions.parquet"
        result = predict_file(
            processed,
            model.predictor,
            manifest,
            batch_size,
            out,
            name=f"s3://{entry.bucket}/{entry.processed_key}",
            reference_features_key=reference_features_key,
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

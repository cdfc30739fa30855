"""Train the baseline model on generated normal-weather data and publish it under the model
contract (through `droughtwatch model publish`'s path, model_publish), with the reference
input summaries and quality of its held-out images. Imports torch.

The images go through the real preprocessing (a generated raw TFRecord -> ``process_file`` ->
``ProcessedReader``), the same path Inference reads, so training sees exactly what inference
sees.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from droughtwatch_inference import input_summaries
from droughtwatch_inference.adapters.storage import ObjectStore
from droughtwatch_inference.model.manifest import (
    CONTRACT_VERSION,
    MANIFEST_NAME,
    REFERENCE_FEATURES_NAME,
    WEIGHTS_NAME,
    ModelManifest,
)
from droughtwatch_preprocess import CLASS_NAMES, ProcessedReader, process_file
from sklearn.metrics import f1_score
from torch import nn

from droughtwatch_tools import synthetic
from droughtwatch_tools.baseline_cnn import BaselineCNN, export_onnx, export_torch, parameter_count
from droughtwatch_tools.class_shares import class_shares

#: Bands and index that carry the vegetation signal: red, near infrared, short-wave infrared
#: and NDVI (which drought lowers).
DEFAULT_CHANNELS: tuple[str, ...] = ("B4", "B5", "B6", "NDVI")
MODEL_NAME = "baseline-cnn"
# The seed of the baseline that a first `local run` trains and the tests share.
BASELINE_SEED = 7
FORMATS: tuple[str, ...] = ("torch.export", "onnx")


class Trained(NamedTuple):
    """What ``train_baseline`` returns: the model, its manifest, training metrics, and the
    reference input summaries its manifest names (Parquet bytes, published beside it)."""

    model: BaselineCNN
    manifest: ModelManifest
    metrics: dict[str, Any]
    reference_features: bytes


def processed_images(
    rng: np.random.Generator,
    n: int,
    channels: Sequence[str],
    *,
    drought: float = 0.0,
    work_dir: Path | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` generated raw images through the real preprocessing: (images float32 (m, C, 65,
    65) in ``channels`` order, labels int64 (m,)), m <= n because blank images are dropped."""
    with _scratch(work_dir) as scratch:
        synthetic.write_raw_file(scratch / "raw.tfrecord", rng, n, drought)
        process_file(scratch / "raw.tfrecord", scratch / "processed.npz")
        with ProcessedReader(scratch / "processed.npz") as reader:
            chunk = reader.read(list(channels))
    return chunk.images, chunk.labels.astype(np.int64)


@contextlib.contextmanager
def _scratch(work_dir: Path | None) -> Iterator[Path]:
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="training-") as name:
        yield Path(name)


@contextlib.contextmanager
def _deterministic(seed: int) -> Iterator[None]:
    """Seeded, deterministic torch for the duration of training; the process's previous
    setting is restored afterwards (other code in the process may not want it)."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def predict_labels(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Predicted class indices of ``images`` (eager model, eval mode)."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            logits = model(torch.from_numpy(images[start : start + batch_size]))
            out.append(logits.argmax(dim=1).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def weights_digest(model: nn.Module) -> str:
    """sha256 of the model's parameters and buffers, in state_dict order."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def train_baseline(
    seed: int = 0,
    *,
    channels: Sequence[str] = DEFAULT_CHANNELS,
    train_images: int = 2000,
    holdout_images: int = 1000,
    epochs: int = 2,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    name: str = MODEL_NAME,
    work_dir: Path | None = None,
) -> Trained:
    """Train BaselineCNN on generated normal-weather data, deterministically for a ``seed``
    (bit for bit on one machine and torch thread count; another thread count sums gradients
    in another order, so the last bits of the weights, and the version, differ).

    Returns (model in eval mode, its manifest, metrics, reference features). The manifest's
    version is ``s<seed>-<first 10 hex digits of the weights' sha256>``; its reference is the
    ``holdout_images`` held-out normal images: ``reference_class_shares`` are the class shares
    of the model's predictions on them (prediction drift is measured against them),
    ``reference_metrics`` its accuracy and macro F1 on them (the accuracy drop is measured
    against it), and ``reference_features`` names the Parquet file of their input summaries
    (input drift is measured against them). Metrics: ``accuracy`` and
    ``majority_accuracy`` (always predicting the most common training class) on the held-out
    images, ``train_seconds`` (all of it; ``data_seconds`` of it generating and preprocessing
    the images), ``parameters``, image counts, ``epochs`` and ``final_loss``.
    """
    channels = tuple(channels)
    started = time.perf_counter()
    train_x, train_y = processed_images(
        np.random.default_rng([seed, 0]), train_images, channels, work_dir=work_dir
    )
    # the held-out images with every channel summarised for input drift (the model's first)
    summarised = input_summaries.summary_channels(channels)
    holdout_all, holdout_y = processed_images(
        np.random.default_rng([seed, 1]), holdout_images, summarised, work_dir=work_dir
    )
    holdout_x = np.ascontiguousarray(holdout_all[:, : len(channels)])
    data_seconds = time.perf_counter() - started

    with _deterministic(seed):
        # channels_last is several times faster for these convolutions on CPU
        model = BaselineCNN(in_channels=len(channels), num_classes=len(CLASS_NAMES))
        model = model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
        steps = epochs * -(-len(train_x) // batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=learning_rate, total_steps=max(steps, 1)
        )
        loss_fn = nn.CrossEntropyLoss()
        order = torch.Generator().manual_seed(seed)
        x_all = torch.from_numpy(train_x).contiguous(memory_format=torch.channels_last)
        y_all = torch.from_numpy(train_y)
        loss = torch.zeros(())
        model.train()
        for _ in range(epochs):
            for batch in torch.randperm(len(x_all), generator=order).split(batch_size):
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(x_all[batch]), y_all[batch])
                loss.backward()
                optimizer.step()
                schedule.step()
        model = model.to(memory_format=torch.contiguous_format).eval()
    train_seconds = time.perf_counter() - started

    predicted = predict_labels(model, holdout_x)
    majority = int(np.bincount(train_y, minlength=len(CLASS_NAMES)).argmax())
    manifest = ModelManifest(
        contract_version=CONTRACT_VERSION,
        name=name,
        version=f"s{seed}-{weights_digest(model)[:10]}",
        format="torch.export",
        channels=channels,
        classes=CLASS_NAMES,
        outputs="logits",
        reference_class_shares=class_shares(predicted),
        reference_features=REFERENCE_FEATURES_NAME,
        reference_metrics={
            "accuracy": float((predicted == holdout_y).mean()),
            # scikit-learn's macro F1, as Observe's model quality reports it (Evidently's)
            "macro_f1": float(f1_score(holdout_y, predicted, average="macro", zero_division=0)),
            "images": len(holdout_y),
        },
        description=(
            f"BaselineCNN ({parameter_count(model):,} parameters) trained on {len(train_x)}"
            f" generated normal-weather images (seed {seed}); reference shares from its"
            f" predictions on {len(holdout_x)} held-out generated images."
        ),
    )
    metrics = {
        "accuracy": float((predicted == holdout_y).mean()) if len(holdout_y) else float("nan"),
        "majority_accuracy": float((holdout_y == majority).mean()) if len(holdout_y) else 0.0,
        "train_seconds": round(train_seconds, 3),
        "data_seconds": round(data_seconds, 3),
        "train_images": len(train_x),
        "holdout_images": len(holdout_x),
        "epochs": epochs,
        "parameters": parameter_count(model),
        "final_loss": float(loss.detach()),
    }
    reference = reference_summaries(holdout_all, summarised, predicted, manifest, seed)
    return Trained(model, manifest, metrics, reference)


def reference_summaries(
    images: np.ndarray,
    channels: Sequence[str],
    predicted: np.ndarray,
    manifest: ModelManifest,
    seed: int,
) -> bytes:
    """The reference input summaries of the held-out ``images`` (float32 (n, C, 65, 65) in
    ``channels`` order) as `droughtwatch model publish --reference` writes them
    (input_summaries): one row per image, its predicted class and a ``mean_<channel>``
    column per channel."""
    ids = np.array([f"holdout-s{seed}-{i:06d}" for i in range(len(images))])
    labels = [manifest.classes[k] for k in predicted]
    table = input_summaries.summary_table(
        ids, f"generated held-out images (seed {seed})", labels, images, channels
    )
    with tempfile.TemporaryDirectory(prefix="reference-") as name:
        path = Path(name) / REFERENCE_FEATURES_NAME
        input_summaries.write([table], path, model=manifest.name, version=manifest.version)
        return path.read_bytes()


def artifacts(
    model: BaselineCNN,
    manifest: ModelManifest,
    formats: Sequence[str] = FORMATS,
    reference_features: bytes | None = None,
) -> dict[str, bytes]:
    """The files of a published model: {file name: bytes}, model.json included, and the
    reference input summaries when the manifest names them (then they must be given)."""
    formats = tuple(formats)
    unknown = set(formats) - set(WEIGHTS_NAME)
    if unknown:
        raise ValueError(f"unknown formats {sorted(unknown)}; known: {sorted(WEIGHTS_NAME)}")
    if manifest.format not in formats:
        raise ValueError(f"the manifest names format {manifest.format!r}, not in {formats}")
    if (manifest.reference_features is None) != (reference_features is None):
        raise ValueError(
            "pass reference_features exactly when the manifest names a reference_features file"
        )
    exporters = {"torch.export": export_torch, "onnx": export_onnx}
    files: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="export-") as name:
        for fmt in formats:
            file_name = manifest.weights_name if fmt == manifest.format else WEIGHTS_NAME[fmt]
            path = exporters[fmt](model, Path(name) / file_name)
            files[file_name] = path.read_bytes()
    if manifest.reference_features is not None and reference_features is not None:
        files[manifest.reference_features] = reference_features
    files[MANIFEST_NAME] = manifest.model_dump_json(indent=2).encode()
    return files


def publish_model(
    store: Any,
    bucket: str,
    prefix: str,
    model: BaselineCNN,
    manifest: ModelManifest,
    reference_features: bytes | None = None,
) -> list[str]:
    """Export ``model`` in its manifest's format and publish it under ``s3://bucket/prefix``
    the way `droughtwatch model publish` does (checked, under versions/<version>/, the
    top-level model.json last), with the reference input summaries its manifest names.
    ``store`` is a boto3 S3 client or anything with ObjectStore's get_bytes, upload and
    put_bytes. Returns the keys written.
    """
    from droughtwatch_tools.model_publish import publish_folder

    if not hasattr(store, "put_bytes"):
        store = ObjectStore(client=store)
    with tempfile.TemporaryDirectory(prefix="publish-") as name:
        folder = Path(name)
        files = artifacts(model, manifest, (manifest.format,), reference_features)
        for file_name, body in files.items():
            (folder / file_name).write_bytes(body)
        return list(publish_folder(folder, store, bucket, prefix).keys)


def publish_trained(store: Any, bucket: str, prefix: str, trained: Trained) -> list[str]:
    """Publish a trained baseline with the reference input summaries its manifest names, as
    `publish_model` does; returns the keys written."""
    return publish_model(
        store,
        bucket,
        prefix,
        trained.model,
        trained.manifest,
        reference_features=trained.reference_features,
    )


def train_and_publish(
    store: Any, bucket: str, prefix: str, *, seed: int = BASELINE_SEED
) -> Trained:
    """Train the baseline on generated data (`train_baseline`) and publish it under
    ``s3://bucket/prefix`` (`publish_trained`): what the demo and a first `local run` do."""
    trained = train_baseline(seed=seed)
    publish_trained(store, bucket, prefix, trained)
    return trained

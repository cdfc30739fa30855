"""The model bucket: read model.json, download the weights and load them (a torch.export program
or an ONNX model under onnxruntime), once per container and model version.

The loaded model is cached per container under (bucket, prefix, model.json's ETag): each
invocation reads model.json (one small GET), so publishing a new model.json is picked up by
warm containers, while the weights are downloaded and loaded only once per version. Both
loaders implement logic.inference's ``Predictor``. Imports torch; onnxruntime only when an
ONNX model is loaded.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from pydantic import ValidationError

from droughtwatch_inference import logs
from droughtwatch_inference.errors import InvalidModel, ModelNotFound, ObjectMissing
from droughtwatch_inference.logic.inference import Predictor
from droughtwatch_inference.manifest import MANIFEST_NAME, ModelManifest


class ModelStore(Protocol):
    def get_bytes(self, bucket: str, key: str) -> tuple[bytes, str]: ...
    def download(self, bucket: str, key: str, dest: Path, etag: str | None = None) -> Path: ...
    def uri(self, bucket: str, key: str) -> str: ...


@dataclass(frozen=True)
class LoadedModel:
    manifest: ModelManifest
    predictor: Predictor
    uri: str  # where model.json is: s3://bucket/prefix/model.json, or its local file
    etag: str  # model.json's ETag
    load_seconds: float


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


# Images per forward pass of a torch program: at 64 images the largest activation of
# BaselineCNN (the first block's output, 64 x 32 x 33 x 33 float32 = 8.9 MB) stays in cache and
# well under glibc's largest mmap threshold (32 MiB, see _keep_freed_memory). Measured on the
# 2-core benchmark machine: 32-64 images per pass run fastest, 256 about a third slower.
TORCH_SLICE = 64
_M_TRIM_THRESHOLD = -1  # mallopt parameters (glibc's malloc.h)
_M_MMAP_THRESHOLD = -3


@functools.cache
def _keep_freed_memory() -> bool:
    """Make glibc keep freed activation memory for the next forward pass.

    torch allocates each activation with malloc; by default glibc serves blocks of several MB
    with mmap and gives freed memory back to the OS, so every forward pass page-faults its
    activations in again (about 30% of inference time on the benchmark machine). A fixed mmap
    threshold at its maximum (32 MiB) and a high trim threshold keep that memory in the heap.
    Once per process; does nothing where libc has no mallopt (not glibc).
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    trimmed = mallopt(_M_TRIM_THRESHOLD, 256 << 20)
    mapped = mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    return bool(trimmed and mapped)


class TorchExportPredictor:
    """A torch.export program (``torch.export.load(path).module()``).

    Runs in channels_last memory format (oneDNN's convolutions are much faster with it on CPU
    than with NCHW) and in slices of TORCH_SLICE images, with glibc told to keep freed memory.
    """

    def __init__(self, path: Path, outputs: str, *, channels_last: bool = True) -> None:
        self.module = torch.export.load(str(path)).module()
        self.channels_last = channels_last
        if channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.outputs = outputs
        _keep_freed_memory()

    def predict(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        parts = []
        with torch.inference_mode():
            for start in range(0, len(images), TORCH_SLICE):
                x = torch.from_numpy(images[start : start + TORCH_SLICE])
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                out = self.module(x)
                if self.outputs == "logits":
                    out = torch.softmax(out, dim=1)
                parts.append(out.float().numpy())
        if not parts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]


class OnnxPredictor:
    """An ONNX model under onnxruntime's CPU provider."""

    def __init__(self, path: Path, outputs: str, *, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.outputs = outputs

    def predict(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        (out,) = self.session.run(None, {self.input_name: images})[:1]
        out = np.asarray(out, dtype=np.float32)
        return softmax(out) if self.outputs == "logits" else out


def load_predictor(path: Path, manifest: ModelManifest, threads: int) -> Predictor:
    if manifest.format == "torch.export":
        return TorchExportPredictor(path, manifest.outputs)
    return OnnxPredictor(path, manifest.outputs, threads=threads)


def check_predictor(predictor: Predictor, manifest: ModelManifest) -> None:
    """Run one small batch: the weights must take the manifest's channels and image size and
    return one finite probability per class that sums to one."""
    size = manifest.image_size
    probe = np.full((2, len(manifest.channels), size, size), 0.25, dtype=np.float32)
    out = predictor.predict(probe)
    expected = (2, len(manifest.classes))
    if out.shape != expected:
        raise ValueError(f"the weights return shape {out.shape} for 2 images, expected {expected}")
    if not np.isfinite(out).all() or not np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError(
            f"the weights' outputs are not {manifest.outputs} of a probability distribution"
        )


def parse_manifest(body: bytes, where: str) -> ModelManifest:
    """model.json's content checked against the model contract; InvalidModel names ``where``."""
    try:
        return ModelManifest.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'model.json'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidModel(f"{where} breaks the model contract: {problems}.") from exc


def load_checked(path: Path, manifest: ModelManifest, threads: int, where: str) -> Predictor:
    """The weights at ``path`` loaded and run on a probe batch; InvalidModel names ``where``."""
    try:
        predictor = load_predictor(path, manifest, threads)
        check_predictor(predictor, manifest)
    except Exception as exc:
        raise InvalidModel(
            f"{where} ({manifest.format}) does not load as {manifest.name} "
            f"{manifest.version} for {len(manifest.channels)} channels "
            f"({', '.join(manifest.channels)}): {type(exc).__name__}: {_first_line(exc)}."
        ) from exc
    return predictor


def check_model_folder(folder: Path, threads: int = 1) -> ModelManifest:
    """A model folder (model.json beside its weights) checked as ``load_model`` would check it
    in the model bucket: the contract, then the weights loaded and run on a probe batch. Run it
    before publishing the folder, so a bad model never replaces a good one."""
    manifest_path = folder / MANIFEST_NAME
    try:
        body = manifest_path.read_bytes()
    except OSError as exc:
        raise InvalidModel(f"cannot read {manifest_path}: {exc.strerror}.") from exc
    manifest = parse_manifest(body, str(manifest_path))
    weights = folder / manifest.weights_name
    if not weights.is_file():
        raise InvalidModel(
            f"{manifest_path} names the weights {manifest.weights_name!r}, but {weights} "
            "does not exist."
        )
    load_checked(weights, manifest, threads, str(weights))
    return manifest


class ModelCache:
    """One loaded model per container, keyed by (bucket, prefix, model.json ETag)."""

    def __init__(self) -> None:
        self._key: tuple[str, str, str] | None = None
        self._model: LoadedModel | None = None

    def get(self, key: tuple[str, str, str]) -> LoadedModel | None:
        return self._model if self._key == key else None

    def put(self, key: tuple[str, str, str], model: LoadedModel) -> None:
        self._key, self._model = key, model

    def clear(self) -> None:
        self._key = self._model = None


CACHE = ModelCache()


def load_model(
    store: ModelStore,
    bucket: str,
    prefix: str,
    cache_dir: Path,
    *,
    threads: int,
    cache: ModelCache = CACHE,
) -> LoadedModel:
    """The model under ``prefix`` of the model bucket, loaded once per model.json version.

    ``threads``: onnxruntime's intra-op threads (torch's are set per call by the caller).
    Raises ModelNotFound when model.json or the weights it names are missing, InvalidModel
    when model.json breaks the model contract or the weights do not load or do not fit it.
    """
    manifest_key = f"{prefix}{MANIFEST_NAME}"
    uri = store.uri(bucket, manifest_key)
    try:
        body, etag = store.get_bytes(bucket, manifest_key)
    except ObjectMissing as exc:
        raise ModelNotFound(f"no model manifest at {uri}.") from exc
    key = (bucket, prefix, etag)
    cached = cache.get(key)
    if cached is not None:
        return cached

    started = time.monotonic()
    manifest = parse_manifest(body, uri)
    weights_key = f"{prefix}{manifest.weights_name}"
    weights_uri = store.uri(bucket, weights_key)
    # One directory per model.json version; the file is deleted once loaded (both runtimes
    # hold the model in memory), so /tmp does not fill up with old versions.
    version_dir = cache_dir / hashlib.sha256(f"{bucket}/{prefix}{etag}".encode()).hexdigest()[:16]
    local = version_dir / Path(manifest.weights_name).name
    try:
        store.download(bucket, weights_key, local)
    except ObjectMissing as exc:
        raise ModelNotFound(
            f"{uri} names the weights {manifest.weights_name!r}, but {weights_uri} does not exist."
        ) from exc
    try:
        predictor = load_checked(local, manifest, threads, weights_uri)
    finally:
        shutil.rmtree(version_dir, ignore_errors=True)
    model = LoadedModel(
        manifest=manifest,
        predictor=predictor,
        uri=uri,
        etag=etag,
        load_seconds=time.monotonic() - started,
    )
    cache.put(key, model)
    logs.event(
        "model.loaded",
        uri=uri,
        model=manifest.name,
        model_version=manifest.version,
        format=manifest.format,
        threads=threads,
        seconds=round(model.load_seconds, 3),
    )
    return model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else ""

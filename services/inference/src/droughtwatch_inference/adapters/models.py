"""The model bucket: read model.json, download the weights and load them (a torch.export program
under torch, or an ONNX model under onnxruntime), once per container and model version.

The loaded model is cached per container under (bucket, prefix, model.json's ETag): each
invocation reads model.json (one small GET), so publishing a new model.json is picked up by
warm containers, while the weights are downloaded and loaded only once per version. Imports
neither torch nor onnxruntime itself: each runtime is imported when a model in its format is
loaded, so an ONNX model's cold start never pays for torch.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from droughtwatch_inference import input_summaries, logs
from droughtwatch_inference.errors import (
    InvalidModel,
    ModelNotFound,
    ObjectForbidden,
    ObjectMissing,
    StorageError,
)
from droughtwatch_inference.logic.ports import StorePort
from droughtwatch_inference.model.fit import Problem, UnfitModel, fit_problems
from droughtwatch_inference.model.manifest import MANIFEST_NAME, ModelManifest, describe_error_text
from droughtwatch_inference.model.predictor import SignedPredictor

FORMAT_NAMES = {"torch.export": "torch.export program", "onnx": "ONNX"}


@dataclass(frozen=True)
class LoadedModel:
    manifest: ModelManifest
    predictor: SignedPredictor
    uri: str  # s3://bucket/prefix/model.json
    etag: str  # model.json's ETag
    load_seconds: float
    # The reference input summaries (Parquet bytes) model.json names, if it names any.
    reference_features: bytes | None = None


def load_predictor(path: Path, manifest: ModelManifest, threads: int) -> SignedPredictor:
    """The weights at ``path`` under the runtime of ``manifest.format`` (imported here)."""
    if manifest.format == "torch.export":
        from droughtwatch_inference.adapters.torch_predictor import TorchExportPredictor

        return TorchExportPredictor(path, manifest, threads=threads)
    from droughtwatch_inference.adapters.onnx_predictor import OnnxPredictor

    return OnnxPredictor(path, manifest, threads=threads)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def load_checked(
    path: Path, manifest: ModelManifest, threads: int, source: str
) -> tuple[SignedPredictor | None, list[Problem]]:
    """Load the weights at ``path`` and check them against ``manifest`` (digest, input, output,
    the probe). Returns (the predictor, or None when it did not load; every problem found),
    each problem naming ``source`` (what the user calls the weights file)."""
    if manifest.weights_sha256 is not None:
        actual = file_sha256(path)
        if actual != manifest.weights_sha256:
            return None, [
                Problem(
                    source,
                    "weights_sha256",
                    f"the file's sha256 is {actual}, model.json says "
                    f"{manifest.weights_sha256}: the file is cut short or another version; "
                    "upload it again (or publish again)",
                )
            ]
    try:
        predictor = load_predictor(path, manifest, threads)
    except UnfitModel as exc:
        return None, [Problem(source, exc.field, exc.message)]
    except Exception as exc:
        return None, [
            Problem(
                source,
                "format",
                f"does not load as {manifest.format} ({type(exc).__name__}: "
                f"{_first_line(exc)}): the file is truncated or not a "
                f"{FORMAT_NAMES[manifest.format]} model; export it again",
            )
        ]
    return predictor, fit_problems(predictor, manifest, source)


def parse_manifest(body: bytes, uri: str) -> ModelManifest:
    """model.json's body as a manifest; InvalidModel naming every problem otherwise."""
    try:
        return ModelManifest.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidModel(f"{uri} breaks the model contract: {describe_error_text(exc)}.") from exc


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


def _model_forbidden(exc: ObjectForbidden) -> StorageError:
    """The model is every file's: a 403 on it stops the stage (a StorageError), unlike a 403 on
    one file's object."""
    return StorageError(f"{exc} (the model: every file needs it)")


def load_model(
    store: StorePort,
    bucket: str,
    prefix: str,
    cache_dir: Path,
    *,
    threads: int,
    cache: ModelCache = CACHE,
) -> LoadedModel:
    """The model under ``s3://bucket/prefix``, loaded once per model.json version.

    ``threads``: the model runtime's intra-op threads. Raises ModelNotFound when model.json or
    the weights it names are missing, InvalidModel when model.json breaks the model contract
    or the weights do not load or do not fit it.
    """
    manifest_key = f"{prefix}{MANIFEST_NAME}"
    uri = f"s3://{bucket}/{manifest_key}"
    try:
        body, etag = store.get_bytes(bucket, manifest_key)
    except ObjectMissing as exc:
        raise ModelNotFound(f"no model manifest at {uri}.") from exc
    except ObjectForbidden as exc:
        raise _model_forbidden(exc) from exc
    key = (bucket, prefix, etag)
    cached = cache.get(key)
    if cached is not None:
        return cached

    started = time.monotonic()
    manifest = parse_manifest(body, uri)
    weights_key = f"{prefix}{manifest.weights_name}"
    weights_uri = f"s3://{bucket}/{weights_key}"
    # One directory per model.json version; the file is deleted once loaded (both runtimes
    # hold the model in memory), so /tmp does not fill up with old versions.
    version_dir = cache_dir / hashlib.sha256(f"{bucket}/{prefix}{etag}".encode()).hexdigest()[:16]
    local = version_dir / Path(manifest.weights_name).name
    try:
        try:
            store.download(bucket, weights_key, local)
        except ObjectMissing as exc:
            raise ModelNotFound(
                f"{uri} names the weights {manifest.weights_name!r}, but {weights_uri} does "
                "not exist."
            ) from exc
        except ObjectForbidden as exc:
            raise _model_forbidden(exc) from exc
        predictor, problems = load_checked(local, manifest, threads, manifest.weights_name)
    finally:
        shutil.rmtree(version_dir, ignore_errors=True)
    if predictor is None or problems:
        raise InvalidModel(
            f"{weights_uri} ({manifest.format}) does not load as {manifest.name} "
            f"{manifest.version} for {len(manifest.channels)} channels "
            f"({', '.join(manifest.channels)}): {'; '.join(map(str, problems))}."
        )
    model = LoadedModel(
        manifest=manifest,
        predictor=predictor,
        uri=uri,
        etag=etag,
        load_seconds=time.monotonic() - started,
        reference_features=_reference_features(store, bucket, prefix, manifest, uri),
    )
    cache.put(key, model)
    logs.event(
        "model.loaded",
        uri=uri,
        model=manifest.name,
        model_version=manifest.version,
        format=manifest.format,
        layout=manifest.layout,
        threads=threads,
        seconds=round(model.load_seconds, 3),
    )
    return model


def _reference_features(
    store: StorePort, bucket: str, prefix: str, manifest: ModelManifest, uri: str
) -> bytes | None:
    """The Parquet file of reference input summaries model.json names (None if it names
    none); it must exist and hold at least one summary column of the model's channels."""
    if manifest.reference_features is None:
        return None
    key = f"{prefix}{manifest.reference_features}"
    try:
        body, _ = store.get_bytes(bucket, key)
    except ObjectMissing as exc:
        raise ModelNotFound(
            f"{uri} names the reference features {manifest.reference_features!r}, but "
            f"s3://{bucket}/{key} does not exist."
        ) from exc
    except ObjectForbidden as exc:
        raise _model_forbidden(exc) from exc
    expected = {
        input_summaries.column(c) for c in input_summaries.summary_channels(manifest.channels)
    }
    try:
        columns = set(pq.read_schema(io.BytesIO(body)).names)
    except pa.ArrowException as exc:
        raise InvalidModel(f"s3://{bucket}/{key} is not a Parquet file ({exc}).") from exc
    if not columns & expected:
        raise InvalidModel(
            f"s3://{bucket}/{key} has none of the summary columns {sorted(expected)} "
            f"(it has {sorted(columns)[:10]})."
        )
    return body


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ""

"""`droughtwatch model publish`: check a model folder, upload it under a version prefix of the
model bucket, and only then make it the model Inference reads.

    <prefix>versions/<version>/model.json                  the version's manifest
    <prefix>versions/<version>/model.onnx (or .pt2)         its weights
    <prefix>versions/<version>/reference_features.parquet  with --reference
    <prefix>model.json                                      the pointer: the version's manifest
                                                            with paths into versions/<version>/

The top-level model.json is what Inference reads (adapters.models), so it is written last:
until every object of the version is in place, Inference keeps serving the previous version,
and a half-uploaded model is never served. Versions are immutable and kept: publishing a
version that is already in the bucket with the same content only moves the pointer back to
it (a rollback); with other content it is refused.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from droughtwatch_inference import input_summaries
from droughtwatch_inference.adapters.models import file_sha256
from droughtwatch_inference.errors import ObjectMissing
from droughtwatch_inference.model.fit import Problem
from droughtwatch_inference.model.manifest import (
    CONTRACT_VERSION,
    MANIFEST_NAME,
    REFERENCE_FEATURES_NAME,
    ModelManifest,
)

from droughtwatch_tools.errors import ModelCheckFailed, VersionConflict
from droughtwatch_tools.model_check import CheckReport, check_model

VERSIONS = "versions/"
JSON = "application/json"
OCTETS = "application/octet-stream"
PARQUET = "application/vnd.apache.parquet"
# A version names a folder in the bucket: keep it to characters that need no escaping.
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class ModelBucket(Protocol):
    """What publishing needs of a bucket: adapters.storage.ObjectStore (S3) and
    adapters.folder_store.FolderStore (the local runs' buckets) both provide it."""

    def get_bytes(self, bucket: str, key: str) -> tuple[bytes, str]: ...
    def upload(
        self, path: Path, bucket: str, key: str, content_type: str | None = None
    ) -> None: ...
    def put_bytes(self, bucket: str, key: str, body: bytes, content_type: str) -> None: ...


@dataclass(frozen=True)
class Published:
    manifest: ModelManifest  # the version's manifest (paths relative to its folder)
    bucket: str
    prefix: str  # the model prefix Inference reads
    version_prefix: str  # <prefix>versions/<version>/
    keys: tuple[str, ...]  # objects written, the pointer last
    reused: bool  # the version was already in the bucket: only the pointer moved
    report: CheckReport

    @property
    def pointer_key(self) -> str:
        return f"{self.prefix}{MANIFEST_NAME}"


def version_prefix(prefix: str, version: str) -> str:
    return f"{prefix}{VERSIONS}{version}/"


def publish_folder(
    folder: Path,
    store: ModelBucket,
    bucket: str,
    prefix: str,
    *,
    reference: Sequence[Path] = (),
    threads: int = 0,
    work_dir: Path | None = None,
    say: Callable[[str], Any] | None = None,
) -> Published:
    """Check the model in ``folder`` and publish it under ``s3://bucket/prefix``.

    With ``reference`` raw files, reference_class_shares and the per-image input summaries
    are computed by running the model on them (through the real preprocessing) and go into
    the published model.json. Raises ModelCheckFailed (naming every problem) before anything
    is written, VersionConflict when the version is in the bucket with other content.
    """
    if not prefix.endswith("/") or prefix.startswith("/"):
        raise ValueError(
            f"the model prefix must end with '/', like 'models/baseline/', got {prefix!r}"
        )
    folder = Path(folder)
    report = check_model(
        folder,
        reference,
        shares_from_data=bool(reference),
        summaries=bool(reference),
        threads=threads,
        work_dir=work_dir,
    )
    problems = list(report.problems)
    manifest = report.manifest
    if manifest is not None and not _VERSION.match(manifest.version):
        problems.append(
            Problem(
                MANIFEST_NAME,
                "version",
                f"{manifest.version!r} names a folder in the bucket: use letters, digits, "
                "'.', '_', '+' and '-' (starting with a letter or digit)",
            )
        )
    if problems or manifest is None:
        raise ModelCheckFailed(
            f"{folder} does not pass `droughtwatch model check`; nothing was published",
            [str(p) for p in problems],
        )
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="model-publish-") as scratch:
        files = _version_files(folder, manifest, report, Path(scratch))
        versioned = _versioned_manifest(manifest, files)
        return _upload(store, bucket, prefix, versioned, files, report, say or (lambda _: None))


def _version_files(
    folder: Path, manifest: ModelManifest, report: CheckReport, scratch: Path
) -> dict[str, Path]:
    """{name under the version prefix: local file} for the weights and reference features."""
    files = {manifest.weights_name: folder / manifest.weights_name}
    data = report.data
    if data is not None and data.summaries is not None:
        path = scratch / REFERENCE_FEATURES_NAME
        input_summaries.write([data.summaries], path, model=manifest.name, version=manifest.version)
        files[REFERENCE_FEATURES_NAME] = path
    elif manifest.reference_features:
        files[manifest.reference_features] = folder / manifest.reference_features
    return files


def _versioned_manifest(manifest: ModelManifest, files: dict[str, Path]) -> ModelManifest:
    values = manifest.model_dump(exclude_unset=True)
    values.update(
        contract_version=CONTRACT_VERSION,
        weights=manifest.weights_name,
        weights_sha256=file_sha256(files[manifest.weights_name]),
    )
    features = [name for name in files if name != manifest.weights_name]
    if features:
        values["reference_features"] = features[0]
    return ModelManifest.model_validate(values)


def pointer_manifest(versioned: ModelManifest, prefix_in_model: str) -> ModelManifest:
    """The top-level model.json: the version's manifest naming its files under
    ``prefix_in_model`` (``versions/<version>/``), relative to the model prefix."""
    values = versioned.model_dump(exclude_unset=True)
    values["weights"] = f"{prefix_in_model}{versioned.weights_name}"
    if versioned.reference_features:
        values["reference_features"] = f"{prefix_in_model}{versioned.reference_features}"
    return ModelManifest.model_validate(values)


def _dump(manifest: ModelManifest) -> bytes:
    return manifest.model_dump_json(indent=2, exclude_none=True).encode()


def _upload(
    store: ModelBucket,
    bucket: str,
    prefix: str,
    versioned: ModelManifest,
    files: dict[str, Path],
    report: CheckReport,
    say: Callable[[str], Any],
) -> Published:
    here = version_prefix(prefix, versioned.version)
    keys: list[str] = []
    reused = False
    try:
        body, _ = store.get_bytes(bucket, f"{here}{MANIFEST_NAME}")
    except ObjectMissing:
        body = None
    if body is not None:
        stored = ModelManifest.model_validate_json(body)
        differ = [
            name
            for name in ModelManifest.model_fields
            if getattr(stored, name) != getattr(versioned, name)
        ]
        if differ:
            raise VersionConflict(
                f"{versioned.name} version {versioned.version} is already published at "
                f"s3://{bucket}/{here} with other {', '.join(differ)}; published versions "
                "do not change."
            )
        reused = True
        say(f"version {versioned.version} is already at s3://{bucket}/{here}: reusing it")
    else:
        for name, path in files.items():
            key = f"{here}{name}"
            store.upload(path, bucket, key, PARQUET if name.endswith(".parquet") else OCTETS)
            keys.append(key)
            say(f"uploaded s3://{bucket}/{key}")
        # the version's own manifest after its files: a version folder with a model.json is
        # complete, which is what the check above relies on
        key = f"{here}{MANIFEST_NAME}"
        store.put_bytes(bucket, key, _dump(versioned), JSON)
        keys.append(key)
        say(f"uploaded s3://{bucket}/{key}")
    pointer = pointer_manifest(versioned, f"{VERSIONS}{versioned.version}/")
    key = f"{prefix}{MANIFEST_NAME}"
    store.put_bytes(bucket, key, _dump(pointer), JSON)
    keys.append(key)
    say(f"s3://{bucket}/{key} now names version {versioned.version}")
    return Published(
        manifest=versioned,
        bucket=bucket,
        prefix=prefix,
        version_prefix=here,
        keys=tuple(keys),
        reused=reused,
        report=report,
    )

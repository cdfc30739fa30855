"""The object store the handlers use (``logic.ports.StorePort``): S3 (``ObjectStore``) on AWS, or
a folder shared by local processes (``folder_store.FolderStore``) when
``DROUGHTWATCH_STORE_ROOT`` is set. ``ObjectStore`` lists raw objects, downloads and uploads,
and turns botocore errors into domain errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from droughtwatch_inference.adapters import aws
from droughtwatch_inference.adapters.folder_store import FolderStore
from droughtwatch_inference.errors import ObjectForbidden, ObjectMissing, StorageError
from droughtwatch_inference.logic.ports import StorePort
from droughtwatch_inference.records import RawObject

_MISSING = {"404", "NoSuchKey", "NotFound"}
_FORBIDDEN = {"403", "AccessDenied", "Forbidden"}
# Reads of one object: a 403 there is that object's permission (ObjectForbidden); a 403 on a
# listing or a write concerns every file, and stays a StorageError that stops the stage.
_OBJECT_READS = {"download", "read"}


def _error(exc: Exception, bucket: str, key: str, action: str) -> StorageError:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in _MISSING:
            return ObjectMissing(f"s3://{bucket}/{key} does not exist")
        if code in _FORBIDDEN and action in _OBJECT_READS:
            return ObjectForbidden(
                f"access denied reading s3://{bucket}/{key} ({code}): s3:GetObject is not "
                "allowed on it"
            )
        if code == "NoSuchBucket":
            return StorageError(f"bucket {bucket!r} does not exist ({action} {key!r})")
        return StorageError(f"cannot {action} s3://{bucket}/{key}: {code}")
    return StorageError(f"cannot {action} s3://{bucket}/{key}: {type(exc).__name__}")


def open_store(settings: Any) -> StorePort:
    """The local folder store when the settings name a store root, else S3."""
    root = getattr(settings, "store_root", None)
    if root:
        return FolderStore(Path(root))
    return ObjectStore(settings)


class ObjectStore:
    """S3 through boto3."""

    def __init__(self, settings: Any = None, *, client: Any = None) -> None:
        """A store over the S3 client ``settings`` describe, or over ``client`` (boto3's)."""
        self.s3 = client if client is not None else aws.client("s3", settings)

    def list(self, bucket: str, prefix: str) -> Iterator[RawObject]:
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            ):
                for item in page.get("Contents", []):
                    yield RawObject(
                        key=item["Key"], etag=item["ETag"].strip('"'), size=int(item["Size"])
                    )
        except (ClientError, BotoCoreError) as exc:
            raise _error(exc, bucket, prefix, "list") from exc

    def download(self, bucket: str, key: str, dest: Path, etag: str | None = None) -> Path:
        """Download one object version; with ``etag`` the read fails if the object changed."""
        extra = {"IfMatch": f'"{etag}"'} if etag else {}
        try:
            response = self.s3.get_object(Bucket=bucket, Key=key, **extra)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with dest.open("wb") as out:
                for chunk in response["Body"].iter_chunks(8 * 1024 * 1024):
                    out.write(chunk)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "PreconditionFailed":
                raise ObjectMissing(
                    f"s3://{bucket}/{key} changed since it was registered (ETag {etag})"
                ) from exc
            raise _error(exc, bucket, key, "download") from exc
        except BotoCoreError as exc:
            raise _error(exc, bucket, key, "download") from exc
        return dest

    def upload(self, path: Path, bucket: str, key: str, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else {}
        try:
            self.s3.upload_file(str(path), bucket, key, ExtraArgs=extra or None)
        except (ClientError, BotoCoreError) as exc:
            raise _error(exc, bucket, key, "upload") from exc
        except Exception as exc:  # boto3's S3UploadFailedError wraps ClientError
            raise _error(exc, bucket, key, "upload") from exc

    def get_bytes(self, bucket: str, key: str) -> tuple[bytes, str]:
        """Small object's body and ETag."""
        try:
            response = self.s3.get_object(Bucket=bucket, Key=key)
            return response["Body"].read(), response["ETag"].strip('"')
        except (ClientError, BotoCoreError) as exc:
            raise _error(exc, bucket, key, "read") from exc

    def put_bytes(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        try:
            self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise _error(exc, bucket, key, "write") from exc

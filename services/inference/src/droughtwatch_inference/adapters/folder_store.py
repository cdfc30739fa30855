"""Buckets kept as folders (``<root>/<bucket>/<key>``), as local runs keep theirs under the
user's data folder: the calls of ObjectStore that publishing and loading a model make. Each
object is written under a temporary name and renamed, so a reader never sees half a file."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from droughtwatch_inference.errors import ObjectMissing


class FolderStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, bucket: str, key: str) -> Path:
        return self.root / bucket / key

    def get_bytes(self, bucket: str, key: str) -> tuple[bytes, str]:
        path = self.path(bucket, key)
        try:
            body = path.read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(f"{path} does not exist") from None
        return body, hashlib.md5(body, usedforsecurity=False).hexdigest()

    def download(self, bucket: str, key: str, dest: Path, etag: str | None = None) -> Path:
        source = self.path(bucket, key)
        if not source.is_file():
            raise ObjectMissing(f"{source} does not exist")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        return dest

    def upload(self, path: Path, bucket: str, key: str, content_type: str | None = None) -> None:
        self._replace(bucket, key, lambda tmp: shutil.copyfile(path, tmp))

    def put_bytes(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        self._replace(bucket, key, lambda tmp: tmp.write_bytes(body))

    def _replace(self, bucket: str, key: str, write: Callable[[Path], object]) -> None:
        dest = self.path(bucket, key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            write(tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

"""The local object store: buckets as folders under one root, ``<root>/<bucket>/<key>``, which
every local process sees at once, as every Lambda sees S3. The same interface as the S3
``ObjectStore`` (see ``storage.Store``), selected by ``DROUGHTWATCH_STORE_ROOT``.

An object is written to a temporary file in its own folder and moved into place with
``os.replace``, which POSIX makes atomic: a reader sees the old object or the new one, never
half of one, and of two writers of one key the last one's object stands whole. The temporary
file is flushed to disk first, so a crash leaves the old object, not an empty one. The ETag is
the MD5 of the content, as S3 gives for a single-part upload; it is computed from the bytes
each time it is asked for (no cache that could go stale), and a read that names an ETag checks
the bytes it read against it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from droughtwatch_inference.entries import RawObject
from droughtwatch_inference.errors import ObjectMissing, StorageError

_CHUNK = 8 * 1024 * 1024
# Temporary files of writes in progress (or left by a crash): never listed, never a key.
_PARTIAL = re.compile(r"^\.[0-9a-f]{32}\.partial$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()

    # -- where things are -----------------------------------------------------------------------
    def path(self, bucket: str, key: str) -> Path:
        """The file that holds ``key``. S3 keys that a folder cannot hold (empty path segments,
        ``.`` or ``..``, a trailing ``/``) are refused rather than mapped to another file."""
        segments = key.split("/")
        bad = [s for s in segments if s in {"", ".", ".."} or _PARTIAL.match(s)]
        if not key or key.startswith("/") or bad or "\x00" in key:
            raise StorageError(
                f"the key {key!r} cannot be stored in a local folder (empty, '.' or '..' "
                "segments, or a trailing '/'); use a key like 'raw/2026-11-27/name'"
            )
        return self._bucket_dir(bucket).joinpath(*segments)

    def uri(self, bucket: str, key: str) -> str:
        return str(self.path(bucket, key))

    def _bucket_dir(self, bucket: str) -> Path:
        if not _BUCKET.match(bucket):
            raise StorageError(f"{bucket!r} is not a bucket name (3-63 of a-z, 0-9, '.', '-')")
        return self.root / bucket

    def create_bucket(self, bucket: str) -> Path:
        folder = self._bucket_dir(bucket)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the local bucket folder {folder}: {exc.strerror}",
            ) from exc
        return folder

    def _existing_bucket(self, bucket: str, key: str, action: str) -> Path:
        folder = self._bucket_dir(bucket)
        if not folder.is_dir():
            raise StorageError(
                f"the local bucket folder {folder} does not exist ({action} {key!r}); "
                "a local run creates it: check DROUGHTWATCH_STORE_ROOT"
            )
        return folder

    # -- reading --------------------------------------------------------------------------------
    def list(self, bucket: str, prefix: str) -> Iterator[RawObject]:
        """The objects whose key starts with ``prefix``, in key order (as S3 lists them)."""
        base = self._existing_bucket(bucket, prefix, "list")
        parent = prefix.rpartition("/")[0]
        start = base.joinpath(*parent.split("/")) if parent else base
        found: list[str] = []
        for folder, _, names in os.walk(start):
            for name in names:
                if _PARTIAL.match(name):
                    continue
                key = Path(folder, name).relative_to(base).as_posix()
                if key.startswith(prefix):
                    found.append(key)
        for key in sorted(found):
            try:
                yield self.head(bucket, key)
            except ObjectMissing:
                continue  # deleted since the walk: as a listing taken a moment later

    def head(self, bucket: str, key: str) -> RawObject:
        """One object's key, ETag and size."""
        source = self._source(bucket, key, "read")
        try:
            with source.open("rb") as f:
                return RawObject(key=key, etag=_md5(f), size=os.fstat(f.fileno()).st_size)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectMissing(f"{source} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {source}: {exc.strerror}") from exc

    def download(self, bucket: str, key: str, dest: Path, etag: str | None = None) -> Path:
        """Copy one object to ``dest``; with ``etag`` the read fails if the object changed."""
        source = self._source(bucket, key, "download")
        digest = hashlib.md5(usedforsecurity=False)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with source.open("rb") as f, dest.open("wb") as out:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectMissing(f"{source} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"cannot download {source} to {dest}: {exc.strerror}") from exc
        if etag and digest.hexdigest() != etag:
            dest.unlink(missing_ok=True)
            raise ObjectMissing(f"{source} changed since it was registered (ETag {etag})")
        return dest

    def get_bytes(self, bucket: str, key: str) -> tuple[bytes, str]:
        """Small object's body and ETag."""
        source = self._source(bucket, key, "read")
        try:
            body = source.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectMissing(f"{source} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {source}: {exc.strerror}") from exc
        return body, hashlib.md5(body, usedforsecurity=False).hexdigest()

    def _source(self, bucket: str, key: str, action: str) -> Path:
        self._existing_bucket(bucket, key, action)
        return self.path(bucket, key)

    # -- writing --------------------------------------------------------------------------------
    def upload(self, path: Path, bucket: str, key: str, content_type: str | None = None) -> None:
        """Store the file at ``path`` as ``key``. ``content_type`` is what S3 would serve the
        object as; a folder keeps none (the key's extension names the type)."""

        try:
            source = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise StorageError(f"cannot read {path} to store it as {key}: {exc.strerror}") from exc
        with open(source, "rb") as f:
            self._write(bucket, key, lambda out: shutil.copyfileobj(f, out, _CHUNK))

    def put_bytes(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        self._write(bucket, key, lambda out: out.write(body))

    def _write(self, bucket: str, key: str, fill: Callable[[BinaryIO], object]) -> None:
        self._existing_bucket(bucket, key, "write")
        dest = self.path(bucket, key)
        partial = dest.parent / f".{uuid.uuid4().hex}.partial"
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with partial.open("xb") as out:
                fill(out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, dest)
        except (NotADirectoryError, IsADirectoryError, FileExistsError) as exc:
            _remove(partial)
            raise StorageError(
                f"cannot write {dest}: a key and a folder of keys share this name "
                "(S3 allows it, a local folder cannot); choose another key"
            ) from exc
        except OSError as exc:
            _remove(partial)
            raise StorageError(
                f"cannot write {dest}: {exc.strerror} (is the disk full, or the folder read-only?)"
            ) from exc


def _remove(partial: Path) -> None:
    # the write failed; its temporary file may not exist (or its folder may not)
    with contextlib.suppress(OSError):
        partial.unlink()


def _md5(f: BinaryIO) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    while chunk := f.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()

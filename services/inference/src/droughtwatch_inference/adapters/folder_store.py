"""The local object store: buckets as folders under one root, ``<root>/<bucket>/<key>``, which
every local process sees at once, as every Lambda sees S3. The same calls as the S3
``ObjectStore`` (``logic.ports.StorePort``, and ``put_bytes`` for publishing a model), selected
by ``DROUGHTWATCH_STORE_ROOT``.

An object is written to a temporary file in its own folder, flushed to disk, and moved into
place with ``os.replace``, which POSIX makes atomic: a reader sees the old object or the new
one, never half of one, of two writers of one key the last one's object stands whole, and a
crash leaves the old object, not an empty one. The ETag is the MD5 of the content, as S3 gives
for a single-part upload. The store computes it as it writes an object and keeps it on the file
(an extended attribute, with the size and modification time it belongs to), so that listing a
bucket, as every Plan does, reads no object's bytes; a file that no longer matches its
attribute (changed in place, or put there by another program), or a folder that keeps no
attributes, has its ETag computed from its bytes. A read that names an ETag checks the bytes it
read against it, so even a file changed in place with its size and time kept is never taken
for the version registered.

A write creates its bucket's folder; reading an object of a bucket that has no folder finds no
object, while listing one fails as S3's NoSuchBucket does (a mistyped root must not look like
an empty bucket).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from droughtwatch_inference.errors import ObjectMissing, StorageError
from droughtwatch_inference.records import RawObject

_CHUNK = 8 * 1024 * 1024
# Temporary files of writes in progress (or left by a crash): never listed, never a key.
_PARTIAL = re.compile(r"^\.[0-9a-f]{32}\.partial$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_GONE = (FileNotFoundError, IsADirectoryError, NotADirectoryError)
# The extended attribute that keeps an object's ETag: "<md5> <size> <mtime_ns>".
_ETAG_ATTRIBUTE = "user.droughtwatch.etag"
_ATTRIBUTES = hasattr(os, "setxattr")  # Linux; elsewhere the ETag is computed each time


class FolderStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()

    # -- where things are -----------------------------------------------------------------------
    def path(self, bucket: str, key: str) -> Path:
        """The file that holds ``key``. S3 keys that a folder cannot hold (empty path segments,
        ``.`` or ``..``, a trailing ``/``) are refused rather than mapped to another file."""
        segments = key.split("/")
        bad = [s for s in segments if s in {"", ".", ".."} or _PARTIAL.match(s)]
        if not key or bad or "\x00" in key:
            raise StorageError(
                f"the key {key!r} cannot be stored in a local folder (empty, '.' or '..' "
                "segments, or a trailing '/'); use a key like 'raw/2026-11-27/name'"
            )
        return self._bucket_dir(bucket).joinpath(*segments)

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
                f"cannot create the local bucket folder {folder}: {exc.strerror}"
            ) from exc
        return folder

    # -- reading --------------------------------------------------------------------------------
    def list(self, bucket: str, prefix: str) -> Iterator[RawObject]:
        """The objects whose key starts with ``prefix``, in key order (as S3 lists them)."""
        base = self._bucket_dir(bucket)
        if not base.is_dir():
            raise StorageError(
                f"the local bucket folder {base} does not exist (list {prefix!r}); "
                "a local run creates it: check DROUGHTWATCH_STORE_ROOT"
            )
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
        source = self.path(bucket, key)
        try:
            with source.open("rb") as f:
                before = os.fstat(f.fileno())
                etag = _kept_etag(f.fileno(), before)
                if etag is None:
                    etag = _md5(f)
                    after = os.fstat(f.fileno())
                    if _same_file(before, after):
                        _keep_etag(f.fileno(), etag, after)
                return RawObject(key=key, etag=etag, size=before.st_size)
        except _GONE as exc:
            raise ObjectMissing(f"{source} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {source}: {exc.strerror}") from exc

    def download(self, bucket: str, key: str, dest: Path, etag: str | None = None) -> Path:
        """Copy one object to ``dest``; with ``etag`` the read fails if the object changed."""
        source = self.path(bucket, key)
        try:
            with source.open("rb") as f:
                dest.parent.mkdir(parents=True, exist_ok=True)
                with dest.open("wb") as out:
                    digest = _copy(f, out)
        except _GONE as exc:
            raise ObjectMissing(f"{source} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"cannot download {source} to {dest}: {exc.strerror}") from exc
        if etag and digest != etag:
            dest.unlink(missing_ok=True)
            raise ObjectMissing(f"{source} changed since it was registered (ETag {etag})")
        return dest

    def get_bytes(self, bucket: str, key: str) -> tuple[bytes, str]:
        """Small object's body and ETag."""
        source = self.path(bucket, key)
        try:
            body = source.read_bytes()
        except _GONE as exc:
            raise ObjectMissing(f"{source} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {source}: {exc.strerror}") from exc
        return body, hashlib.md5(body, usedforsecurity=False).hexdigest()

    # -- writing --------------------------------------------------------------------------------
    def upload(self, path: Path, bucket: str, key: str, content_type: str | None = None) -> None:
        """Store the file at ``path`` as ``key``. ``content_type`` is what S3 would serve the
        object as; a folder keeps none (the key's extension names the type)."""
        if not Path(path).is_file():
            raise StorageError(f"cannot store {path} as {key}: it is not a file")

        def copy(out: BinaryIO) -> str:
            with Path(path).open("rb") as f:
                return _copy(f, out)

        self._replace(bucket, key, copy)

    def put_bytes(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        def write(out: BinaryIO) -> str:
            out.write(body)
            return hashlib.md5(body, usedforsecurity=False).hexdigest()

        self._replace(bucket, key, write)

    def _replace(self, bucket: str, key: str, write: Callable[[BinaryIO], str]) -> None:
        """``write`` fills a temporary file beside ``key``'s and returns its content's MD5; the
        file, with its ETag kept, then replaces ``key``'s."""
        dest = self.path(bucket, key)
        partial = dest.parent / f".{uuid.uuid4().hex}.partial"
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with partial.open("wb") as f:
                etag = write(f)
                f.flush()
                os.fsync(f.fileno())
                _keep_etag(f.fileno(), etag, os.fstat(f.fileno()))
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


def _kept_etag(fd: int, stat: os.stat_result) -> str | None:
    """The ETag kept on the open file ``fd``, if it belongs to the file as ``stat`` finds it."""
    if not _ATTRIBUTES:
        return None
    try:
        etag, size, mtime = os.getxattr(fd, _ETAG_ATTRIBUTE).decode().split()
    except (OSError, ValueError, UnicodeDecodeError):  # none, none possible, or not ours
        return None
    if (int(size), int(mtime)) != (stat.st_size, stat.st_mtime_ns) or len(etag) != 32:
        return None
    return etag


def _keep_etag(fd: int, etag: str, stat: os.stat_result) -> None:
    """Keep ``etag`` on the open file ``fd`` for the size and modification time ``stat`` gives
    (keeping it does not change them); where the folder keeps no attributes, it is computed
    when asked for."""
    if not _ATTRIBUTES:
        return
    with contextlib.suppress(OSError):
        os.setxattr(fd, _ETAG_ATTRIBUTE, f"{etag} {stat.st_size} {stat.st_mtime_ns}".encode())


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    """Whether nothing wrote the file between the two readings of its status."""
    return (a.st_size, a.st_mtime_ns, a.st_ctime_ns) == (b.st_size, b.st_mtime_ns, b.st_ctime_ns)


def _copy(f: BinaryIO, out: BinaryIO) -> str:
    """Copy ``f`` to ``out``; returns the MD5 of what was copied, hashed as it went."""
    digest = hashlib.md5(usedforsecurity=False)
    while chunk := f.read(_CHUNK):
        digest.update(chunk)
        out.write(chunk)
    return digest.hexdigest()


def _md5(f: BinaryIO) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    while chunk := f.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()

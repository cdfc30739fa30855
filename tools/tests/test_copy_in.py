"""`local run` copies the folder's raw files into the local data bucket several at once
(local/run.py's copy_in): every file stored, each object as S3 would list it, in the order of
the files, and a file that cannot be stored stops the run with the store's error."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from droughtwatch_inference.adapters.folder_store import FolderStore
from droughtwatch_inference.errors import StorageError
from droughtwatch_tools.local.run import COPY_THREADS, copy_in

BUCKET = "dw-test-data"


def test_every_file_is_stored_and_listed_in_the_files_order(tmp_path: Path) -> None:
    files = []
    for i in range(COPY_THREADS * 3 + 1):  # more than the threads, so some wait their turn
        path = tmp_path / "in" / f"scene-{i:02d}.tfrecord"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(f"scene {i}".encode() * (i + 1))
        files.append(path)
    store = FolderStore(tmp_path / "buckets")
    uploads = [(p, f"raw/2026-11-27/{p.name}") for p in reversed(files)]
    objects = copy_in(store, BUCKET, uploads)
    assert [o.key for o in objects] == [key for _, key in uploads]
    assert [(o.etag, o.size) for o in objects] == [
        (hashlib.md5(p.read_bytes()).hexdigest(), p.stat().st_size) for p, _ in uploads
    ]
    assert [o.key for o in store.list(BUCKET, "raw/")] == sorted(key for _, key in uploads)


def test_a_file_that_cannot_be_stored_stops_the_copy_with_the_stores_error(
    tmp_path: Path,
) -> None:
    good = tmp_path / "good.tfrecord"
    good.write_bytes(b"scene")
    store = FolderStore(tmp_path / "buckets")
    with pytest.raises(StorageError, match="it is not a file"):
        copy_in(store, BUCKET, [(good, "raw/a"), (tmp_path / "gone.tfrecord", "raw/b")])

"""The two object stores behind one interface: S3 (moto) and the local folder store. The same
behaviour is pinned on both (ETags, listing, reads that name an ETag, missing objects and
buckets); then what only the folder store has to prove: atomic writes and refused keys."""

from __future__ import annotations

import hashlib
import os
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from droughtwatch_contract.settings import ProcessingSettings
from droughtwatch_inference.adapters.folder_store import FolderStore
from droughtwatch_inference.adapters.storage import ObjectStore, open_store
from droughtwatch_inference.errors import ObjectMissing, StorageError
from droughtwatch_inference.logic.ports import StorePort
from droughtwatch_inference.runtime_settings import load

BUCKET = "dw-test-data"


@pytest.fixture(params=["s3", "folder"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore | FolderStore]:
    if request.param == "s3":
        request.getfixturevalue("s3")  # moto with the test buckets
        store: ObjectStore | FolderStore = ObjectStore(
            types.SimpleNamespace(aws_endpoint_url=None, aws_region="eu-west-1")
        )
    else:
        store = FolderStore(tmp_path / "buckets")
        store.create_bucket(BUCKET)
    assert isinstance(store, StorePort)
    yield store


def test_etag_is_the_md5_of_the_content(store: ObjectStore | FolderStore, tmp_path: Path) -> None:
    body = b"raw satellite bytes" * 1000
    source = tmp_path / "scene.tfrecord"
    source.write_bytes(body)
    store.upload(source, BUCKET, "raw/2026-11-27/scene.tfrecord")
    store.put_bytes(BUCKET, "models/model.json", b'{"name": "m"}', "application/json")
    listed = {o.key: o for o in store.list(BUCKET, "")}
    assert listed["raw/2026-11-27/scene.tfrecord"].etag == hashlib.md5(body).hexdigest()
    assert listed["raw/2026-11-27/scene.tfrecord"].size == len(body)
    assert store.get_bytes(BUCKET, "models/model.json") == (
        b'{"name": "m"}',
        hashlib.md5(b'{"name": "m"}').hexdigest(),
    )


def test_list_gives_the_keys_under_a_prefix_in_key_order(store: ObjectStore | FolderStore) -> None:
    for key in ["raw/b/2", "raw/a/1", "raw/a b/3", "processed/a/x.npz", "rawish/4"]:
        store.put_bytes(BUCKET, key, key.encode(), "text/plain")
    assert [o.key for o in store.list(BUCKET, "raw/")] == ["raw/a b/3", "raw/a/1", "raw/b/2"]
    # a prefix is a string prefix, not a folder
    assert [o.key for o in store.list(BUCKET, "raw")] == [
        "raw/a b/3",
        "raw/a/1",
        "raw/b/2",
        "rawish/4",
    ]
    assert [o.key for o in store.list(BUCKET, "raw/a/")] == ["raw/a/1"]
    assert list(store.list(BUCKET, "reports/")) == []


def test_download_with_the_registered_etag(
    store: ObjectStore | FolderStore, tmp_path: Path
) -> None:
    store.put_bytes(BUCKET, "raw/x", b"version 1", "application/octet-stream")
    (listed,) = store.list(BUCKET, "raw/")
    dest = store.download(BUCKET, "raw/x", tmp_path / "out" / "x", listed.etag)
    assert dest.read_bytes() == b"version 1"
    store.put_bytes(BUCKET, "raw/x", b"version 2", "application/octet-stream")
    with pytest.raises(ObjectMissing, match="changed since it was registered"):
        store.download(BUCKET, "raw/x", tmp_path / "again", listed.etag)


def test_missing_object_and_missing_bucket_are_different_errors(
    store: ObjectStore | FolderStore, tmp_path: Path
) -> None:
    with pytest.raises(ObjectMissing, match=r"processed/gone\.npz"):
        store.download(BUCKET, "processed/gone.npz", tmp_path / "x")
    with pytest.raises(ObjectMissing):
        store.get_bytes(BUCKET, "models/model.json")
    with pytest.raises(StorageError) as info:
        list(store.list("no-such-bucket", "raw/"))
    assert not isinstance(info.value, ObjectMissing)  # a stage error, not one file's


def test_a_folder_bucket_without_a_folder_lists_as_an_error_and_reads_as_missing(
    tmp_path: Path,
) -> None:
    store = FolderStore(tmp_path / "buckets")
    with pytest.raises(StorageError, match="check DROUGHTWATCH_STORE_ROOT"):
        list(store.list(BUCKET, "raw/"))  # a mistyped root must not look like an empty bucket
    with pytest.raises(ObjectMissing):
        store.get_bytes(BUCKET, "models/model.json")
    store.put_bytes(BUCKET, "models/model.json", b"{}", "application/json")  # makes the bucket
    assert store.path(BUCKET, "models/model.json") == tmp_path / "buckets" / BUCKET / "models" / (
        "model.json"
    )
    assert [o.key for o in store.list(BUCKET, "")] == ["models/model.json"]


def test_a_reader_never_sees_half_an_object(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "buckets")
    store.create_bucket(BUCKET)
    versions = [bytes([i]) * 3_000_000 for i in (1, 2)]
    store.put_bytes(BUCKET, "processed/x.npz", versions[0], "application/octet-stream")
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            store.put_bytes(BUCKET, "processed/x.npz", versions[i % 2], "application/octet-stream")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen = set()
        for _ in range(60):
            body, etag = store.get_bytes(BUCKET, "processed/x.npz")
            assert body in versions
            assert etag == hashlib.md5(body).hexdigest()
            seen.add(body[0])
            (listed,) = store.list(BUCKET, "processed/")
            assert listed.size == 3_000_000
    finally:
        stop.set()
        thread.join()
    assert seen  # the reads happened
    # the writes left no temporary files behind
    assert [p.name for p in (tmp_path / "buckets" / BUCKET / "processed").iterdir()] == ["x.npz"]


def test_a_crashed_write_is_never_listed(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "buckets")
    folder = store.create_bucket(BUCKET) / "raw" / "2026-11-27"
    folder.mkdir(parents=True)
    (folder / f".{'0' * 32}.partial").write_bytes(b"half an obj")
    store.put_bytes(BUCKET, "raw/2026-11-27/a.tfrecord", b"whole", "application/octet-stream")
    assert [o.key for o in store.list(BUCKET, "raw/")] == ["raw/2026-11-27/a.tfrecord"]


@pytest.mark.parametrize("key", ["", "/abs", "raw//x", "raw/./x", "raw/../../etc/passwd", "raw/"])
def test_keys_a_folder_cannot_hold_are_refused(tmp_path: Path, key: str) -> None:
    store = FolderStore(tmp_path / "buckets")
    store.create_bucket(BUCKET)
    with pytest.raises(StorageError, match="cannot be stored in a local folder"):
        store.put_bytes(BUCKET, key, b"x", "text/plain")
    assert not (tmp_path / "etc").exists()
    assert list(store.list(BUCKET, "")) == []


def test_a_key_under_an_object_is_a_clear_error(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "buckets")
    store.create_bucket(BUCKET)
    store.put_bytes(BUCKET, "raw/a", b"x", "text/plain")
    with pytest.raises(StorageError, match="a key and a folder of keys share this name"):
        store.put_bytes(BUCKET, "raw/a/b", b"y", "text/plain")
    assert store.get_bytes(BUCKET, "raw/a")[0] == b"x"


def test_store_root_selects_the_folder_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DROUGHTWATCH_DATA_BUCKET", BUCKET)
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_DSN", "postgresql://x@localhost/db")
    monkeypatch.delenv("DROUGHTWATCH_STORE_ROOT", raising=False)
    assert isinstance(open_store(load(ProcessingSettings)), ObjectStore)
    monkeypatch.setenv("DROUGHTWATCH_STORE_ROOT", str(tmp_path / "buckets"))
    store = open_store(load(ProcessingSettings))
    assert isinstance(store, FolderStore) and store.root == tmp_path / "buckets"


# -- the ETag the folder store keeps with each object ---------------------------------------------


def _no_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    from droughtwatch_inference.adapters import folder_store

    def refuse(f: object) -> str:
        raise AssertionError("the object's bytes were read for its ETag")

    monkeypatch.setattr(folder_store, "_md5", refuse)


def test_listing_reads_no_bytes_of_what_the_store_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FolderStore(tmp_path / "buckets")
    source = tmp_path / "scene.tfrecord"
    source.write_bytes(b"scene" * 1000)
    store.upload(source, BUCKET, "raw/2026-11-27/scene.tfrecord")
    store.put_bytes(BUCKET, "raw/2026-11-27/note", b"note", "text/plain")
    _no_reads(monkeypatch)
    assert {o.key: o.etag for o in store.list(BUCKET, "raw/")} == {
        "raw/2026-11-27/note": hashlib.md5(b"note").hexdigest(),
        "raw/2026-11-27/scene.tfrecord": hashlib.md5(b"scene" * 1000).hexdigest(),
    }


def test_a_file_changed_in_place_or_put_there_by_hand_has_its_etag_computed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FolderStore(tmp_path / "buckets")
    store.put_bytes(BUCKET, "raw/x", b"version 1", "application/octet-stream")
    path = store.path(BUCKET, "raw/x")
    written = path.stat()
    with path.open("r+b") as f:  # the same size, other bytes, in place
        f.write(b"VERSION")
    # a later time, as any later write gives (here, not left to the clock's resolution)
    os.utime(path, ns=(written.st_atime_ns, written.st_mtime_ns + 1_000_000_000))
    assert store.head(BUCKET, "raw/x").etag == hashlib.md5(b"VERSION 1").hexdigest()
    by_hand = store.path(BUCKET, "raw/y")
    by_hand.write_bytes(b"dropped into the folder")
    assert store.head(BUCKET, "raw/y").etag == hashlib.md5(b"dropped into the folder").hexdigest()
    _no_reads(monkeypatch)  # both are kept now
    assert store.head(BUCKET, "raw/x").etag == hashlib.md5(b"VERSION 1").hexdigest()
    assert store.head(BUCKET, "raw/y").etag == hashlib.md5(b"dropped into the folder").hexdigest()


def test_a_change_that_keeps_size_and_time_is_still_caught_by_the_read(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "buckets")
    store.put_bytes(BUCKET, "raw/x", b"version 1", "application/octet-stream")
    registered = store.head(BUCKET, "raw/x").etag
    path = store.path(BUCKET, "raw/x")
    kept = path.stat()
    path.write_bytes(b"version 2")  # in place, then its time put back
    os.utime(path, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    with pytest.raises(ObjectMissing, match="changed since it was registered"):
        store.download(BUCKET, "raw/x", tmp_path / "out", registered)


def test_a_folder_that_keeps_no_attributes_gives_the_same_etags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    def unsupported(*args: object) -> None:
        raise OSError(errno.ENOTSUP, "Operation not supported")

    monkeypatch.setattr(os, "setxattr", unsupported)
    monkeypatch.setattr(os, "getxattr", unsupported)
    store = FolderStore(tmp_path / "buckets")
    store.put_bytes(BUCKET, "raw/x", b"version 1", "application/octet-stream")
    assert store.head(BUCKET, "raw/x").etag == hashlib.md5(b"version 1").hexdigest()

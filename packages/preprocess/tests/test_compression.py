"""GZIP and ZLIB TFRecord files: written by the package, made by the gzip tool, read as a stream
with bounded memory, processed, and every way their compressed data can be broken."""

from __future__ import annotations

import gzip
import io
import shutil
import struct
import subprocess
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from droughtwatch_preprocess import (
    CompressedStreamError,
    CrcMismatchError,
    OversizedRecordError,
    PreprocessError,
    TruncatedRecordError,
    iter_records,
    masked_crc32c,
    process_file,
    read_processed,
    tfrecord_bytes,
    write_tfrecord,
)

from .conftest import make_synthetic

COMPRESSIONS = ["GZIP", "ZLIB"]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_the_package_writes_compressed_files_as_tensorflow_does(
    tmp_path: Path, shard_payloads, shard_bytes, compression: str
):
    path = tmp_path / "shard.tfrecord.gz"
    assert write_tfrecord(path, shard_payloads, compression=compression) == 81
    data = path.read_bytes()
    # the whole framed stream, compressed: what zlib or gzip inflates is the plain file
    if compression == "GZIP":
        assert data[:3] == b"\x1f\x8b\x08"
        assert gzip.decompress(data) == shard_bytes
    else:
        assert data[:2] == b"\x78\x9c"
        assert zlib.decompress(data) == shard_bytes
    assert len(data) < len(shard_bytes) / 2
    assert tfrecord_bytes(shard_payloads, compression=compression.lower()) == data


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_compressed_files_read_from_path_file_object_and_bytes(
    tmp_path: Path, shard_payloads, compression: str
):
    path = tmp_path / "shard"
    write_tfrecord(path, shard_payloads, compression=compression)
    assert list(iter_records(path)) == shard_payloads
    with path.open("rb") as f:
        assert list(iter_records(f)) == shard_payloads
    assert list(iter_records(path.read_bytes())) == shard_payloads


def test_a_file_compressed_by_the_gzip_tool_is_read_and_processed(
    tmp_path: Path, shard_path: Path, shard_payloads, processed_shard
):
    plain = tmp_path / "part-r-00012"
    shutil.copyfile(shard_path, plain)
    subprocess.run(["gzip", "-9", str(plain)], check=True)  # leaves part-r-00012.gz only
    compressed = tmp_path / "part-r-00012.gz"
    assert compressed.read_bytes()[:2] == b"\x1f\x8b"
    assert list(iter_records(compressed)) == shard_payloads

    result = process_file(compressed, tmp_path / "out.npz")
    reference, reference_path = processed_shard
    assert (result.records, result.kept, result.dropped_blank) == (81, 79, 2)
    # the digest (and so the ids) is of the bytes as uploaded: the compressed file
    assert result.source_digest != reference.source_digest
    got, expected = read_processed(tmp_path / "out.npz"), read_processed(reference_path)
    np.testing.assert_array_equal(got.images, expected.images)
    np.testing.assert_array_equal(got.labels, expected.labels)


def test_concatenated_gzip_members_are_one_stream(shard_payloads):
    data = gzip.compress(tfrecord_bytes(shard_payloads[:30])) + gzip.compress(
        tfrecord_bytes(shard_payloads[30:])
    )
    assert list(iter_records(data)) == shard_payloads


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_a_compressed_file_is_inflated_with_bounded_memory(
    write_raw, tmp_path: Path, compression: str
):
    payloads = make_synthetic(120, seed=21).payloads  # 5.6 MB once inflated
    raw = tmp_path / "raw.gz"
    write_tfrecord(raw, payloads, compression=compression)
    tracemalloc.start()
    try:
        result = process_file(raw, tmp_path / "out.npz", chunk_size=8)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.records == 120
    # chunk buffers, the read buffer, and about 64 kB in + 256 kB out of the inflater
    assert peak < 4_000_000, peak


def test_an_uncompressed_file_whose_first_length_looks_like_magic_bytes_is_read_plain():
    # lengths 0x8b1f and 0x9c78 start with GZIP's and ZLIB's magic bytes
    payloads = [b"\x0a" * 0x8B1F, b"x", b"\x0a" * 0x9C78]
    gzip_like = tfrecord_bytes(payloads)
    assert gzip_like[:2] == b"\x1f\x8b"
    assert list(iter_records(gzip_like)) == payloads
    zlib_like = tfrecord_bytes(payloads[2:])
    assert zlib_like[:2] == b"\x78\x9c"
    assert list(iter_records(io.BytesIO(zlib_like))) == payloads[2:]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_a_cut_compressed_file_is_truncated_at_the_record_it_ends_in(
    tmp_path: Path, shard_payloads, compression: str
):
    data = tfrecord_bytes(shard_payloads, compression=compression)
    path = tmp_path / "cut"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedRecordError) as err:
        list(iter_records(path))
    assert err.value.path == str(path)
    assert 30 <= err.value.index <= 50  # about half of the 81 records came through
    # cut after the last record but before the stream's end marker
    path.write_bytes(data[:-3])
    with pytest.raises(TruncatedRecordError, match="end marker") as err:
        list(iter_records(path))
    assert err.value.index == 81


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_corrupt_compressed_data_names_the_file_and_the_record(
    tmp_path: Path, shard_payloads, compression: str
):
    data = bytearray(tfrecord_bytes(shard_payloads, compression=compression))
    data[len(data) // 3] ^= 0xFF
    path = tmp_path / "corrupt"
    path.write_bytes(bytes(data))
    # deflate either rejects the data or yields bytes that fail a TFRecord checksum
    with pytest.raises((CompressedStreamError, CrcMismatchError, TruncatedRecordError)) as err:
        list(iter_records(path))
    assert err.value.path == str(path)
    assert 0 < err.value.index < 81
    assert f"{path}, record {err.value.index}:" in str(err.value)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_data_after_the_end_of_the_stream_is_an_error(shard_payloads, compression: str):
    data = tfrecord_bytes(shard_payloads[:3], compression=compression) + b"trailing junk"
    with pytest.raises(CompressedStreamError, match="data follows the end") as err:
        list(iter_records(data, name="junk.gz"))
    assert (err.value.path, err.value.index) == ("junk.gz", 3)


def test_a_corrupt_length_inside_a_compressed_file_is_stopped_by_the_record_maximum():
    header = struct.pack("<Q", 2**40)
    plain = tfrecord_bytes([b"ok"]) + header + struct.pack("<I", masked_crc32c(header))
    with pytest.raises(OversizedRecordError) as err:
        list(iter_records(gzip.compress(plain + bytes(100)), name="big.gz"))
    assert (err.value.path, err.value.index) == ("big.gz", 1)


def test_an_unknown_compression_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="GZIP"):
        write_tfrecord(tmp_path / "x", [b"a"], compression="bzip2")


def test_compressed_errors_are_preprocess_errors():
    assert issubclass(CompressedStreamError, PreprocessError)

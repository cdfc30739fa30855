"""Telling TFRecord files from the other files beside them: only files that are clearly not
TFRecords are refused, each with its reason; broken TFRecords are taken so that processing
reports their error."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from droughtwatch_preprocess import (
    EMPTY_FILE,
    CrcMismatchError,
    TruncatedRecordError,
    iter_records,
    looks_like_tfrecord,
    masked_crc32c,
    process_file,
    tfrecord_bytes,
    why_not_tfrecord,
    why_not_tfrecord_head,
)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(200))
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(200))


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _flip(data: bytes, at: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[at] ^= mask
    return bytes(out)


def _first_record_corruptions(shard: bytes) -> dict[str, tuple[bytes, type]]:
    length = struct.unpack_from("<Q", shard)[0]
    huge = struct.pack("<Q", 2**40)
    return {
        # the first payload's checksum fails: frames fine, fails its payload CRC
        "payload byte": (_flip(shard, 12 + 3000), CrcMismatchError),
        "payload checksum": (_flip(shard, 12 + length), CrcMismatchError),
        # the header's checksum is damaged, the length still plausible before an Example
        "header checksum": (_flip(shard, 9), CrcMismatchError),
        "length low byte": (_flip(shard, 0), CrcMismatchError),
        # a corrupt length that its writer checksummed
        "length 2**40": (
            huge + struct.pack("<I", masked_crc32c(huge)) + shard[12:],
            TruncatedRecordError,
        ),
        "cut in the first record": (shard[:5000], TruncatedRecordError),
    }


@pytest.mark.parametrize(
    "case",
    [
        "payload byte",
        "payload checksum",
        "header checksum",
        "length low byte",
        "length 2**40",
        "cut in the first record",
    ],
)
def test_a_file_with_a_broken_first_record_is_taken_and_fails_in_processing(
    tmp_path: Path, shard_bytes: bytes, case: str
):
    data, error = _first_record_corruptions(shard_bytes)[case]
    path = _write(tmp_path, "part-r-00012", data)
    assert why_not_tfrecord(path) is None
    assert looks_like_tfrecord(path)
    with pytest.raises(error) as err:
        process_file(path, tmp_path / "out.npz")
    assert (err.value.path, err.value.index) == (str(path), 0)


@pytest.mark.parametrize("compression", ["GZIP", "ZLIB"])
def test_compressed_tfrecord_files_are_taken(tmp_path: Path, shard_payloads, compression: str):
    path = _write(tmp_path, "a.gz", tfrecord_bytes(shard_payloads[:5], compression=compression))
    assert why_not_tfrecord(path) is None
    assert looks_like_tfrecord(path)
    empty = _write(tmp_path, "empty.gz", tfrecord_bytes([], compression=compression))
    assert why_not_tfrecord(empty) is None  # TensorFlow's output for an empty dataset


def test_a_file_made_by_the_gzip_tool_is_taken(tmp_path: Path, shard_bytes: bytes):
    assert why_not_tfrecord(_write(tmp_path, "part-r-00012.gz", gzip.compress(shard_bytes))) is None


NOT_TFRECORDS = {
    "readme": (b"# droughtwatch data\nnot a TFRecord file\n", "text file"),
    "utf8-text": ("Données: température 25 °C\r\n".encode() * 300, "text file"),
    "json": (b'{"run": 1, "files": ["part-r-00012"]}', "text file"),
    "png": (PNG, "PNG image"),
    "jpeg": (JPEG, "JPEG image"),
    "tiff": (b"II*\x00" + bytes(300), "TIFF image"),
    "npz": (b"PK\x03\x04" + bytes(100), "ZIP archive (a processed .npz file?)"),
    "short": (b"\x01\x02", "2 bytes, shorter than one record header"),
    "random": (
        np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "no TFRecord framing: the first record length",
    ),
    "gzipped-text": (gzip.compress(b"some notes\n" * 50), "text file (GZIP-compressed)"),
    "gzipped-png": (gzip.compress(PNG), "PNG image (GZIP-compressed)"),
}


@pytest.mark.parametrize("case", NOT_TFRECORDS)
def test_files_that_are_clearly_not_tfrecords_are_refused_with_a_reason(tmp_path: Path, case: str):
    data, reason = NOT_TFRECORDS[case]
    path = _write(tmp_path, "other", data)
    assert why_not_tfrecord(path).startswith(reason)
    assert not looks_like_tfrecord(path)


def test_random_bytes_with_a_plausible_length_but_no_example_are_refused():
    data = struct.pack("<Q", 40_000) + b"\xde\xad\xbe\xef" + b"\x55" * 100
    assert why_not_tfrecord_head(data, len(data)) == (
        "no TFRecord framing: the first record header's checksum does not match"
    )


def test_an_empty_file_is_named_but_still_taken(tmp_path: Path):
    path = _write(tmp_path, "empty", b"")
    assert why_not_tfrecord(path) == EMPTY_FILE == "empty file"
    assert looks_like_tfrecord(path)  # a TFRecord file with no records
    assert list(iter_records(path)) == []


def test_the_real_shard_is_a_tfrecord(shard_path: Path):
    assert why_not_tfrecord(shard_path) is None
    assert looks_like_tfrecord(shard_path)


def test_the_head_alone_classifies_an_s3_object(shard_bytes: bytes):
    # a ranged GET of the first bytes and the size from the listing are enough
    assert why_not_tfrecord_head(shard_bytes[:4096], len(shard_bytes)) is None
    assert why_not_tfrecord_head(shard_bytes[:10], len(shard_bytes)) is None
    assert why_not_tfrecord_head(b"", 0) == EMPTY_FILE

"""TFRecord framing: round trips, byte-identical re-framing, and every framing error."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import google_crc32c
import pytest
from droughtwatch_preprocess import (
    MAX_RECORD_BYTES,
    CrcMismatchError,
    OversizedRecordError,
    TFRecordWriter,
    TruncatedRecordError,
    iter_records,
    masked_crc32c,
    tfrecord_bytes,
    write_tfrecord,
)

PAYLOADS = [b"", b"x", bytes(range(256)) * 40, b"\x00" * 100_000]


def test_crc32c_uses_the_c_implementation():
    # the pure-Python fallback is ~1000x slower: a platform without the wheel must show up
    assert google_crc32c.implementation == "c"


def test_masked_crc32c_follows_tensorflow_formula():
    crc = google_crc32c.value(b"123456789")
    assert crc == 3808858755  # the CRC-32C check value
    expected = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    assert masked_crc32c(b"123456789") == expected
    assert masked_crc32c(memoryview(b"123456789")) == expected


def test_writer_frames_length_crc_payload_crc():
    data = tfrecord_bytes([b"abc"])
    length = struct.pack("<Q", 3)
    assert data == (
        length
        + struct.pack("<I", masked_crc32c(length))
        + b"abc"
        + struct.pack("<I", masked_crc32c(b"abc"))
    )


def test_records_round_trip_from_path_file_object_and_bytes(tmp_path: Path):
    path = tmp_path / "r.tfrecord"
    assert write_tfrecord(path, PAYLOADS) == len(PAYLOADS)
    assert list(iter_records(path)) == PAYLOADS
    with path.open("rb") as f:
        assert list(iter_records(f)) == PAYLOADS
    assert list(iter_records(path.read_bytes())) == PAYLOADS
    assert list(iter_records(memoryview(path.read_bytes()))) == PAYLOADS


def test_writer_class_writes_to_a_file_object_and_counts():
    buf = io.BytesIO()
    with TFRecordWriter(buf) as writer:
        for payload in PAYLOADS:
            writer.write(payload)
    assert writer.count == len(PAYLOADS)
    assert not buf.closed
    assert list(iter_records(buf.getvalue())) == PAYLOADS


def test_empty_input_has_no_records():
    assert list(iter_records(b"")) == []


def test_reframing_real_records_reproduces_the_shard(shard_bytes: bytes, shard_payloads):
    assert len(shard_payloads) == 81
    assert tfrecord_bytes(shard_payloads) == shard_bytes


def _record_offsets(payloads: list[bytes]) -> list[int]:
    offsets, at = [], 0
    for payload in payloads:
        offsets.append(at)
        at += 12 + len(payload) + 4
    return offsets


@pytest.mark.parametrize(
    ("cut", "where"),
    [
        (5, "header"),  # inside the length
        (11, "header"),  # inside the length's checksum
        (12 + 500, "payload"),
        (12 + 999, "payload"),  # one byte of the payload missing
        (12 + 1000 + 2, "checksum"),  # inside the payload's checksum
    ],
)
def test_truncated_file_raises_with_path_and_record(tmp_path: Path, cut: int, where: str):
    payloads = [b"a" * 100, b"b" * 1000, b"c" * 50]
    second = _record_offsets(payloads)[1]
    path = tmp_path / "cut.tfrecord"
    path.write_bytes(tfrecord_bytes(payloads)[: second + cut])
    with pytest.raises(TruncatedRecordError) as err:
        list(iter_records(path))
    assert err.value.path == str(path)
    assert err.value.index == 1
    assert where in err.value.reason
    assert f"{path}, record 1:" in str(err.value)
    with path.open("rb") as f, pytest.raises(TruncatedRecordError) as from_stream:
        list(iter_records(f, name="cut"))
    assert (from_stream.value.path, from_stream.value.index) == ("cut", 1)


@pytest.mark.parametrize("cut", ["1", "11", "12", "12+30", "end-5", "end-1"])
def test_truncated_real_shard_raises_for_the_last_record(shard_bytes, shard_payloads, cut: str):
    last = _record_offsets(shard_payloads)[80]
    relative = {"1": 1, "11": 11, "12": 12, "12+30": 42}
    end = last + relative[cut] if cut in relative else len(shard_bytes) - int(cut[4:])
    with pytest.raises(TruncatedRecordError) as err:
        list(iter_records(shard_bytes[:end], name="part-r-00012"))
    assert err.value.path == "part-r-00012"
    assert err.value.index == 80


def test_flipped_byte_in_length_raises_crc_mismatch(shard_bytes: bytes, shard_payloads):
    offset = _record_offsets(shard_payloads)[7]
    data = bytearray(shard_bytes)
    data[offset + 2] ^= 0x01  # the length's third byte
    with pytest.raises(CrcMismatchError) as err:
        list(iter_records(bytes(data), name="shard"))
    assert (err.value.path, err.value.index) == ("shard", 7)
    assert "length" in err.value.reason


def test_flipped_byte_in_payload_raises_crc_mismatch(tmp_path: Path, shard_bytes, shard_payloads):
    offset = _record_offsets(shard_payloads)[40]
    data = bytearray(shard_bytes)
    data[offset + 12 + 3000] ^= 0x80  # a band pixel
    path = tmp_path / "flipped"
    path.write_bytes(bytes(data))
    with pytest.raises(CrcMismatchError) as err:
        list(iter_records(path))
    assert (err.value.path, err.value.index) == (str(path), 40)
    assert "payload" in err.value.reason
    # the records before the corrupt one are yielded intact
    good = []
    with pytest.raises(CrcMismatchError):
        for payload in iter_records(path):
            good.append(payload)
    assert good == shard_payloads[:40]


def test_flipped_payload_checksum_raises_crc_mismatch():
    data = bytearray(tfrecord_bytes([b"hello", b"world"]))
    data[-1] ^= 0xFF
    with pytest.raises(CrcMismatchError) as err:
        list(iter_records(bytes(data)))
    assert err.value.index == 1


class _Trickle(io.RawIOBase):
    """A stream that returns at most 7 bytes per read, like a slow pipe or socket."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(min(size, 7) if size >= 0 else 7)


def test_short_reads_from_a_stream_are_completed():
    assert list(iter_records(_Trickle(tfrecord_bytes(PAYLOADS[:3])))) == PAYLOADS[:3]


def _header(length: int) -> bytes:
    """A record header declaring ``length`` payload bytes, with the checksum a writer gives it
    (so only the length check, not the checksum, can stop it)."""
    raw = struct.pack("<Q", length)
    return raw + struct.pack("<I", masked_crc32c(raw))


@pytest.mark.parametrize("length", [2**40, 2**63, 2**64 - 1])
def test_a_length_beyond_the_end_of_the_file_is_truncated_before_any_allocation(
    tmp_path: Path, shard_bytes: bytes, length: int
):
    data = shard_bytes + _header(length) + b"\x0a" * 100
    path = tmp_path / "corrupt-length"
    path.write_bytes(data)
    with pytest.raises(TruncatedRecordError) as from_path:
        list(iter_records(path))
    assert (from_path.value.path, from_path.value.index) == (str(path), 81)
    assert f"{length:,} bytes" in from_path.value.reason and "100 of" in from_path.value.reason
    assert f"{path}, record 81:" in str(from_path.value)
    with path.open("rb") as f, pytest.raises(TruncatedRecordError):
        list(iter_records(f))
    with pytest.raises(TruncatedRecordError) as from_bytes:
        list(iter_records(data, name="s3://b/raw/x"))
    assert (from_bytes.value.path, from_bytes.value.index) == ("s3://b/raw/x", 81)
    # a stream that cannot tell its size (an S3 body) is given it by the caller
    with pytest.raises(TruncatedRecordError) as from_stream:
        list(iter_records(_Trickle(data), name="s3://b/raw/x", size=len(data)))
    assert (from_stream.value.path, from_stream.value.index) == ("s3://b/raw/x", 81)


@pytest.mark.parametrize("length", [MAX_RECORD_BYTES + 1, 2**40, 2**63])
def test_a_length_no_record_can_have_is_rejected_when_the_size_is_unknown(length: int):
    data = tfrecord_bytes([b"ok"]) + _header(length) + b"\x0a" * 100
    with pytest.raises(OversizedRecordError) as err:
        list(iter_records(_Trickle(data), name="stream"))
    assert (err.value.path, err.value.index) == ("stream", 1)
    assert f"{length:,} payload bytes" in err.value.reason
    assert f"at most {MAX_RECORD_BYTES:,}" in err.value.reason


def test_a_length_within_the_file_but_above_the_maximum_is_rejected(tmp_path: Path):
    path = tmp_path / "big"
    path.write_bytes(tfrecord_bytes([b"a" * 10, b"b" * 5000]))
    with pytest.raises(OversizedRecordError) as err:
        list(iter_records(path, max_length=4096))
    assert (err.value.path, err.value.index) == (str(path), 1)
    assert list(iter_records(path, max_length=5000)) == [b"a" * 10, b"b" * 5000]


def test_the_record_maximum_allows_eleven_generous_bands():
    from droughtwatch_preprocess.bands import MAX_BAND_BYTES

    assert MAX_BAND_BYTES >= 200 * 4225  # far above the 65x65 a band holds
    assert MAX_RECORD_BYTES == 11 * MAX_BAND_BYTES + (1 << 20) == 12 * (1 << 20)

"""process_file: counts, values, ids, chunking, bounded memory and bad input."""

from __future__ import annotations

import hashlib
import io
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from droughtwatch_preprocess import (
    CHANNELS,
    BandTooShortError,
    CrcMismatchError,
    OversizedRecordError,
    ProcessedReader,
    TruncatedRecordError,
    compute_indices,
    decode_records,
    encode_example,
    image_id,
    masked_crc32c,
    process_file,
    read_processed,
)

from .conftest import make_synthetic


@pytest.fixture(scope="session")
def shard_raw(shard_payloads):
    """Bands and labels of the raw shard, and which images are not blank (max > 1)."""
    bands, labels = decode_records(shard_payloads)
    kept = np.flatnonzero(bands.reshape(81, -1).max(axis=1) > 1)
    return bands, labels, kept


def test_real_shard_counts_records_kept_and_blank(processed_shard, shard_bytes, shard_raw):
    result, _ = processed_shard
    _, _, kept = shard_raw
    assert result.records == 81
    assert result.dropped_blank == 81 - len(kept) == 2
    assert result.kept == 79
    assert result.chunks == 1
    assert result.source_digest == hashlib.sha256(shard_bytes).hexdigest()
    assert result.seconds > 0


def test_real_shard_images_have_shapes_dtypes_and_ranges(processed_shard, shard_raw):
    _, path = processed_shard
    chunk = read_processed(path)
    assert chunk.images.shape == (79, 14, 65, 65) and chunk.images.dtype == np.float32
    assert chunk.labels.shape == (79,) and chunk.labels.dtype == np.int16
    assert chunk.ids.shape == (79,) and chunk.ids.dtype.kind == "U"
    bands = chunk.images[:, :11]
    assert bands.min() >= 0 and bands.max() <= 1
    _, labels, kept = shard_raw
    np.testing.assert_array_equal(chunk.labels, labels[kept])
    assert np.bincount(chunk.labels).tolist() == [46, 14, 14, 5]  # both blanks were class 1


def test_band_channels_are_exactly_uint8_over_255(processed_shard, shard_raw):
    _, path = processed_shard
    bands, _, kept = shard_raw
    images = read_processed(path).images
    np.testing.assert_array_equal(images[:, :11], bands[kept] / np.float32(255))


def test_index_channels_equal_the_formulas(processed_shard, shard_raw):
    _, path = processed_shard
    bands, _, kept = shard_raw
    b = bands[kept].astype(np.float32) / np.float32(255)
    b2, b4, b5, b6 = b[:, 1], b[:, 3], b[:, 4], b[:, 5]
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = [
            (b5 - b4) / (b5 + b4 + 1e-7),
            (b5 - b6) / (b5 + b6 + 1e-7),
            2.5 * (b5 - b4) / (b5 + 6 * b4 - 7.5 * b2 + 1),
        ]
    images = read_processed(path, ["NDVI", "NDMI", "EVI"]).images
    for c in range(3):
        np.testing.assert_array_equal(images[:, c], expected[c])


def test_ids_are_deterministic_unique_and_name_the_raw_record(
    processed_shard, shard_path, shard_raw, tmp_path
):
    result, path = processed_shard
    again = process_file(shard_path, tmp_path / "again.npz")
    first, second = read_processed(path).ids, read_processed(tmp_path / "again.npz").ids
    np.testing.assert_array_equal(first, second)
    assert len(set(first.tolist())) == 79
    _, _, kept = shard_raw
    assert first.tolist() == [image_id(result.source_digest, int(i)) for i in kept]
    assert first[0] == f"{result.source_digest[:20]}-{kept[0]:06d}"
    assert again.source_digest == result.source_digest
    # the whole processed file is reproducible, byte for byte
    assert path.read_bytes() == (tmp_path / "again.npz").read_bytes()


@pytest.mark.parametrize("chunk_size", [1, 7, 256])
def test_chunk_size_changes_only_the_chunking(processed_shard, shard_path, tmp_path, chunk_size):
    _, reference_path = processed_shard
    dest = tmp_path / f"chunk{chunk_size}.npz"
    result = process_file(shard_path, dest, chunk_size=chunk_size)
    assert result.chunks == -(-79 // chunk_size)
    reference = read_processed(reference_path)
    chunk = read_processed(dest)
    for got, expected in zip(chunk, reference, strict=True):
        np.testing.assert_array_equal(got, expected)
    with ProcessedReader(dest) as reader:
        sizes = [len(c.ids) for c in reader.iter_chunks()]
    full, rest = divmod(79, chunk_size)
    assert sizes == [chunk_size] * full + ([rest] if rest else [])


def _peak_traced_bytes(raw: Path, dest: Path, chunk_size: int) -> int:
    tracemalloc.start()
    try:
        process_file(raw, dest, chunk_size=chunk_size)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_bounded_by_the_chunk_size_not_the_file_size(write_raw, tmp_path):
    payloads = make_synthetic(200, seed=11).payloads
    small = _peak_traced_bytes(write_raw(payloads[:50], "small"), tmp_path / "s.npz", 8)
    large = _peak_traced_bytes(write_raw(payloads, "large"), tmp_path / "l.npz", 8)
    # 150 more records (7 MB of raw data) cost only their ids and positions
    assert large - small < 100_000, (small, large)
    # 8 images of bands (0.4 MB) and the 1 MB read buffer
    assert large < 3_500_000, large


def test_blank_images_are_dropped_counted_and_keep_their_positions(write_raw, tmp_path):
    synthetic = make_synthetic(6, seed=12)
    bands = synthetic.bands.copy()
    bands[1] = 0
    bands[3] = 1  # max exactly 1/255: still blank
    bands[4] = 0
    bands[4, 10, 64, 64] = 2  # one value above 1/255: kept
    raw = write_raw([encode_example(bands[i], 0) for i in range(6)])
    result = process_file(raw, tmp_path / "out.npz")
    assert (result.records, result.kept, result.dropped_blank) == (6, 4, 2)
    chunk = read_processed(tmp_path / "out.npz", ["B11"])
    assert [int(i.rsplit("-", 1)[1]) for i in chunk.ids] == [0, 2, 4, 5]
    assert chunk.images[2, 0, 64, 64] == np.float32(2) / np.float32(255)


def test_unlabelled_records_get_label_minus_one(write_raw, tmp_path):
    raw = write_raw([encode_example(b, None) for b in make_synthetic(3, seed=13).bands])
    process_file(raw, tmp_path / "out.npz")
    assert read_processed(tmp_path / "out.npz").labels.tolist() == [-1, -1, -1]


def test_empty_raw_file_gives_an_empty_processed_file(write_raw, tmp_path):
    result = process_file(write_raw([]), tmp_path / "out.npz")
    assert (result.records, result.kept, result.chunks) == (0, 0, 0)
    assert result.source_digest == hashlib.sha256(b"").hexdigest()
    chunk = read_processed(tmp_path / "out.npz")
    assert chunk.images.shape == (0, len(CHANNELS), 65, 65) and chunk.labels.shape == (0,)


def test_file_object_and_bytes_sources_give_the_same_file(shard_bytes, processed_shard, tmp_path):
    _, from_path = processed_shard
    process_file(io.BytesIO(shard_bytes), tmp_path / "a.npz", source_name="part-r-00012")
    process_file(shard_bytes, tmp_path / "b.npz", source_name="part-r-00012")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with ProcessedReader(tmp_path / "a.npz") as reader:
        assert reader.meta["source_name"] == "part-r-00012"
    for got, expected in zip(
        read_processed(tmp_path / "a.npz"), read_processed(from_path), strict=True
    ):
        np.testing.assert_array_equal(got, expected)


def _corrupt_copies(shard_bytes: bytes, shard_payloads) -> dict[str, tuple[bytes, type, int]]:
    truncated = shard_bytes[: len(shard_bytes) - 100]
    flipped = bytearray(shard_bytes)
    third = sum(12 + len(p) + 4 for p in shard_payloads[:2])
    flipped[third + 12 + 5000] ^= 1  # a pixel of record 2
    return {
        "truncated": (truncated, TruncatedRecordError, 80),
        "flipped": (bytes(flipped), CrcMismatchError, 2),
    }


@pytest.mark.parametrize("case", ["truncated", "flipped"])
def test_bad_raw_file_raises_and_leaves_no_output(shard_bytes, shard_payloads, tmp_path, case):
    data, error, index = _corrupt_copies(shard_bytes, shard_payloads)[case]
    raw = tmp_path / "raw"
    raw.write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(error) as err:
        process_file(raw, out / "new.npz")
    assert (err.value.path, err.value.index) == (str(raw), index)
    assert list(out.iterdir()) == []  # no half-written file, no temporary file
    existing = out / "existing.npz"
    existing.write_bytes(b"previous result")
    with pytest.raises(error):
        process_file(raw, existing, source_name="s3://bucket/raw/part-r-00012")
    assert existing.read_bytes() == b"previous result"
    assert list(out.iterdir()) == [existing]


class _Unseekable(io.RawIOBase):
    """A forward-only stream, like an S3 body: it cannot tell its size."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._data.readinto(buffer)


@pytest.mark.parametrize("length", [2**40, 2**63])
def test_a_corrupt_length_fails_with_the_file_and_record_without_allocating_it(
    shard_bytes, tmp_path, length
):
    header = length.to_bytes(8, "little")
    data = shard_bytes + header + masked_crc32c(header).to_bytes(4, "little") + bytes(64)
    raw = tmp_path / "raw"
    raw.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(TruncatedRecordError) as err:
            process_file(raw, tmp_path / "out.npz", source_name="s3://b/raw/corrupt")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (err.value.path, err.value.index) == ("s3://b/raw/corrupt", 81)
    assert peak < 40_000_000, peak  # the chunk buffers, not the declared length
    assert not (tmp_path / "out.npz").exists()
    # streaming from S3: the object's size comes from its metadata
    with pytest.raises(TruncatedRecordError):
        process_file(_Unseekable(data), tmp_path / "out.npz", size=len(data))
    # and without it the record maximum still stops the length before any allocation
    with pytest.raises(OversizedRecordError) as err:
        process_file(_Unseekable(data), tmp_path / "out.npz", source_name="s3://b/raw/corrupt")
    assert (err.value.path, err.value.index) == ("s3://b/raw/corrupt", 81)


def test_bad_record_error_names_the_source_name_and_record(write_raw, tmp_path):
    payloads = make_synthetic(5, seed=14).payloads
    bands = {f"B{i}": bytes(4225) for i in range(1, 12)}
    bands["B4"] = bytes(100)
    payloads[3] = encode_example(bands, 1)
    raw = write_raw(payloads)
    with pytest.raises(BandTooShortError) as err:
        process_file(raw, tmp_path / "out.npz", chunk_size=2, source_name="s3://b/raw/x")
    assert (err.value.path, err.value.index) == ("s3://b/raw/x", 3)
    assert "B4" in err.value.reason and not (tmp_path / "out.npz").exists()


def test_indices_are_computed_per_chunk_like_on_the_whole(write_raw, tmp_path):
    synthetic = make_synthetic(20, seed=15)
    process_file(write_raw(synthetic.payloads), tmp_path / "out.npz", chunk_size=3)
    images = read_processed(tmp_path / "out.npz", ["NDVI", "NDMI", "EVI"]).images
    np.testing.assert_array_equal(images, compute_indices(synthetic.bands))


def test_chunk_size_must_be_positive(shard_path, tmp_path):
    with pytest.raises(ValueError, match="chunk_size"):
        process_file(shard_path, tmp_path / "out.npz", chunk_size=0)


def test_concurrent_calls_in_threads_give_the_same_files(processed_shard, shard_path, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    _, reference = processed_shard
    dests = [tmp_path / f"t{i}.npz" for i in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda dest: process_file(shard_path, dest, chunk_size=16), dests))
    expected = read_processed(reference)
    for dest in dests:
        for got, want in zip(read_processed(dest), expected, strict=True):
            np.testing.assert_array_equal(got, want)

"""The processed file format: plain np.load access, the reader, and bad processed files."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from droughtwatch_preprocess import (
    BANDS,
    CHANNELS,
    INDICES,
    MissingChannelError,
    ProcessedFormatError,
    ProcessedReader,
    ProcessedVersionError,
    ProcessedWriter,
    compute_indices,
    decode_records,
    read_processed,
)


def test_processed_file_loads_with_plain_numpy(processed_shard):
    result, path = processed_shard
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == [
            "chunk-00000/bands",
            "chunk-00000/ids",
            "chunk-00000/labels",
            "chunk-00000/records",
            "meta",
        ]
        meta = json.loads(npz["meta"][()])
        bands = npz["chunk-00000/bands"]
        assert bands.shape == (79, 11, 65, 65) and bands.dtype == np.uint8
        assert npz["chunk-00000/labels"].dtype == np.int16
        assert npz["chunk-00000/records"].tolist()[:3] == [0, 1, 2]
    assert meta["format"] == "droughtwatch-processed" and meta["version"] == 2
    assert meta["channels"] == list(CHANNELS)
    assert meta["stored"] == {"bands": list(BANDS)}
    assert meta["computed"] == list(INDICES)
    assert (meta["records"], meta["kept"], meta["dropped_blank"], meta["chunks"]) == (81, 79, 2, 1)
    assert meta["source_digest"] == result.source_digest
    assert meta["band_scale"] == 1 / 255
    with zipfile.ZipFile(path) as archive:  # stored, so readers can map or stream it
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}


def test_processed_file_is_no_bigger_than_the_raw_file(processed_shard, shard_path):
    # only the uint8 bands, labels, positions and ids: 46.6 kB per image, as in the raw file
    _, path = processed_shard
    assert path.stat().st_size <= 1.1 * shard_path.stat().st_size
    with np.load(path, allow_pickle=False) as npz:
        assert not [name for name in npz.files if npz[name].dtype.kind == "f"]


def test_index_channels_are_bit_for_bit_what_training_computes(processed_shard, shard_payloads):
    _, path = processed_shard
    bands, _ = decode_records(shard_payloads)
    kept = bands.reshape(81, -1).max(axis=1) > 1
    expected = compute_indices(bands[kept])  # what training computes from the same bands
    got = read_processed(path, list(INDICES)).images
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))  # NaNs included
    # and in any order, mixed with bands, chunk by chunk
    with ProcessedReader(path) as reader:
        (chunk,) = reader.iter_chunks(["EVI", "B4", "NDVI"])
    assert np.array_equal(chunk.images[:, 0].view(np.uint32), expected[:, 2].view(np.uint32))
    assert np.array_equal(chunk.images[:, 2].view(np.uint32), expected[:, 0].view(np.uint32))


def test_reader_reports_meta_channels_and_length(processed_shard):
    _, path = processed_shard
    with path.open("rb") as f, ProcessedReader(f) as reader:
        assert reader.channels == CHANNELS
        assert len(reader) == 79
        assert reader.meta["source_name"].endswith("part-r-00012")


def test_reader_returns_requested_channels_in_requested_order(processed_shard):
    _, path = processed_shard
    full = read_processed(path)
    picked = read_processed(path, ["EVI", "B4", "B4", "NDVI"])
    assert picked.images.shape == (79, 4, 65, 65)
    order = [CHANNELS.index(c) for c in ["EVI", "B4", "B4", "NDVI"]]
    np.testing.assert_array_equal(picked.images, full.images[:, order])
    np.testing.assert_array_equal(picked.ids, full.ids)


def test_unknown_channel_raises_missing_channel_error(processed_shard):
    _, path = processed_shard
    with ProcessedReader(path) as reader, pytest.raises(MissingChannelError) as err:
        reader.iter_chunks(["B4", "NDWI"])  # raised at the call, before any read
    assert isinstance(err.value, ProcessedFormatError)
    assert (err.value.path, err.value.channel, err.value.available) == (str(path), "NDWI", CHANNELS)
    assert "'NDWI'" in str(err.value) and "B1, B2" in str(err.value)
    with pytest.raises(MissingChannelError):
        read_processed(path, ["B12"])


def test_a_single_channel_string_is_rejected(processed_shard):
    _, path = processed_shard
    with ProcessedReader(path) as reader, pytest.raises(TypeError):
        reader.iter_chunks("NDVI")


def _rewrite(source: Path, dest: Path, *, drop: str = "", meta_patch: dict | None = None) -> Path:
    """Copy a processed archive, leaving out member ``drop`` or patching the meta JSON."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(dest, "w") as out:
        for info in src.infolist():
            if info.filename == drop:
                continue
            data = src.read(info)
            if info.filename == "meta.npy" and meta_patch is not None:
                meta = json.loads(np.load(io.BytesIO(data))[()]) | meta_patch
                buf = io.BytesIO()
                np.save(buf, np.array(json.dumps(meta)))
                data = buf.getvalue()
            out.writestr(info, data)
    return dest


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"drop": "meta.npy"}, "'meta' is missing"),
        ({"meta_patch": {"format": "something-else"}}, "format is 'something-else'"),
        ({"meta_patch": {"computed": ["NDWI"]}}, "unknown computed channels"),
        ({"meta_patch": {"stored": {"bands": ["B1", "B2"]}}}, "need the bands B1, B2, B3"),
    ],
)
def test_bad_archive_raises_processed_format_error(processed_shard, tmp_path, change, reason):
    _, path = processed_shard
    bad = _rewrite(path, tmp_path / "bad.npz", **change)
    with pytest.raises(ProcessedFormatError) as err:
        ProcessedReader(bad)
    assert err.value.path == str(bad)
    assert reason in err.value.reason


@pytest.mark.parametrize(
    ("version", "words"),
    [(1, "older than the version this reader reads (2)"),
     (3, "newer than the version this reader reads (2); a newer droughtwatch_preprocess"),
     (None, "not the version this reader reads (2)")],
)  # fmt: skip
def test_another_format_version_is_refused_with_what_to_do(
    processed_shard, tmp_path, version, words
):
    _, path = processed_shard
    other = _rewrite(path, tmp_path / "other.npz", meta_patch={"version": version})
    with pytest.raises(ProcessedVersionError) as err:
        ProcessedReader(other, name="s3://b/processed/x.npz")
    assert isinstance(err.value, ProcessedFormatError)
    assert (err.value.path, err.value.version, err.value.supported) == (
        "s3://b/processed/x.npz",
        version,
        2,
    )
    message = str(err.value)
    assert message.startswith(f"s3://b/processed/x.npz: format version {version!r} is {words}")
    assert "Reprocess the raw file" in message


def test_missing_chunk_member_raises_when_read(processed_shard, tmp_path):
    _, path = processed_shard
    bad = _rewrite(path, tmp_path / "bad.npz", drop="chunk-00000/bands.npy")
    with ProcessedReader(bad) as reader:
        assert len(reader) == 79  # the meta is fine
        with pytest.raises(ProcessedFormatError, match="chunk-00000/bands"):
            list(reader.iter_chunks(["NDVI"]))  # indices need the bands


def test_not_a_zip_raises_processed_format_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not an npz file at all")
    with pytest.raises(ProcessedFormatError, match="not a ZIP"):
        ProcessedReader(bad)


def test_corrupted_member_data_raises_processed_format_error(processed_shard, tmp_path):
    _, path = processed_shard
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("chunk-00000/bands.npy")
    data[info.header_offset + 200 + 10_000] ^= 0xFF  # inside the band pixels
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(data))
    with ProcessedReader(bad) as reader, pytest.raises(ProcessedFormatError, match="bands"):
        list(reader.iter_chunks())


def test_writer_rejects_arrays_of_the_wrong_shape(tmp_path):
    with ProcessedWriter(tmp_path / "x.npz", chunk_size=4) as writer:
        with pytest.raises(ValueError, match="bands"):
            writer.write_chunk(
                np.zeros((2, 10, 65, 65), np.uint8), np.zeros(2, np.int16), np.arange(2)
            )
        with pytest.raises(ValueError, match=r"1\.\.4"):
            writer.write_chunk(
                np.zeros((5, 11, 65, 65), np.uint8), np.zeros(5, np.int16), np.arange(5)
            )

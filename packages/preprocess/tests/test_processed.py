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
    ProcessedWriter,
    read_processed,
)


def test_processed_file_loads_with_plain_numpy(processed_shard):
    result, path = processed_shard
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == [
            "chunk-00000/bands",
            "chunk-00000/ids",
            "chunk-00000/indices",
            "chunk-00000/labels",
            "chunk-00000/records",
            "meta",
        ]
        meta = json.loads(npz["meta"][()])
        bands, indices = npz["chunk-00000/bands"], npz["chunk-00000/indices"]
        assert bands.shape == (79, 11, 65, 65) and bands.dtype == np.uint8
        assert indices.shape == (79, 3, 65, 65) and indices.dtype == np.float32
        assert npz["chunk-00000/labels"].dtype == np.int16
        assert npz["chunk-00000/records"].tolist()[:3] == [0, 1, 2]
    assert meta["format"] == "droughtwatch-processed" and meta["version"] == 1
    assert meta["channels"] == list(CHANNELS)
    assert meta["stored"] == {"bands": list(BANDS), "indices": list(INDICES)}
    assert (meta["records"], meta["kept"], meta["dropped_blank"], meta["chunks"]) == (81, 79, 2, 1)
    assert meta["source_digest"] == result.source_digest
    assert meta["band_scale"] == 1 / 255
    with zipfile.ZipFile(path) as archive:  # stored, so readers can map or stream it
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}


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
        ({"meta_patch": {"version": 2}}, "version 2 is not supported"),
    ],
)
def test_bad_archive_raises_processed_format_error(processed_shard, tmp_path, change, reason):
    _, path = processed_shard
    bad = _rewrite(path, tmp_path / "bad.npz", **change)
    with pytest.raises(ProcessedFormatError) as err:
        ProcessedReader(bad)
    assert err.value.path == str(bad)
    assert reason in err.value.reason


def test_missing_chunk_member_raises_when_read(processed_shard, tmp_path):
    _, path = processed_shard
    bad = _rewrite(path, tmp_path / "bad.npz", drop="chunk-00000/indices.npy")
    with ProcessedReader(bad) as reader:
        read_processed(bad, ["B1"])  # bands alone are still readable
        with pytest.raises(ProcessedFormatError, match="chunk-00000/indices"):
            list(reader.iter_chunks(["NDVI"]))


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
                np.zeros((2, 10, 65, 65), np.uint8),
                np.zeros((2, 3, 65, 65), np.float32),
                np.zeros(2, np.int16),
                np.arange(2),
            )
        with pytest.raises(ValueError, match=r"1\.\.4"):
            writer.write_chunk(
                np.zeros((5, 11, 65, 65), np.uint8),
                np.zeros((5, 3, 65, 65), np.float32),
                np.zeros(5, np.int16),
                np.arange(5),
            )

"""Turn one raw droughtwatch TFRecord file into a processed file, streaming chunk by chunk.

One pass over the raw bytes: they are hashed (sha256) as they are read, records are
checked and decoded into a preallocated chunk, blank images are dropped, indices are
computed and the chunk is written. Memory is bounded by the chunk size, whatever the file
size. The ids, which need the digest of the whole file, are written at the end (see
processed.py), so no second pass over the file is needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .bands import BANDS, IMAGE_SIZE, INDICES
from .ids import image_id
from .indices import compute_indices
from .processed import ProcessedWriter
from .records import IMAGE_BYTES, decode_into
from .tfrecord import Source, iter_records, source_name

__all__ = ["BLANK_MAX", "ProcessResult", "image_id", "process_file"]

#: An image is blank, and dropped, when no band value exceeds this (normalised: 1/255).
BLANK_MAX = 1
_READ_BUFFER = 1 << 20


@dataclass(frozen=True)
class ProcessResult:
    source_digest: str  # sha256 hex of the raw file's bytes
    records: int  # records in the raw file
    kept: int  # images written
    dropped_blank: int  # blank images dropped
    chunks: int  # chunks written
    seconds: float  # wall time of process_file


class _HashingReader:
    """A read()-only view of a binary file that hashes every byte it hands out."""

    def __init__(self, f: BinaryIO) -> None:
        self._read = f.read
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._read(size)
        self.sha256.update(data)
        return data


def process_file(
    source: Source,
    dest: str | os.PathLike[str],
    *,
    chunk_size: int = 256,
    source_name: str | None = None,
) -> ProcessResult:
    """Process the raw TFRecord ``source`` (path, binary file object or bytes) into ``dest``.

    ``source_name`` is what the processed file's meta and any error call the source
    (default: its path). Raises a PreprocessError subclass naming the source and record
    for bad input; ``dest`` is then left untouched (the file is written under a temporary
    name beside it and renamed only on success).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    started = time.perf_counter()
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.tmp")
    with _open_source(source) as (raw, default_name):
        name = source_name or default_name
        reader = _HashingReader(raw)
        try:
            with open(tmp, "xb") as out, ProcessedWriter(out, chunk_size=chunk_size) as writer:
                records, dropped = _stream(
                    iter_records(reader, name=name), writer, chunk_size, name
                )
                digest = reader.sha256.hexdigest()
                meta = writer.finish(
                    source_digest=digest, source_name=name, records=records, dropped_blank=dropped
                )
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return ProcessResult(
        source_digest=digest,
        records=records,
        kept=meta["kept"],
        dropped_blank=dropped,
        chunks=meta["chunks"],
        seconds=time.perf_counter() - started,
    )


@contextlib.contextmanager
def _open_source(source: Source) -> Iterator[tuple[BinaryIO, str]]:
    if isinstance(source, str | os.PathLike):
        with open(source, "rb", buffering=_READ_BUFFER) as f:
            yield f, os.fspath(source)
    elif isinstance(source, bytes | bytearray | memoryview):
        yield io.BytesIO(source), "<bytes>"
    else:
        yield source, source_name(source)


def _stream(
    records: Iterator[bytes], writer: ProcessedWriter, chunk_size: int, path: str
) -> tuple[int, int]:
    """Fill chunks of ``chunk_size`` non-blank images from ``records`` and write each one.

    Returns (records read, blank images dropped). Every buffer is allocated once: a blank
    image is simply overwritten by the next record, so chunks need no compaction.
    """
    bands = np.empty((chunk_size, len(BANDS), IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    flat_bands = memoryview(bands.reshape(-1))
    by_image = bands.reshape(chunk_size, IMAGE_BYTES)
    labels = np.empty(chunk_size, np.int16)
    positions = np.empty(chunk_size, np.int64)
    indices = np.empty((chunk_size, len(INDICES), IMAGE_SIZE, IMAGE_SIZE), np.float32)
    index = -1
    dropped = fill = 0
    for index, payload in enumerate(records):
        label = decode_into(payload, flat_bands, fill * IMAGE_BYTES, path=path, index=index)
        if by_image[fill].max() <= BLANK_MAX:
            dropped += 1
            continue
        labels[fill] = label
        positions[fill] = index
        fill += 1
        if fill == chunk_size:
            _write_chunk(writer, bands, indices, labels, positions, fill)
            fill = 0
    if fill:
        _write_chunk(writer, bands, indices, labels, positions, fill)
    return index + 1, dropped


def _write_chunk(writer, bands, indices, labels, positions, n) -> None:
    compute_indices(bands[:n], out=indices[:n])
    writer.write_chunk(bands[:n], indices[:n], labels[:n], positions[:n])

"""Turn one raw droughtwatch TFRecord file into a processed file, streaming chunk by chunk.

One pass over the raw bytes: they are hashed (sha256) as they are read, records are
checked and decoded into a preallocated chunk, blank images are dropped and the chunk's
bands are written (readers compute the indices from them, see processed.py). Memory is
bounded by the chunk size, whatever the file size. The ids, which need the digest of the
whole file, are written at the end (see processed.py), so no second pass over the file is
needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .bands import BANDS, IMAGE_SIZE
from .ids import image_id
from .processed import ProcessedWriter
from .records import IMAGE_BYTES, decode_into
from .tfrecord import Source, iter_records, open_raw, remaining_size, source_name

__all__ = ["BLANK_MAX", "ProcessResult", "image_id", "process_file"]

#: An image is blank, and dropped, when no band value exceeds this (normalised: 1/255).
BLANK_MAX = 1


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
    size: int | None = None,
) -> ProcessResult:
    """Process the raw TFRecord ``source`` (path, binary file object or bytes) into ``dest``.

    ``source_name`` is what the processed file's meta and any error call the source
    (default: its path). ``size`` is the byte count of a file object that cannot tell it
    (an S3 body: the object's ContentLength), so that a corrupt record length is caught
    before anything is allocated for it (see ``iter_records``). Raises a PreprocessError
    subclass naming the source and record for bad input; ``dest`` is then left untouched
    (the file is written under a temporary name beside it and renamed only on success).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    started = time.perf_counter()
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.tmp")
    with _open_source(source) as (raw, default_name, known_size):
        name = source_name or default_name
        reader = _HashingReader(raw)
        try:
            with open(tmp, "xb") as out, ProcessedWriter(out, chunk_size=chunk_size) as writer:
                records, dropped = _stream(
                    iter_records(reader, name=name, size=known_size if size is None else size),
                    writer,
                    chunk_size,
                    name,
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
def _open_source(source: Source) -> Iterator[tuple[BinaryIO, str, int | None]]:
    """The source as a binary file object, its name, and its size when known."""
    if isinstance(source, str | os.PathLike):
        with open_raw(source) as f:
            yield f, os.fspath(source), os.fstat(f.fileno()).st_size
    elif isinstance(source, bytes | bytearray | memoryview):
        data = memoryview(source).cast("B")
        yield io.BytesIO(data), "<bytes>", len(data)
    else:
        yield source, source_name(source), remaining_size(source)


def _stream(
    records: Iterator[bytes], writer: ProcessedWriter, chunk_size: int, path: str
) -> tuple[int, int]:
    """Fill chunks of ``chunk_size`` non-blank images from ``records`` and write each one.

    Returns (records read, blank images dropped). A blank image is simply overwritten by
    the next record, so chunks need no compaction.
    """
    buffers = _buffers(chunk_size)
    index = -1
    dropped = fill = 0
    for index, payload in enumerate(records):
        label = decode_into(payload, buffers.flat, fill * IMAGE_BYTES, path=path, index=index)
        if buffers.by_image[fill].max() <= BLANK_MAX:
            dropped += 1
            continue
        buffers.labels[fill] = label
        buffers.positions[fill] = index
        fill += 1
        if fill == chunk_size:
            buffers.write(writer, fill)
            fill = 0
    if fill:
        buffers.write(writer, fill)
    return index + 1, dropped


class _Buffers:
    """One chunk's arrays: raw bands (with a flat byte view to decode into), labels and
    record positions."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.bands = np.empty((capacity, len(BANDS), IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        self.flat = memoryview(self.bands.reshape(-1))
        self.by_image = self.bands.reshape(capacity, IMAGE_BYTES)
        self.labels = np.empty(capacity, np.int16)
        self.positions = np.empty(capacity, np.int64)

    def write(self, writer: ProcessedWriter, n: int) -> None:
        writer.write_chunk(self.bands[:n], self.labels[:n], self.positions[:n])


_per_thread = threading.local()


def _buffers(capacity: int) -> _Buffers:
    """This thread's chunk buffers, kept between calls (about 46 kB per image of capacity):
    a process handling many small files then reuses warm memory instead of faulting in
    fresh pages for every file, which measured as the largest cost after the data itself."""
    cached = getattr(_per_thread, "buffers", None)
    if cached is None or cached.capacity < capacity:
        cached = _per_thread.buffers = _Buffers(capacity)
    return cached

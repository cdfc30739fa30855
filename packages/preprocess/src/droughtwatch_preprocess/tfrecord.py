"""TFRecord framing: read records with their checksums verified, and write framed records.

Each record on disk is: uint64 LE payload length, uint32 LE masked CRC32C of those 8 bytes,
the payload, uint32 LE masked CRC32C of the payload. CRC32C (Castagnoli) comes from
google-crc32c's C implementation (several GB/s); the mask is TensorFlow's
``((crc >> 15) | (crc << 17)) + 0xA282EAD8``, so that a CRC over data holding CRCs stays
meaningful. GZIP and ZLIB files (the whole framed stream compressed, see compression.py)
are recognised by their first bytes and inflated as they are read.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import google_crc32c

from .bands import MAX_RECORD_BYTES
from .compression import Deflater, Inflater, StreamError, compression_type, detect_compression
from .errors import (
    CompressedStreamError,
    CrcMismatchError,
    OversizedRecordError,
    TruncatedRecordError,
)

_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")
_HEADER = struct.Struct("<QI")  # length, masked crc of the length
HEADER_SIZE = _HEADER.size  # 12
FOOTER_SIZE = _CRC.size  # 4
_MASK_DELTA = 0xA282EAD8

# Reads larger than this bypass the buffer anyway; a big buffer keeps syscalls per record low.
_READ_BUFFER = 1 << 20

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """TensorFlow's masked CRC32C of ``data``."""
    # google_crc32c takes only buffers that need no release: bytes, not memoryview.
    crc = google_crc32c.value(data if isinstance(data, bytes) else bytes(data))
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def open_raw(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a raw file for one front-to-back read.

    The kernel is told the read is sequential, which doubles its readahead: less kernel time
    per image for a file not in the page cache (the README's benchmarks); a cached file gains
    nothing and loses nothing.
    """
    f = open(path, "rb", buffering=_READ_BUFFER)  # noqa: SIM115 (the caller closes it)
    if hasattr(os, "posix_fadvise"):  # not on macOS or Windows
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
    return f


def source_name(source: Source) -> str:
    """The name errors use for ``source``: its path, its ``name`` attribute, or ``<bytes>``."""
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return "<bytes>"
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else "<stream>"


def iter_records(
    source: Source,
    *,
    name: str | None = None,
    size: int | None = None,
    max_length: int = MAX_RECORD_BYTES,
) -> Iterator[bytes]:
    """Yield each record's payload from a path, a binary file object or bytes, in order.

    Both checksums of every record are verified before it is yielded, and each declared
    length is checked before anything is allocated for it: against the bytes the source
    still holds (TruncatedRecordError) when its size is known, and against ``max_length``
    (OversizedRecordError). ``size`` is the number of bytes a file object holds from its
    current position, for streams that cannot tell (an S3 body: the object's ContentLength);
    paths, bytes and seekable files know theirs. GZIP and ZLIB files are inflated as they
    are read (the compressed size bounds nothing, so only ``max_length`` applies there).
    Raises TruncatedRecordError when the data ends inside a record, CrcMismatchError when a
    checksum does not match and CompressedStreamError when compressed data does not inflate;
    errors carry ``name`` (default: see ``source_name``) and the 0-based record index. A
    file object is read from its current position to its end with ``read()`` only, and is
    not closed.
    """
    name = source_name(source) if name is None else name
    if isinstance(source, bytes | bytearray | memoryview):
        buf = memoryview(source).cast("B")
        if compression_of(bytes(buf[:HEADER_SIZE])):
            yield from _iter_stream(io.BytesIO(buf), name, None, max_length)
        else:
            yield from _iter_buffer(buf, name, max_length)
    elif isinstance(source, str | os.PathLike):
        with open_raw(source) as f:
            yield from _iter_stream(f, name, os.fstat(f.fileno()).st_size, max_length)
    else:
        if size is None:
            size = remaining_size(source)
        yield from _iter_stream(source, name, size, max_length)


def remaining_size(f: BinaryIO) -> int | None:
    """The bytes a binary file object holds from its current position to its end, or None
    when it cannot tell without reading (a pipe, a socket, an S3 body)."""
    try:
        if f.seekable():
            here = f.tell()
            end = f.seek(0, io.SEEK_END)
            f.seek(here)
            return end - here
    except (AttributeError, OSError, ValueError):
        pass
    return None


def header_matches(head: bytes) -> bool:
    """Whether ``head`` starts with a TFRecord header: a length and its masked CRC32C."""
    if len(head) < HEADER_SIZE:
        return False
    return masked_crc32c(head[:8]) == _CRC.unpack_from(head, 8)[0]


def compression_of(head: bytes) -> str | None:
    """GZIP or ZLIB when a file starting with ``head`` (its first 12 bytes or more) is a
    compressed TFRecord file, None when it is read as it is.

    A valid TFRecord header wins over magic bytes: an uncompressed file's first length may
    begin with 1f 8b or 78 9c, while a compressed stream's first 12 bytes match a header
    checksum with probability 2**-32.
    """
    return None if header_matches(head) else detect_compression(head)


def _check_header(header: bytes, name: str, index: int, left: int | None, max_length: int) -> int:
    """The payload length a record header declares, once it is known to be safe to read:
    its checksum matches, the source still holds the payload and its checksum (``left``:
    bytes after the header, None if unknown), and it is at most ``max_length``."""
    length, length_crc = _HEADER.unpack(header)
    if masked_crc32c(header[:8]) != length_crc:
        raise CrcMismatchError(name, index, "the checksum of the record length does not match")
    if left is not None and length > left:
        corrupt = "; no record is that long, so its length field is corrupt"
        raise TruncatedRecordError(
            name,
            index,
            f"the file ends inside the payload ({left:,} of the {length:,} bytes its header"
            f" declares{corrupt if length > max_length else ''})",
        )
    if left is not None and length + FOOTER_SIZE > left:
        raise TruncatedRecordError(name, index, "the file ends inside the payload checksum")
    if length > max_length:
        raise OversizedRecordError(
            name,
            index,
            f"the record declares {length:,} payload bytes, more than one droughtwatch record"
            f" holds (at most {max_length:,})",
        )
    return length


def _reader(f: BinaryIO):
    """``f.read`` made to return ``size`` bytes unless the stream ends (raw files, pipes
    and network streams may return less)."""
    read = f.read

    def read_exact(size: int) -> bytes:
        data = read(size)
        if len(data) == size or not data:
            return data
        parts = [data]
        missing = size - len(data)
        while missing:
            more = read(missing)
            if not more:
                break
            parts.append(more)
            missing -= len(more)
        return b"".join(parts)

    return read_exact


def _iter_stream(f: BinaryIO, name: str, size: int | None, max_length: int) -> Iterator[bytes]:
    read = _reader(f)
    head = read(HEADER_SIZE)
    kind = compression_of(head)
    if kind is None:
        yield from _iter_frames(read, head, name, size, max_length)
    else:
        yield from _iter_frames(_reader(Inflater(f.read, kind, head)), b"", name, None, max_length)


def _iter_frames(
    read: Callable[[int], bytes], first: bytes, name: str, size: int | None, max_length: int
) -> Iterator[bytes]:
    """Records from ``read`` (a ``_reader``); ``first`` is the first header if it was
    already read (b"" if not)."""
    index = 0
    left = size  # bytes not yet read, when known
    header = first
    try:
        while True:
            header = header or read(HEADER_SIZE)
            if not header:
                return
            if len(header) < HEADER_SIZE:
                raise TruncatedRecordError(
                    name,
                    index,
                    f"the file ends inside the record header ({len(header)} of 12 bytes)",
                )
            if left is not None:
                left -= HEADER_SIZE
            length = _check_header(header, name, index, left, max_length)
            if left is not None:
                left -= length + FOOTER_SIZE
            payload = read(length)
            if len(payload) < length:
                raise TruncatedRecordError(
                    name,
                    index,
                    f"the file ends inside the payload ({len(payload)} of {length} bytes)",
                )
            footer = read(FOOTER_SIZE)
            if len(footer) < FOOTER_SIZE:
                raise TruncatedRecordError(name, index, "the file ends inside the payload checksum")
            if masked_crc32c(payload) != _CRC.unpack(footer)[0]:
                raise CrcMismatchError(name, index, "the checksum of the payload does not match")
            yield payload
            index += 1
            header = b""
    except StreamError as exc:
        error = TruncatedRecordError if exc.truncated else CompressedStreamError
        raise error(name, index, exc.reason) from None


def _iter_buffer(buf: memoryview, name: str, max_length: int) -> Iterator[bytes]:
    pos, end, index = 0, len(buf), 0
    while pos < end:
        if end - pos < HEADER_SIZE:
            raise TruncatedRecordError(
                name, index, f"the data ends inside the record header ({end - pos} of 12 bytes)"
            )
        start = pos + HEADER_SIZE
        length = _check_header(bytes(buf[pos:start]), name, index, end - start, max_length)
        stop = start + length
        payload = buf[start:stop].tobytes()
        if masked_crc32c(payload) != _CRC.unpack_from(buf, stop)[0]:
            raise CrcMismatchError(name, index, "the checksum of the payload does not match")
        yield payload
        pos = stop + FOOTER_SIZE
        index += 1


class TFRecordWriter:
    """Write framed records to a path (created or truncated) or to a binary file object.

    ``compression`` is None (or ""), "GZIP" or "ZLIB", as TensorFlow's ``compression_type``:
    the whole framed stream is then compressed as TensorFlow compresses it. Use as a context
    manager; a file object passed in is flushed but not closed.
    """

    def __init__(
        self, dest: str | os.PathLike[str] | BinaryIO, *, compression: str | None = None
    ) -> None:
        kind = compression_type(compression)
        self._owned = isinstance(dest, str | os.PathLike)
        self._f: BinaryIO = (
            open(Path(dest), "wb", buffering=_READ_BUFFER) if self._owned else dest  # noqa: SIM115
        )
        self._deflater = Deflater(self._f, kind) if kind else None
        self._write = self._deflater.write if self._deflater else self._f.write
        self.count = 0

    def write(self, payload: bytes | bytearray | memoryview) -> None:
        length = _LENGTH.pack(len(payload))
        self._write(length)
        self._write(_CRC.pack(masked_crc32c(length)))
        self._write(payload)
        self._write(_CRC.pack(masked_crc32c(payload)))
        self.count += 1

    def close(self) -> None:
        if self._deflater:
            self._deflater.finish()
            self._deflater = None
        if self._owned:
            self._f.close()
        else:
            self._f.flush()

    def __enter__(self) -> TFRecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_tfrecord(
    dest: str | os.PathLike[str] | BinaryIO,
    payloads: Iterable[bytes | bytearray | memoryview],
    *,
    compression: str | None = None,
) -> int:
    """Write ``payloads`` as TFRecords to ``dest`` (compressed as ``TFRecordWriter`` says);
    return how many were written."""
    with TFRecordWriter(dest, compression=compression) as writer:
        for payload in payloads:
            writer.write(payload)
    return writer.count


def tfrecord_bytes(
    payloads: Iterable[bytes | bytearray | memoryview], *, compression: str | None = None
) -> bytes:
    """The framed bytes of ``payloads`` (a whole TFRecord file in memory)."""
    buf = io.BytesIO()
    write_tfrecord(buf, payloads, compression=compression)
    return buf.getvalue()

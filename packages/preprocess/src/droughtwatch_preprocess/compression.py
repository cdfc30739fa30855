"""GZIP and ZLIB TFRecord files (TensorFlow's ``compression_type="GZIP"`` / ``"ZLIB"``): the
whole framed stream is compressed. Telling them by their first bytes, inflating them as they
are read with bounded memory, and deflating them as they are written.

Both are deflate streams that the standard library's zlib reads and writes: a GZIP file
starts with 1f 8b 08 (magic, deflate), a ZLIB stream with a two-byte header whose first byte
is 78 for TensorFlow's 32 KB window (78 01, 5e, 9c or da by compression level) and whose 16
bits are a multiple of 31. zlib also checks the format's own checksum (GZIP's CRC-32, ZLIB's
Adler-32) at the end of the stream; the TFRecord checksums are checked on the inflated bytes
as for any file.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import BinaryIO

GZIP = "GZIP"
ZLIB = "ZLIB"
# zlib's wbits for each format: 16 + window bits selects the GZIP wrapper.
_WBITS = {GZIP: 16 + zlib.MAX_WBITS, ZLIB: zlib.MAX_WBITS}
_GZIP_MAGIC = b"\x1f\x8b\x08"
# TensorFlow's default compression level (Z_DEFAULT_COMPRESSION).
_LEVEL = 6
# Compressed bytes read per step, and the most inflated bytes held at a time: memory stays
# about _INPUT + _OUTPUT whatever the file or its compression ratio.
_INPUT = 64 * 1024
_OUTPUT = 256 * 1024


def compression_type(value: str | None) -> str | None:
    """TensorFlow's ``compression_type`` spelling ("", None, "GZIP", "ZLIB", any case) as
    GZIP, ZLIB or None (uncompressed); ValueError for anything else."""
    if not value:
        return None
    kind = value.upper()
    if kind not in _WBITS:
        raise ValueError(f"compression must be None, 'GZIP' or 'ZLIB', got {value!r}")
    return kind


def detect_compression(head: bytes) -> str | None:
    """GZIP or ZLIB when a file's first bytes carry that format's magic bytes, else None.

    Magic bytes only: an uncompressed TFRecord can start with the same bytes (its first
    length might be 0x8b1f = 35,615), so callers check for a valid TFRecord header first.
    """
    if head.startswith(_GZIP_MAGIC):
        return GZIP
    if (
        len(head) >= 2
        and head[0] == 0x78
        and not head[1] & 0x20
        and (head[0] << 8 | head[1]) % 31 == 0
    ):
        return ZLIB  # deflate, 32 KB window, no preset dictionary, header checksum ok
    return None


def inflate_head(head: bytes, kind: str, limit: int) -> tuple[bytes, bool] | None:
    """The first (at most ``limit``) bytes that the start of a compressed file inflates to,
    and whether they are the whole stream; None when ``head`` does not inflate."""
    inflate = zlib.decompressobj(_WBITS[kind])
    try:
        data = inflate.decompress(head, limit)
    except zlib.error:
        return None
    return data, inflate.eof


class StreamError(Exception):
    """The compressed stream cannot be inflated; ``truncated`` when it ends early.
    The TFRecord reader turns it into an error naming the file and the record."""

    def __init__(self, reason: str, *, truncated: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.truncated = truncated


class Inflater:
    """A ``read()``-only view of the inflated bytes of a GZIP or ZLIB stream.

    ``read`` is the compressed source's read; ``prefix`` holds compressed bytes already
    taken from it (the bytes looked at to detect the format). ``read(size)`` returns at most
    ``size`` bytes, and b"" only at the end of the stream. Concatenated GZIP members (what
    ``cat a.gz b.gz`` makes) are read as one stream, as gzip does. Raises StreamError.
    """

    def __init__(self, read: Callable[[int], bytes], kind: str, prefix: bytes = b"") -> None:
        self._read = read
        self._kind = kind
        self._inflate = zlib.decompressobj(_WBITS[kind])
        self._pending = prefix  # compressed bytes not yet given to the decompressor
        self._out = b""
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        if self._pos == len(self._out):
            self._out = self._next()
            self._pos = 0
        if size < 0:
            size = len(self._out)
        data = self._out[self._pos : self._pos + size]
        self._pos += len(data)
        return data

    def _next(self) -> bytes:
        """The next inflated bytes (at most _OUTPUT), b"" at the end of the stream."""
        while True:
            if self._inflate.eof:
                rest = self._inflate.unused_data or self._pending or self._read(_INPUT)
                self._pending = b""
                if not rest:
                    return b""
                if self._kind != GZIP or not rest.startswith(_GZIP_MAGIC[:2]):
                    raise StreamError(f"data follows the end of the {self._kind} stream")
                self._inflate = zlib.decompressobj(_WBITS[GZIP])  # the next gzip member
                self._pending = rest
            data = self._inflate.unconsumed_tail or self._pending or self._read(_INPUT)
            self._pending = b""
            if not data:
                raise StreamError(
                    f"the {self._kind} stream ends before its end marker", truncated=True
                )
            try:
                out = self._inflate.decompress(data, _OUTPUT)
            except zlib.error as exc:
                raise StreamError(f"the {self._kind} stream is corrupt ({exc})") from None
            if out:
                return out


class Deflater:
    """A ``write()``-only stream that compresses into the binary file ``f`` as GZIP or ZLIB
    (as TensorFlow does: default level, 32 KB window). ``finish()`` writes the end of the
    stream; ``f`` is neither flushed nor closed here."""

    def __init__(self, f: BinaryIO, kind: str) -> None:
        self._write = f.write
        self._deflate = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WBITS[kind])

    def write(self, data: bytes | bytearray | memoryview) -> None:
        out = self._deflate.compress(data)
        if out:
            self._write(out)

    def finish(self) -> None:
        self._write(self._deflate.flush())

"""Tell raw TFRecord files from the other files that land beside them (a README, notes, an
image), by their first bytes, and say why a file is not taken.

Only a file that is clearly not a TFRecord is refused: text, an image or another known
format, or bytes whose first record header no TFRecord writer could have written. A file
that frames as a TFRecord is taken even when a later check will fail (a payload CRC, a
truncated record, a corrupt length): processing then raises that error naming the file and
the record, so the file reaches the ledger instead of vanishing at discovery. GZIP and ZLIB
files are judged by what their first bytes inflate to.
"""

from __future__ import annotations

import os

from .bands import MAX_RECORD_BYTES
from .compression import inflate_head
from .tfrecord import HEADER_SIZE, compression_of, header_matches

#: The bytes read from the start of a file to classify it (an S3 caller may fetch just these
#: with a ranged GET and pass the object's size).
HEAD_BYTES = 4096

#: The reason given for a 0-byte file. Such a file is a valid TFRecord file with no records
#: (TensorFlow writes one for an empty dataset), so ``looks_like_tfrecord`` still takes it;
#: a caller that refuses empty files (the pipeline fails them) compares with this.
EMPTY_FILE = "empty file"

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"II*\x00", "TIFF image"),
    (b"MM\x00*", "TIFF image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"PK\x03\x04", "ZIP archive (a processed .npz file?)"),
    (b"%PDF-", "PDF document"),
    (b"\x93NUMPY", "NumPy .npy file"),
    (b"PAR1", "Parquet file"),
)
_EXAMPLE_START = 0x0A  # a serialized tf.train.Example starts with its field 1, length-delimited
_WHITESPACE = frozenset(b"\t\n\v\f\r\x1b")


def why_not_tfrecord(path: str | os.PathLike[str]) -> str | None:
    """None when the file at ``path`` is (or may be) a TFRecord file, plain, GZIP or ZLIB;
    otherwise why not, as a short phrase to print after "not a TFRecord file: ": "empty
    file", "text file", "PNG image", "text file (GZIP-compressed)", "no TFRecord framing:
    the first record length (… bytes) is implausible"."""
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
        size = os.fstat(f.fileno()).st_size
    return why_not_tfrecord_head(head, size)


def looks_like_tfrecord(path: str | os.PathLike[str]) -> bool:
    """Whether discovery should take the file as a TFRecord file: ``why_not_tfrecord`` gives
    no reason, or the file is empty (a TFRecord file with no records)."""
    return why_not_tfrecord(path) in (None, EMPTY_FILE)


def why_not_tfrecord_head(head: bytes, size: int) -> str | None:
    """``why_not_tfrecord`` of a file of ``size`` bytes whose first bytes are ``head`` (its
    first HEAD_BYTES bytes, or all of it)."""
    if size == 0:
        return EMPTY_FILE
    kind = compression_of(head)
    if kind is None:
        return _plain_reason(head, whole=size <= len(head))
    inflated = inflate_head(head, kind, HEAD_BYTES)
    if inflated is None:
        return None  # a compressed file that does not inflate: reading it names the fault
    data, whole = inflated
    if not data:
        return None  # a compressed empty TFRecord file, or too little to tell yet
    reason = _plain_reason(data, whole=whole)
    return None if reason is None else f"{reason} ({kind}-compressed)"


def _plain_reason(head: bytes, *, whole: bool) -> str | None:
    if _frames(head):
        return None
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return what
    if _is_text(head):
        return "text file"
    if len(head) < HEADER_SIZE:
        if not whole:
            return None  # too little inflated to tell
        return f"{len(head)} bytes, shorter than one record header"
    length = int.from_bytes(head[:8], "little")
    if length > MAX_RECORD_BYTES:
        return f"no TFRecord framing: the first record length ({length:,} bytes) is implausible"
    return "no TFRecord framing: the first record header's checksum does not match"


def _frames(head: bytes) -> bool:
    """Whether the first record frames as a TFRecord: its header's checksum matches (whatever
    the length says: a checksum over a corrupt length is still a writer's header), or only
    that checksum is damaged, under a plausible length followed by the start of an Example."""
    if header_matches(head):
        return True
    if len(head) <= HEADER_SIZE:
        return False
    length = int.from_bytes(head[:8], "little")
    return 0 < length <= MAX_RECORD_BYTES and head[HEADER_SIZE] == _EXAMPLE_START


def _is_text(head: bytes) -> bool:
    """UTF-8 (a character cut by the end of ``head`` is fine) with no NUL and almost no
    control characters besides whitespace."""
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:
            return False
    control = sum(1 for b in head if b < 0x20 and b not in _WHITESPACE)
    return control * 100 <= len(head)

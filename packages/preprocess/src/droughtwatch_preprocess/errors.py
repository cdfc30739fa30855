"""Errors for bad raw or processed files; each names the file, the record and what to do."""

from __future__ import annotations

from collections.abc import Sequence


class PreprocessError(Exception):
    """A raw or processed file cannot be used as it is.

    ``path`` names the file (or the name the caller gave it), ``index`` the 0-based record
    position in the raw file (None when the problem is not tied to one record), ``reason``
    what is wrong.
    """

    advice = "Check the file; nothing was written for it."

    def __init__(self, path: str, index: int | None, reason: str) -> None:
        self.path = str(path)
        self.index = index
        self.reason = reason
        where = self.path if index is None else f"{self.path}, record {index}"
        super().__init__(f"{where}: {reason}. {self.advice}")

    def __reduce__(self):  # keep the exception picklable despite the custom signature
        return (type(self), (self.path, self.index, self.reason))


class TruncatedRecordError(PreprocessError):
    """The file ends inside a record's header, payload or checksum."""

    advice = "The file is incomplete: download or export it again."


class OversizedRecordError(PreprocessError):
    """A record's length field declares more bytes than one droughtwatch record can hold
    (bands.MAX_RECORD_BYTES), although its checksum matches."""

    advice = (
        "The record's length field is corrupt, or the file is not a droughtwatch TFRecord:"
        " download or export it again."
    )


class CompressedStreamError(PreprocessError):
    """A GZIP or ZLIB file's compressed data does not inflate: corrupt deflate data, a
    failed GZIP CRC-32 or ZLIB Adler-32, or bytes after the end of the stream."""

    advice = "The compressed file is corrupt: download or export it again."


class CrcMismatchError(PreprocessError):
    """A record's length or payload does not match its masked CRC32C."""

    advice = "The file is corrupt: download or export it again; do not process it partially."


class MalformedExampleError(PreprocessError):
    """A record's payload is not a valid droughtwatch tf.train.Example."""

    advice = "Check that the file is a droughtwatch TFRecord (B1..B11 bytes, int64 label)."


class MissingBandError(MalformedExampleError):
    """A record lacks one of the bands B1..B11."""


class BandTooShortError(MalformedExampleError):
    """A band holds fewer than 65*65 bytes."""


class BadLabelError(MalformedExampleError):
    """The label is not a single int64 in 0..3."""


class ProcessedFormatError(PreprocessError):
    """A processed file is not a valid droughtwatch processed archive."""

    advice = "Regenerate the file with droughtwatch_preprocess.process_file."

    def __init__(self, path: str, reason: str, index: int | None = None) -> None:
        super().__init__(path, index, reason)

    def __reduce__(self):
        return (type(self), (self.path, self.reason, self.index))


class ProcessedVersionError(ProcessedFormatError):
    """A processed file of a format version this reader does not read (older or newer)."""

    advice = (
        "Reprocess the raw file with this droughtwatch_preprocess (process_file), which"
        " rewrites it in the current format."
    )

    def __init__(self, path: str, version: object, supported: int) -> None:
        self.version = version
        self.supported = supported
        if isinstance(version, int) and not isinstance(version, bool) and version < supported:
            where = "older than"
        elif isinstance(version, int) and not isinstance(version, bool):
            where = "newer than"
        else:
            where = "not"
        reason = (
            f"format version {version!r} is {where} the version this reader reads ({supported})"
        )
        if where == "newer than":
            reason += "; a newer droughtwatch_preprocess reads it"
        super().__init__(path, reason)

    def __reduce__(self):
        return (type(self), (self.path, self.version, self.supported))


class MissingChannelError(ProcessedFormatError):
    """A reader asked for a channel the processed file does not hold."""

    advice = "Ask only for channels the file lists, or regenerate it with a newer preprocess."

    def __init__(self, path: str, channel: str, available: Sequence[str]) -> None:
        self.channel = channel
        self.available = tuple(available)
        super().__init__(
            path, f"no channel {channel!r}; the file holds {', '.join(self.available)}"
        )

    def __reduce__(self):
        return (type(self), (self.path, self.channel, self.available))

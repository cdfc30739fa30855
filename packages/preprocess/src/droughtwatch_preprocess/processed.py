"""The processed file format: model-ready images of one raw file, written and read chunk by chunk.

A processed file is a NumPy ``.npz`` archive: a ZIP (stored, not compressed) of ``.npy``
members, so ``np.load(path, allow_pickle=False)`` opens it with numpy alone. It stores only
what cannot be recomputed: the uint8 bands, labels, record positions, ids and meta. The
spectral indices are computed when read, by indices.py, the code training uses, so they are
bit for bit what training sees (and a fix or a new index there reaches every file). Version
1 stored them as float32 beside the bands, which doubled the file (97 kB per image instead
of 46 kB) and half of Processing's time went into writing them. Members:

``meta``
    0-d unicode array holding a JSON object: ``format`` ("droughtwatch-processed"),
    ``version`` (2), ``channels`` (the channel order readers see by default: B1..B11,
    NDVI, NDMI, EVI), ``stored`` (which member holds which channels, in order:
    ``{"bands": [B1..B11]}``), ``computed`` (the channels computed from the bands when read:
    ``[NDVI, NDMI, EVI]``), ``image_size`` (65), ``band_scale`` (1/255), ``source_name``,
    ``source_digest`` (sha256 hex of the raw file's bytes), ``records`` (records in the raw
    file), ``kept``, ``dropped_blank``, ``chunks`` (number of chunks), ``chunk_size``
    (images per chunk; the last may hold fewer), ``class_names`` and ``unknown_label`` (-1).
``chunk-00000/bands`` ...
    uint8 (n, 11, 65, 65): the raw band values. Lossless: a band's normalised value is
    exactly ``bands / np.float32(255)`` (float32), which is what readers return.
``chunk-00000/labels``
    int16 (n,): class 0..3, -1 when the raw record had no label.
``chunk-00000/records``
    int64 (n,): each image's 0-based record position in the raw file.
``chunk-00000/ids``
    unicode (n,): each image's id (see ids.py).

Chunks are numbered from 00000 in image order. The ``ids`` members and ``meta`` come last
in the archive because they depend on the digest of the whole raw file, which is known
only once it has been read; ZIP members are found by name, so readers do not care.
Member timestamps are fixed, so the same raw file always gives the same bytes.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, NamedTuple

import numpy as np

from .bands import BANDS, CHANNELS, CLASS_NAMES, IMAGE_SIZE, INDICES, UNKNOWN_LABEL
from .errors import MissingChannelError, ProcessedFormatError, ProcessedVersionError
from .ids import image_ids
from .indices import compute_indices, indices_work

FORMAT = "droughtwatch-processed"
#: The format version this module writes and the only one it reads. 2: indices computed on
#: read (1 stored them as float32).
VERSION = 2
META = "meta"
BAND_SCALE = np.float32(255)  # normalised band = uint8 / BAND_SCALE, in float32
_EPOCH = (1980, 1, 1, 0, 0, 0)
# The members that hold channels, and their dtypes.
_CHANNEL_MEMBERS = {"bands": np.uint8}
_COMPUTED = "computed"  # the plan's name for channels computed from the bands


def chunk_member(chunk: int, name: str) -> str:
    """The npz key of array ``name`` of chunk number ``chunk``."""
    return f"chunk-{chunk:05d}/{name}"


class ProcessedChunk(NamedTuple):
    ids: np.ndarray  # unicode (n,)
    images: np.ndarray  # float32 (n, C, 65, 65), channels in the requested order
    labels: np.ndarray  # int16 (n,), -1 = unknown


class ProcessedWriter:
    """Write a processed file: ``write_chunk`` per chunk, then ``finish`` once.

    ``dest`` is a path or a writable binary file object (left open). Without ``finish``
    the archive has no ``meta`` and readers reject it.
    """

    def __init__(self, dest: str | os.PathLike[str] | BinaryIO, *, chunk_size: int) -> None:
        self._zip = zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        self.chunk_size = chunk_size
        self._records: list[np.ndarray] = []
        self.kept = 0

    def write_chunk(self, bands: np.ndarray, labels: np.ndarray, records: np.ndarray) -> None:
        """Append one chunk: bands uint8 (n, 11, 65, 65), labels (n,) and the raw record
        positions (n,)."""
        n = len(bands)
        size = (IMAGE_SIZE, IMAGE_SIZE)
        if bands.shape != (n, len(BANDS), *size) or bands.dtype != np.uint8:
            raise ValueError(f"bands must be uint8 (n, 11, 65, 65), got {bands.dtype}{bands.shape}")
        if labels.shape != (n,) or records.shape != (n,):
            raise ValueError("labels and records must have one value per image")
        if not 0 < n <= self.chunk_size:
            raise ValueError(f"a chunk holds 1..{self.chunk_size} images, got {n}")
        chunk = len(self._records)
        self._write(chunk_member(chunk, "bands"), bands)
        self._write(chunk_member(chunk, "labels"), labels.astype(np.int16))
        records = records.astype(np.int64)
        self._write(chunk_member(chunk, "records"), records)
        self._records.append(records)
        self.kept += n

    def finish(
        self, *, source_digest: str, source_name: str, records: int, dropped_blank: int
    ) -> dict[str, Any]:
        """Write the ids of every chunk and ``meta``, close the archive, return the meta."""
        for chunk, positions in enumerate(self._records):
            self._write(chunk_member(chunk, "ids"), image_ids(source_digest, positions))
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "channels": list(CHANNELS),
            "stored": {"bands": list(BANDS)},
            "computed": list(INDICES),
            "image_size": IMAGE_SIZE,
            "band_scale": 1 / 255,
            "source_name": source_name,
            "source_digest": source_digest,
            "records": records,
            "kept": self.kept,
            "dropped_blank": dropped_blank,
            "chunks": len(self._records),
            "chunk_size": self.chunk_size,
            "class_names": list(CLASS_NAMES),
            "unknown_label": UNKNOWN_LABEL,
        }
        self._write(META, np.array(json.dumps(meta), dtype=np.str_))
        self._zip.close()
        return meta

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> ProcessedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, name: str, array: np.ndarray) -> None:
        # What np.savez does, without its copy of the data (tobytes) and with a fixed
        # timestamp: an .npy header, then the array's buffer written as is.
        if not array.flags.c_contiguous:  # (np.ascontiguousarray would make 0-d arrays 1-d)
            array = array.copy(order="C")
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, np.lib.format.header_data_from_array_1_0(array)
        )
        info = zipfile.ZipInfo(name + ".npy", date_time=_EPOCH)
        info.compress_type = zipfile.ZIP_STORED
        info.file_size = header.tell() + array.nbytes  # lets zipfile choose ZIP64 up front
        with self._zip.open(info, "w") as member:
            member.write(header.getbuffer())
            if array.nbytes:  # (memoryview cannot cast an empty view)
                member.write(memoryview(array.reshape(-1)).cast("B"))


class ProcessedReader:
    """Read a processed file (path or seekable binary file object) chunk by chunk.

    ``meta`` is the file's metadata, ``channels`` the channels it holds, ``len()`` its
    number of images. ``name`` is what errors call the file (default: its path). Raises
    ProcessedFormatError for a file that is not a valid processed archive, and its
    subclass ProcessedVersionError for one of another format version.
    """

    def __init__(
        self, source: str | os.PathLike[str] | BinaryIO, *, name: str | None = None
    ) -> None:
        if name is not None:
            self.path = name
        elif isinstance(source, str | os.PathLike):
            self.path = os.fspath(source)
        else:
            name = getattr(source, "name", None)
            self.path = name if isinstance(name, str) else "<stream>"
        try:
            self._zip = zipfile.ZipFile(source, "r")
        except zipfile.BadZipFile as exc:
            raise ProcessedFormatError(self.path, f"not a ZIP/npz archive ({exc})") from exc
        try:
            self.meta = self._read_meta()
        except BaseException:
            self._zip.close()
            raise
        self.channels: tuple[str, ...] = tuple(self.meta["channels"])
        self._where = {
            channel: (member, position)
            for member, names in self.meta["stored"].items()
            for position, channel in enumerate(names)
        }
        self._where.update(
            (channel, (_COMPUTED, INDICES.index(channel))) for channel in self.meta["computed"]
        )
        self._work: np.ndarray | None = None  # compute_indices' scratch, made on first use

    def __len__(self) -> int:
        return int(self.meta["kept"])

    def iter_chunks(self, channels: Sequence[str] | None = None) -> Iterator[ProcessedChunk]:
        """Yield the file's chunks in order, images float32 in the order of ``channels``.

        ``channels`` defaults to ``self.channels``; one the file lacks raises
        MissingChannelError here, before anything is read. Band channels are exactly
        ``uint8 / np.float32(255)``; index channels are ``compute_indices`` of the chunk's
        uint8 bands, exactly what training computes. Only the members the channels need
        are read, and one chunk at a time, so memory stays bounded by the chunk size.
        """
        return self._chunks(self._plan(channels))

    def _chunks(self, plan: list[tuple[str, int]], with_bands: bool = False) -> Iterator[Any]:
        needed = {member for member, _ in plan} | ({"bands"} if with_bands else set())
        if _COMPUTED in needed:  # the indices are computed from the bands
            needed = (needed - {_COMPUTED}) | {"bands"}
        size = int(self.meta["image_size"])
        for chunk in range(int(self.meta["chunks"])):
            labels = self._array(chunk, "labels", np.int16, None)
            n = len(labels)
            ids = self._array(chunk, "ids", np.str_, (n,))
            arrays = {
                member: self._array(chunk, member, _CHANNEL_MEMBERS[member],
                                    (n, len(self.meta["stored"][member]), size, size))
                for member in needed
            }  # fmt: skip
            images = np.empty((n, len(plan), size, size), np.float32)
            scaled: dict[str, np.ndarray] = {}  # the bands normalised so far, by name
            for c, (member, position) in enumerate(plan):
                if member == "bands":
                    np.divide(arrays[member][:, position], BAND_SCALE, out=images[:, c])
                    scaled.setdefault(self.meta["stored"]["bands"][position], images[:, c])
            self._fill_indices(plan, arrays, images, scaled)
            chunk = ProcessedChunk(ids, images, labels)
            yield (chunk, arrays["bands"]) if with_bands else chunk

    def _fill_indices(
        self,
        plan: list[tuple[str, int]],
        arrays: dict[str, np.ndarray],
        images: np.ndarray,
        scaled: dict[str, np.ndarray],
    ) -> None:
        """Compute the plan's index channels into ``images``: straight into place when they
        are all three, in order, side by side (Inference reads them so), else through a
        scratch array; the bands normalised for the plan's band channels are reused."""
        computed = [(c, at) for c, (member, at) in enumerate(plan) if member == _COMPUTED]
        if not computed:
            return
        if self._work is None:
            self._work = indices_work()
        first = computed[0][0]
        if computed == [(first + k, k) for k in range(len(INDICES))]:
            out = images[:, first : first + len(INDICES)]
            compute_indices(arrays["bands"], out, work=self._work, scaled=scaled)
            return
        indices = compute_indices(arrays["bands"], work=self._work, scaled=scaled)
        for c, position in computed:
            images[:, c] = indices[:, position]

    def iter_chunks_with_bands(
        self, channels: Sequence[str] | None = None
    ) -> Iterator[tuple[ProcessedChunk, np.ndarray]]:
        """``iter_chunks``, each chunk with its raw bands as stored: uint8 (n, 11, 65, 65),
        B1..B11 (for counts that need the raw values, such as pixels at 0 or at 255). The
        bands member is read once per chunk whether or not ``channels`` names a band."""
        if "bands" not in self.meta["stored"]:
            raise MissingChannelError(self.path, BANDS[0], self.channels)
        return self._chunks(self._plan(channels), with_bands=True)

    def read(self, channels: Sequence[str] | None = None) -> ProcessedChunk:
        """All images of the file in one ProcessedChunk (for small files)."""
        chunks = list(self.iter_chunks(channels))
        if not chunks:
            n_channels = len(self._plan(channels))
            size = int(self.meta["image_size"])
            return ProcessedChunk(
                np.array([], dtype=np.str_),
                np.empty((0, n_channels, size, size), np.float32),
                np.empty(0, np.int16),
            )
        return ProcessedChunk(*(np.concatenate(parts) for parts in zip(*chunks, strict=True)))

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> ProcessedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _plan(self, channels: Sequence[str] | None) -> list[tuple[str, int]]:
        if channels is None:
            channels = self.channels
        elif isinstance(channels, str):
            raise TypeError("channels must be a sequence of channel names, not one string")
        plan = []
        for channel in channels:
            if channel not in self._where:
                raise MissingChannelError(self.path, channel, self.channels)
            plan.append(self._where[channel])
        return plan

    def _load(self, name: str) -> np.ndarray:
        try:
            with self._zip.open(name + ".npy") as member:
                return np.lib.format.read_array(member, allow_pickle=False)
        except KeyError:
            raise ProcessedFormatError(self.path, f"the member {name!r} is missing") from None
        except (ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ProcessedFormatError(
                self.path, f"the member {name!r} is unreadable: {exc}"
            ) from exc

    def _array(self, chunk: int, name: str, dtype: type, shape: tuple | None) -> np.ndarray:
        member = chunk_member(chunk, name)
        array = self._load(member)
        ok = array.dtype.kind == "U" if dtype is np.str_ else array.dtype == dtype
        ok = ok and (array.ndim == 1 if shape is None else array.shape == shape)
        if not ok:
            raise ProcessedFormatError(
                self.path,
                f"the member {member!r} is {array.dtype} {array.shape}, expected {np.dtype(dtype)}"
                f" {shape if shape is not None else '(n,)'}",
            )
        return array

    def _read_meta(self) -> dict[str, Any]:
        raw = self._load(META)
        try:
            if raw.shape != () or raw.dtype.kind != "U":
                raise ValueError(f"it is {raw.dtype} {raw.shape}, expected a 0-d unicode array")
            meta = json.loads(str(raw[()]))
            if not isinstance(meta, dict):
                raise ValueError("it is not a JSON object")
        except ValueError as exc:
            raise ProcessedFormatError(self.path, f"the meta member is invalid: {exc}") from exc
        if meta.get("format") != FORMAT:
            raise ProcessedFormatError(
                self.path, f"format is {meta.get('format')!r}, expected {FORMAT!r}"
            )
        version = meta.get("version")
        if version != VERSION:
            raise ProcessedVersionError(self.path, version, VERSION)
        missing = {"channels", "stored", "computed", "image_size", "kept", "chunks"} - meta.keys()
        if missing:
            raise ProcessedFormatError(self.path, f"meta lacks {', '.join(sorted(missing))}")
        if not isinstance(meta["stored"], dict) or set(meta["stored"]) - set(_CHANNEL_MEMBERS):
            raise ProcessedFormatError(self.path, f"unknown stored members {meta['stored']}")
        computed = meta["computed"]
        if not isinstance(computed, list) or set(computed) - set(INDICES):
            raise ProcessedFormatError(self.path, f"unknown computed channels {computed}")
        if computed and meta["stored"].get("bands") != list(BANDS):
            raise ProcessedFormatError(
                self.path, f"computed channels need the bands {', '.join(BANDS)} in order"
            )
        return meta


def read_processed(
    source: str | os.PathLike[str] | BinaryIO, channels: Sequence[str] | None = None
) -> ProcessedChunk:
    """All images of a (small) processed file in one ProcessedChunk."""
    with ProcessedReader(source) as reader:
        return reader.read(channels)

"""A small decoder and encoder of the ``tf.train.Example`` protobuf wire format.

Why not the protobuf library: the schema is tiny and frozen (Example{1: Features};
Features{1: map<string, Feature>}; Feature oneof {1: BytesList, 2: FloatList, 3: Int64List},
each a ``repeated`` field 1), so this module (encoder included) replaces generated
``example_pb2`` code and a runtime whose versions must match that code (protobuf's
gencode/runtime coupling), with nothing to regenerate or pin. It is also faster for this
job: ``feature_spans`` only locates each feature's list inside the payload and decodes
nothing, so the 11 band payloads (46 KB of the ~47 KB record) are never copied into Python
objects (the caller copies them straight into its array), whereas a protobuf message
materialises every ``bytes`` value first; and bands laid out as droughtwatch writers lay
them out are recognised by one byte comparison each (``expect_bytes_features``).

Decoding raises ValueError (with the reason) on malformed wire data; callers that know the
file and record turn it into MalformedExampleError.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from .bands import BANDS, CLASS_NAMES, IMAGE_SIZE

#: Field numbers of Feature's oneof, used as the ``kind`` in ``feature_spans``.
BYTES_LIST, FLOAT_LIST, INT64_LIST = 1, 2, 3
KIND_NAMES = {0: "empty feature", BYTES_LIST: "bytes_list", FLOAT_LIST: "float_list",
              INT64_LIST: "int64_list"}  # fmt: skip

_U64 = (1 << 64) - 1


class Feature(NamedTuple):
    """One decoded feature: ``kind`` is "bytes_list", "float_list" or "int64_list" (or
    "empty feature" for a Feature holding no list)."""

    kind: str
    values: tuple


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _skip(buf: bytes, pos: int, tag: int) -> int:
    wire = tag & 7
    if wire == 0:
        return _varint(buf, pos)[1]
    if wire == 2:
        length, pos = _varint(buf, pos)
        return pos + length
    if wire == 1:
        return pos + 8
    if wire == 5:
        return pos + 4
    raise ValueError(f"unsupported wire type {wire} (field {tag >> 3})")


def _length(buf: bytes, pos: int, limit: int) -> tuple[int, int]:
    """Read a length prefix at ``pos``; return (start, stop) of the delimited bytes."""
    b = buf[pos]
    if b < 0x80:
        start, stop = pos + 1, pos + 1 + b
    else:
        length, start = _varint(buf, pos)
        stop = start + length
    if stop > limit:
        raise ValueError("a length-delimited field runs past the end of its message")
    return start, stop


class ExpectedFeature(NamedTuple):
    """The exact bytes a writer puts before the value of a single-value bytes feature."""

    name: str
    header: bytes  # map entry header, Feature header, BytesList header, value length
    list_offset: int  # where the BytesList message starts within ``header``
    size: int  # length of the value


def expect_bytes_features(names: Sequence[str], size: int) -> tuple[ExpectedFeature, ...]:
    """The layout of leading features ``names``, each one ``size``-byte bytes value.

    Passed to ``feature_spans``, it lets a record laid out this way (as droughtwatch's
    bands are) be confirmed with one byte comparison per feature instead of parsed field by
    field; other records are parsed normally, with the same result.
    """
    expected = []
    for name in names:
        value_header = b"\x0a" + _varint_bytes(size)  # BytesList.value
        list_size = len(value_header) + size
        list_header = b"\x0a" + _varint_bytes(list_size)  # Feature.bytes_list
        feature_size = len(list_header) + list_size
        key = name.encode("utf-8")
        key_part = b"\x0a" + _varint_bytes(len(key)) + key + b"\x12" + _varint_bytes(feature_size)
        entry_header = b"\x0a" + _varint_bytes(len(key_part) + feature_size) + key_part
        expected.append(ExpectedFeature(
            name, entry_header + list_header + value_header,
            len(entry_header) + len(list_header), size,
        ))  # fmt: skip
    return tuple(expected)


def feature_spans(
    payload: bytes, expected: Sequence[ExpectedFeature] = ()
) -> dict[str, tuple[int, int, int]]:
    """Locate each feature of a serialized Example without decoding its values.

    Returns ``{name: (kind, start, stop)}`` where ``kind`` is BYTES_LIST, FLOAT_LIST,
    INT64_LIST (or 0 for a Feature with no list) and ``payload[start:stop]`` is the list
    message, to be read with ``bytes_spans``, ``int64_values`` or ``float_values``.
    As in protobuf, a later entry for the same name replaces an earlier one.
    ``expected`` (from ``expect_bytes_features``) only makes matching records faster.
    """
    buf = payload if isinstance(payload, bytes) else bytes(payload)
    n = len(buf)
    out: dict[str, tuple[int, int, int]] = {}
    pos = 0
    try:
        while pos < n:
            tag, pos = _varint(buf, pos)
            if tag == 0x0A:  # Example.features
                pos, end = _length(buf, pos, n)
                _parse_features(buf, pos, end, out, expected)
                pos = end
            else:
                pos = _skip(buf, pos, tag)
        if pos > n:
            raise ValueError("the message runs past its end")
    except IndexError:
        raise ValueError("the message ends early") from None
    return out


def _parse_features(
    buf: bytes, pos: int, end: int, out: dict, expected: Sequence[ExpectedFeature] = ()
) -> None:
    # Entries whose bytes equal the expected header parse to exactly these spans: the
    # header fixes every tag and length up to the value, so comparing it is the parse.
    for feature in expected:
        if not buf.startswith(feature.header, pos):
            break
        stop = pos + len(feature.header) + feature.size
        if stop > end:
            break  # the general parser below reports the overrun
        out[feature.name] = (BYTES_LIST, pos + feature.list_offset, stop)
        pos = stop
    while pos < end:
        tag, pos = _varint(buf, pos)
        if tag != 0x0A:  # Features.feature (a map entry)
            pos = _skip(buf, pos, tag)
            continue
        pos, entry_end = _length(buf, pos, end)
        # Fast path for the layout every writer produces: key (field 1, < 128 bytes) then
        # value (field 2) holding exactly one list. Each length is checked against the
        # entry's end, so a match can only be this layout; anything else (other field
        # order, unknown fields, several lists) falls through to the general parser.
        if buf[pos] == 0x0A and buf[pos + 1] < 0x80:
            key_end = pos + 2 + buf[pos + 1]
            if key_end < entry_end and buf[key_end] == 0x12:
                feature, feature_end = _length(buf, key_end + 1, entry_end)
                list_tag = buf[feature] if feature < feature_end else 0
                if feature_end == entry_end and list_tag in (0x0A, 0x12, 0x1A):
                    start, stop = _length(buf, feature + 1, entry_end)
                    if stop == entry_end:
                        out[buf[pos + 2 : key_end].decode("utf-8")] = (list_tag >> 3, start, stop)
                        pos = entry_end
                        continue
        key = ""
        kind, start, stop = 0, pos, pos
        while pos < entry_end:
            tag, pos = _varint(buf, pos)
            if tag == 0x0A:  # entry key
                pos, kend = _length(buf, pos, entry_end)
                key = buf[pos:kend].decode("utf-8")
                pos = kend
            elif tag == 0x12:  # entry value: a Feature
                pos, fend = _length(buf, pos, entry_end)
                kind, start, stop = 0, pos, pos
                while pos < fend:
                    tag, pos = _varint(buf, pos)
                    if tag in (0x0A, 0x12, 0x1A):  # bytes_list, float_list, int64_list
                        kind = tag >> 3
                        start, stop = _length(buf, pos, fend)
                        pos = stop
                    else:
                        pos = _skip(buf, pos, tag)
                if pos != fend:
                    raise ValueError(f"feature {key!r} overruns its entry")
            else:
                pos = _skip(buf, pos, tag)
        if pos != entry_end:
            raise ValueError(f"map entry {key!r} overruns its length")
        out[key] = (kind, start, stop)
    if pos != end:
        raise ValueError("the features map overruns its length")


def bytes_spans(payload: bytes, start: int, stop: int) -> list[tuple[int, int]]:
    """(start, stop) of each value of the BytesList at ``payload[start:stop]``."""
    try:
        if payload[start] == 0x0A:  # fast path: exactly one value filling the list
            vstart, vstop = _length(payload, start + 1, stop)
            if vstop == stop:
                return [(vstart, vstop)]
    except (IndexError, ValueError):
        pass  # the general loop below reports it
    spans = []
    pos = start
    try:
        while pos < stop:
            tag, pos = _varint(payload, pos)
            if tag == 0x0A:
                vstart, pos = _length(payload, pos, stop)
                spans.append((vstart, pos))
            else:
                pos = _skip(payload, pos, tag)
    except IndexError:
        raise ValueError("the bytes_list ends early") from None
    if pos != stop:
        raise ValueError("the bytes_list overruns its length")
    return spans


def int64_values(payload: bytes, start: int, stop: int) -> list[int]:
    """The values of the Int64List at ``payload[start:stop]`` (packed or not)."""
    values = []
    pos = start
    try:
        while pos < stop:
            tag, pos = _varint(payload, pos)
            if tag == 0x0A:  # packed
                pos, end = _length(payload, pos, stop)
                while pos < end:
                    value, pos = _varint(payload, pos)
                    values.append(value)
                if pos != end:
                    raise ValueError("a packed int64 runs past its list")
            elif tag == 0x08:  # one unpacked value
                value, pos = _varint(payload, pos)
                values.append(value)
            else:
                pos = _skip(payload, pos, tag)
    except IndexError:
        raise ValueError("the int64_list ends early") from None
    if pos != stop:
        raise ValueError("the int64_list overruns its length")
    values = [v & _U64 for v in values]  # int64 is two's complement in 64 bits
    return [v - (1 << 64) if v >= 1 << 63 else v for v in values]


def float_values(payload: bytes, start: int, stop: int) -> list[float]:
    """The values of the FloatList at ``payload[start:stop]`` (packed or not)."""
    values: list[float] = []
    pos = start
    try:
        while pos < stop:
            tag, pos = _varint(payload, pos)
            if tag == 0x0A:  # packed
                vstart, pos = _length(payload, pos, stop)
                if (pos - vstart) % 4:
                    raise ValueError("a packed float_list is not a multiple of 4 bytes")
                values.extend(struct.unpack(f"<{(pos - vstart) // 4}f", payload[vstart:pos]))
            elif tag == 0x0D:  # one unpacked fixed32
                values.append(struct.unpack("<f", payload[pos : pos + 4])[0])
                pos += 4
            else:
                pos = _skip(payload, pos, tag)
    except (IndexError, struct.error):
        raise ValueError("the float_list ends early") from None
    if pos != stop:
        raise ValueError("the float_list overruns its length")
    return values


def decode_example(payload: bytes) -> dict[str, Feature]:
    """Decode every feature of a serialized Example (for tests and inspection; slower)."""
    features = {}
    for name, (kind, start, stop) in feature_spans(payload).items():
        if kind == BYTES_LIST:
            values: tuple = tuple(bytes(payload[s:e]) for s, e in bytes_spans(payload, start, stop))
        elif kind == INT64_LIST:
            values = tuple(int64_values(payload, start, stop))
        elif kind == FLOAT_LIST:
            values = tuple(float_values(payload, start, stop))
        else:
            values = ()
        features[name] = Feature(KIND_NAMES[kind], values)
    return features


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _delimited(tag: int, data: bytes) -> bytes:
    return b"".join((bytes((tag,)), _varint_bytes(len(data)), data))


def _encode(feature: Feature) -> bytes:
    kind, values = feature
    if kind == "bytes_list":
        body = b"".join(_delimited(0x0A, bytes(v)) for v in values)
        return _delimited(0x0A, body)
    if kind == "int64_list":
        packed = b"".join(_varint_bytes(int(v) & _U64) for v in values)
        return _delimited(0x1A, _delimited(0x0A, packed) if values else b"")
    if kind == "float_list":
        packed = struct.pack(f"<{len(values)}f", *values)
        return _delimited(0x12, _delimited(0x0A, packed) if values else b"")
    if kind == KIND_NAMES[0] and not values:
        return b""
    raise ValueError(f"unknown feature kind {kind!r}")


def encode_features(features: Mapping[str, Feature]) -> bytes:
    """Serialize an Example holding ``features`` in their mapping order.

    Lists are written as TensorFlow writes them (int64 and float packed), so decoding and
    re-encoding a droughtwatch record reproduces its bytes.
    """
    entries = b"".join(
        _delimited(0x0A, _delimited(0x0A, name.encode("utf-8")) + _delimited(0x12, _encode(f)))
        for name, f in features.items()
    )
    return _delimited(0x0A, entries)


def encode_example(
    bands: Mapping[str, bytes] | np.ndarray,
    label: int | None = None,
    filename: str | None = None,
) -> bytes:
    """Serialize a droughtwatch record: features B1..B11, then ``label``, then ``filename``.

    ``bands`` is a uint8 array of shape (11, 65, 65) or a mapping from band name to raw
    bytes (written as given, in the mapping's order, so tests can write short or missing
    bands). ``label`` must be a class index 0..3 (None: no label feature); write other
    labels with ``encode_features``.
    """
    if isinstance(bands, np.ndarray):
        shape = (len(BANDS), IMAGE_SIZE, IMAGE_SIZE)
        if bands.shape != shape or bands.dtype != np.uint8:
            raise ValueError(f"bands must be uint8 {shape}, got {bands.dtype} {bands.shape}")
        band_bytes = {name: bands[j].tobytes() for j, name in enumerate(BANDS)}
    else:
        band_bytes = dict(bands)
    features = {name: Feature("bytes_list", (data,)) for name, data in band_bytes.items()}
    if label is not None:
        if not 0 <= label < len(CLASS_NAMES):
            raise ValueError(f"label must be in 0..{len(CLASS_NAMES) - 1}, got {label}")
        features["label"] = Feature("int64_list", (int(label),))
    if filename is not None:
        features["filename"] = Feature("bytes_list", (filename.encode("utf-8"),))
    return encode_features(features)

"""The label file: ground truth that arrives after the predictions, uploaded under
``labels/<any name>`` in the data bucket. One parser for the pipeline's ingestion and for
`droughtwatch labels upload`, which checks a file before it uploads it.

A label file is CSV (UTF-8, comma-separated, a header row) or Parquet, told apart by content
(Parquet starts and ends with ``PAR1``), with the columns ``id`` and ``label`` (others are
ignored):

- ``id``: an image id as the predictions files give it (droughtwatch_preprocess.ids): the first
  20 hex digits of the raw file's SHA-256, ``-``, the record's index in that file (at least 6
  digits), e.g. ``3f2a9c0d1e2b3a4c5d6e-000042``;
- ``label``: a class name (``0``, ``1``, ``2``, ``3+``), or the raw records' integer label
  (``0``..``3``, which names the class at that position: ``3`` is ``3+``). In Parquet a text or
  an integer column.

A file is refused whole (InvalidLabelFile, naming the file and each bad row with its value) when
it is neither CSV nor Parquet, empty (no bytes, or no row under the header), lacks a column, or
holds a bad row: an id that is not an image id, a label that is no class, an empty value, or an
id given two different labels (the same label twice is one row). Nothing of a refused file is
loaded: ingestion writes a file's labels in one transaction, only once it has passed here.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from droughtwatch_preprocess import CLASS_NAMES
from droughtwatch_preprocess.ids import DIGEST_CHARS

from droughtwatch_inference.errors import InvalidLabelFile

ID, LABEL = "id", "label"
PARQUET_MAGIC = b"PAR1"
IMAGE_ID = re.compile(rf"^[0-9a-f]{{{DIGEST_CHARS}}}-[0-9]{{6,}}$")
_INTEGER = re.compile(r"^[+-]?[0-9]+$")
# At most this many bad rows are named in the error (then how many more there are).
SHOWN_PROBLEMS = 10


@dataclass(frozen=True)
class LabelFile:
    """A label file that passed: ``labels`` maps each image id to its class name, in file
    order; ``rows`` counts the data rows (an id repeated with the same label counts twice)."""

    name: str
    format: str  # "CSV" or "Parquet"
    labels: dict[str, str]
    rows: int


def class_of(value: Any, classes: Sequence[str] = CLASS_NAMES) -> str | None:
    """The class name ``value`` stands for (a class name, or a raw integer label 0..n-1), or
    None when it stands for none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return classes[value] if 0 <= value < len(classes) else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text in classes:
        return text
    if _INTEGER.match(text):
        return class_of(int(text), classes)
    return None


def parse_label_file(body: bytes, name: str, classes: Sequence[str] = CLASS_NAMES) -> LabelFile:
    """The labels of a label file's bytes; InvalidLabelFile naming ``name`` (its key or path)
    and every problem when it is refused."""
    if not body:
        raise InvalidLabelFile(f"{name}: empty file (0 bytes): no labels")
    if body.startswith(PARQUET_MAGIC) and body.endswith(PARQUET_MAGIC):
        kind, rows = "Parquet", _parquet_rows(body, name)
    else:
        kind, rows = "CSV", _csv_rows(body, name)
    labels: dict[str, str] = {}
    where_first: dict[str, str] = {}
    problems: list[str] = []
    count = 0
    for where, raw_id, raw_label in rows:
        count += 1
        image_id = raw_id.strip().lower() if isinstance(raw_id, str) else raw_id
        label = class_of(raw_label, classes)
        problem = _row_problem(image_id, raw_label, label, classes)
        if problem is None and image_id in labels and labels[image_id] != label:
            problem = (
                f"id {image_id} is labelled {label!r} here and {labels[image_id]!r} on "
                f"{where_first[image_id]}"
            )
        if problem is not None:
            problems.append(f"{where}: {problem}")
            continue
        if image_id not in labels:
            labels[image_id] = label  # type: ignore[assignment]
            where_first[image_id] = where
    if problems:
        shown = "; ".join(problems[:SHOWN_PROBLEMS])
        more = len(problems) - SHOWN_PROBLEMS
        raise InvalidLabelFile(
            f"{name}: {len(problems)} bad row(s) of {count}, nothing loaded: {shown}"
            + (f"; and {more} more" if more > 0 else "")
        )
    if count == 0:
        raise InvalidLabelFile(f"{name}: empty file: the columns but no label rows")
    return LabelFile(name=name, format=kind, labels=labels, rows=count)


def _row_problem(
    image_id: Any, raw_label: Any, label: str | None, classes: Sequence[str]
) -> str | None:
    if image_id is None or image_id == "":
        return "empty id"
    if not isinstance(image_id, str) or not IMAGE_ID.match(image_id):
        return (
            f"id {image_id!r} is not an image id (the first {DIGEST_CHARS} hex digits of the "
            "raw file's SHA-256, '-', the record's index: e.g. 3f2a9c0d1e2b3a4c5d6e-000042)"
        )
    if raw_label is None or (isinstance(raw_label, str) and not raw_label.strip()):
        return f"id {image_id}: empty label"
    if label is None:
        return (
            f"label {raw_label!r} is neither a class name ({', '.join(classes)}) nor a raw "
            f"label 0..{len(classes) - 1}"
        )
    return None


def _columns(header: Iterable[Any]) -> dict[str, int]:
    """Column name (trimmed, lower case) -> position; the first of a repeated name wins."""
    found: dict[str, int] = {}
    for k, column in enumerate(header):
        found.setdefault(str(column).strip().lower(), k)
    return found


def _missing(columns: dict[str, int], header: Sequence[Any], name: str, kind: str) -> None:
    missing = [c for c in (ID, LABEL) if c not in columns]
    if not missing:
        return
    shown = ", ".join(repr(str(c)) for c in header) or "none"
    hint = ""
    if kind == "CSV" and len(header) == 1 and any(s in str(header[0]) for s in ";\t|"):
        hint = " (separate the columns with commas)"
    raise InvalidLabelFile(
        f"{name}: missing column(s) {', '.join(missing)}: the {kind} file's columns are "
        f"{shown}; a label file needs id and label{hint}"
    )


def _csv_rows(body: bytes, name: str) -> Iterator[tuple[str, Any, Any]]:
    """(where, id, label) of each data row; the header is checked before the first row."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        raise InvalidLabelFile(
            f"{name}: neither CSV (UTF-8 text) nor Parquet: a label file is a CSV or Parquet "
            "file with the columns id,label"
        )
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
    except csv.Error as exc:
        raise InvalidLabelFile(f"{name}: line {reader.line_num}: not CSV ({exc})") from exc
    if header is None:
        raise InvalidLabelFile(f"{name}: empty file: no header and no label rows")
    columns = _columns(header)
    _missing(columns, header, name, "CSV")
    return _csv_data(reader, columns[ID], columns[LABEL], name)


def _csv_data(reader: Any, at_id: int, at_label: int, name: str) -> Iterator[tuple[str, Any, Any]]:
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # a blank line
            where = f"line {reader.line_num}"
            yield (
                where,
                row[at_id] if at_id < len(row) else None,
                row[at_label] if at_label < len(row) else None,
            )
    except csv.Error as exc:  # e.g. a field longer than the csv module takes
        raise InvalidLabelFile(f"{name}: line {reader.line_num}: not CSV ({exc})") from exc


def _parquet_rows(body: bytes, name: str) -> Iterator[tuple[str, Any, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(body))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidLabelFile(f"{name}: not a readable Parquet file ({exc})") from exc
    columns = _columns(table.column_names)
    _missing(columns, table.column_names, name, "Parquet")
    ids, labels = table.column(columns[ID]), table.column(columns[LABEL])
    if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
        raise InvalidLabelFile(f"{name}: column id holds {ids.type}, not text: image ids are text")
    if not (
        pa.types.is_string(labels.type)
        or pa.types.is_large_string(labels.type)
        or pa.types.is_integer(labels.type)
    ):
        raise InvalidLabelFile(
            f"{name}: column label holds {labels.type}: class names as text, or raw integer "
            "labels as integers"
        )
    return (
        (f"row {k}", image_id, label)
        for k, (image_id, label) in enumerate(
            zip(ids.to_pylist(), labels.to_pylist(), strict=True), start=1
        )
    )

"""The label file (label_file.py): CSV or Parquet with columns id,label, labels as class names or
raw integer labels; every bad file refused whole with an error that names the file and each
bad row with its value."""

from __future__ import annotations

import gzip
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from droughtwatch_inference.errors import InvalidLabelFile
from droughtwatch_inference.label_file import class_of, parse_label_file
from droughtwatch_preprocess import CLASS_NAMES, image_id

DIGEST = "3f2a9c0d1e2b3a4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4"
ID0, ID1, ID2 = (image_id(DIGEST, k) for k in range(3))


def parquet(**columns: list) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


def test_class_names_and_raw_integer_labels_both_name_the_classes() -> None:
    assert [class_of(c) for c in CLASS_NAMES] == list(CLASS_NAMES)
    assert [class_of(k) for k in range(4)] == ["0", "1", "2", "3+"]
    assert [class_of(str(k)) for k in range(4)] == ["0", "1", "2", "3+"]
    assert class_of(" 3+ ") == "3+"
    assert [class_of(v) for v in (4, -1, "4", "3.0", "three", True, None, 2.0)] == [None] * 8


def test_a_csv_of_ids_and_labels_is_read_in_file_order() -> None:
    body = (
        "\ufeffnote, ID ,Label\n"  # a BOM, spaces and capitals in the header, a column more
        f"first,{ID0},3\n"
        "\n"
        f"second,{ID1.upper()},0\n"  # ids are lower-cased
        f"again,{ID0}, 3+\n"  # the same label twice is one label
        f"third,{ID2},2\n"
    ).encode()
    parsed = parse_label_file(body, "labels/survey.csv")
    assert parsed.format == "CSV" and parsed.rows == 4
    assert parsed.labels == {ID0: "3+", ID1: "0", ID2: "2"}
    assert list(parsed.labels) == [ID0, ID1, ID2]


def test_a_parquet_file_with_text_or_integer_labels_is_read() -> None:
    text = parse_label_file(parquet(id=[ID0, ID1], label=["3+", "1"]), "labels/a.parquet")
    integers = parse_label_file(parquet(id=[ID0, ID1], label=[3, 1]), "labels/b")
    assert text.format == integers.format == "Parquet"
    assert text.labels == integers.labels == {ID0: "3+", ID1: "1"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            f"id,label\n{ID0},0\n{ID1},4\n{ID2},four\n".encode(),
            "labels/f: 2 bad row(s) of 3, nothing loaded: line 3: label '4' is neither a class "
            "name (0, 1, 2, 3+) nor a raw label 0..3; line 4: label 'four' is neither",
        ),
        (
            f"id,label\n{ID0},0\n{ID1},1\n{ID0},2\n".encode(),
            f"line 4: id {ID0} is labelled '2' here and '0' on line 2",
        ),
        (f"id,label\n{ID0},\n".encode(), f"line 2: id {ID0}: empty label"),
        (f"id,label\n{ID0}\n".encode(), f"line 2: id {ID0}: empty label"),
        (b"id,label\n,0\n", "line 2: empty id"),
        (
            b"id,label\nfield-7,0\n",
            "line 2: id 'field-7' is not an image id (the first 20 hex digits of the raw file's",
        ),
        (
            f"image,label\n{ID0},0\n".encode(),
            "labels/f: missing column(s) id: the CSV file's columns are 'image', 'label'",
        ),
        (
            f"id;label\n{ID0};0\n".encode(),
            "missing column(s) id, label: the CSV file's columns are 'id;label'; a label file "
            "needs id and label (separate the columns with commas)",
        ),
        (b"", "labels/f: empty file (0 bytes): no labels"),
        (b"\n  \n", "labels/f: empty file: no header and no label rows"),
        (b"id,label\n", "labels/f: empty file: the columns but no label rows"),
        (
            gzip.compress(f"id,label\n{ID0},0\n".encode(), mtime=0),
            "labels/f: neither CSV (UTF-8 text) nor Parquet",
        ),
        (b"PAR1 not really parquet PAR1", "labels/f: not a readable Parquet file"),
        (
            parquet(id=[ID0], label=[1.0]),
            "labels/f: column label holds double: class names as text, or raw integer labels",
        ),
        (parquet(id=[1], label=["0"]), "labels/f: column id holds int64, not text"),
        (parquet(image=[ID0], label=["0"]), "missing column(s) id: the Parquet file's columns"),
        (parquet(id=[ID0, ID1], label=["0", None]), f"row 2: id {ID1}: empty label"),
        (parquet(id=pa.array([], pa.string()), label=pa.array([], pa.string())), "empty file"),
    ],
    ids=[
        "unknown-class",
        "two-labels-for-one-id",
        "empty-label",
        "no-label-cell",
        "empty-id",
        "not-an-image-id",
        "no-id-column",
        "semicolons",
        "zero-bytes",
        "blank-lines",
        "header-only",
        "gzip",
        "damaged-parquet",
        "parquet-float-labels",
        "parquet-integer-ids",
        "parquet-no-id-column",
        "parquet-null-label",
        "parquet-no-rows",
    ],
)
def test_a_bad_file_is_refused_whole_naming_the_file_rows_and_values(
    body: bytes, message: str
) -> None:
    with pytest.raises(InvalidLabelFile) as caught:
        parse_label_file(body, "labels/f")
    assert message in str(caught.value)
    assert "upload the file again" in caught.value.describe()


def test_many_bad_rows_are_named_up_to_ten_then_counted() -> None:
    rows = "".join(f"{image_id(DIGEST, k)},x{k}\n" for k in range(25))
    with pytest.raises(InvalidLabelFile) as caught:
        parse_label_file(f"id,label\n{rows}".encode(), "labels/many.csv")
    text = str(caught.value)
    assert "25 bad row(s) of 25" in text and "line 11: label 'x9'" in text
    assert "line 12:" not in text and text.endswith("; and 15 more")


def test_a_field_too_long_for_csv_is_a_refusal_not_a_crash() -> None:
    body = b'id,label\n"' + b"x" * 200_000 + b'",0\n'
    with pytest.raises(InvalidLabelFile, match=r"labels/huge.csv: line \d+: not CSV \(field"):
        parse_label_file(body, "labels/huge.csv")

"""Raw files without their labels, and those labels as a label file: how the README's worked
example and the demo's late-labels days turn labelled droughtwatch records into imagery whose
ground truth arrives later.

Each record is decoded and written again without its ``label`` feature (the other features
unchanged, in their order); the label file (CSV, ``id,label``) names each label by the image id
that the pipeline will give the record of the new file: its SHA-256, its index (see
droughtwatch_preprocess.ids), and the class name of the raw integer label.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from droughtwatch_preprocess import (
    CLASS_NAMES,
    decode_example,
    encode_features,
    image_id,
    iter_records,
    tfrecord_bytes,
)

LABEL_FEATURE = "label"


@dataclass(frozen=True)
class Stripped:
    """A raw file rewritten without labels, and the label file of its labels."""

    raw: Path
    labels: Path
    records: int
    labelled: int


def strip_labels(source: Path, raw_out: Path, labels_out: Path) -> Stripped:
    """Write ``source``'s records without their labels to ``raw_out`` and the labels, by the
    image ids of ``raw_out``'s records, to ``labels_out`` (CSV). A record without a label has
    no row."""
    labels: dict[int, str] = {}
    payloads = []
    for index, payload in enumerate(iter_records(source)):
        features = decode_example(payload)
        label = features.pop(LABEL_FEATURE, None)
        if label is not None and label.values:
            labels[index] = CLASS_NAMES[int(label.values[0])]
        payloads.append(encode_features(features))
    raw_out.parent.mkdir(parents=True, exist_ok=True)
    data = tfrecord_bytes(payloads)
    raw_out.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    labels_out.parent.mkdir(parents=True, exist_ok=True)
    with labels_out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "label"])
        writer.writerows((image_id(digest, k), name) for k, name in labels.items())
    return Stripped(raw_out, labels_out, len(payloads), len(labels))


def stripped_paths(source: Path, out_dir: Path) -> tuple[Path, Path]:
    """Where `droughtwatch labels strip` writes a file's two halves: ``out_dir/<name>`` (a
    folder of raw files for `local run`) and ``out_dir/labels/<name>.csv``."""
    return out_dir / source.name, out_dir / "labels" / f"{source.name}.csv"

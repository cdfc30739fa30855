"""The predictions file: one Parquet file per processed file, one row per image.

Columns: ``id`` (the image id from preprocessing), ``p_<class>`` (float32 probability of each
class, in the model's class order), ``label`` (the predicted class name), ``probability`` (its
probability), ``model_name``, ``model_version``; ``true_label`` (the image's label from the raw
file, as a class name, null when the record had none) and ``mean_<channel>`` (float32, the
image's mean of each channel of ``input_summaries.summary_channels``, the input
summaries input drift compares) when Inference wrote them.

The file's key-value metadata holds, under ``droughtwatch.model``, the model's name, version,
classes, reference class shares and reference metrics, and the data-bucket key of its
reference input summaries, so that Observe compares each file with the reference of the model
that made it; under ``droughtwatch.quality``, the raw file's record and blank counts and the
pixel counts of the images (see ``droughtwatch_preprocess.PixelCounts``). ``read`` returns the
latter as ``meta["quality"]`` (None for files written without it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from droughtwatch_inference.errors import InvalidPredictions
from droughtwatch_inference.model.manifest import ModelManifest

METADATA_KEY = b"droughtwatch.model"
QUALITY_KEY = b"droughtwatch.quality"
TRUE_LABEL = "true_label"


def probability_column(class_name: str) -> str:
    return f"p_{class_name}"


# Inference builds its columns from their buffers: pa.array (on a numpy array or a list alike)
# imports pandas on its first call, a second or more of CPU that Inference's first prediction
# would pay and never needs. These give exactly what pa.array gives (test_predictions.py).


def float32_array(values: Any) -> pa.Array:
    """A float32 column of ``values`` (NaN stays a value, as pa.array leaves it)."""
    data = np.ascontiguousarray(values, dtype=np.float32)
    return pa.Array.from_buffers(pa.float32(), len(data), [None, pa.py_buffer(data)])


def string_array(values: Sequence[str | None]) -> pa.Array:
    """A string column of ``values``, None as null."""
    encoded = [b"" if v is None else v.encode() for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    nulls = len(values) - int(np.count_nonzero(valid))
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    buffers = [bitmap, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(pa.string(), len(encoded), buffers, null_count=nulls)


def build_table(
    ids: np.ndarray,
    probabilities: np.ndarray,
    manifest: ModelManifest,
    *,
    true_labels: Sequence[str | None] | None = None,
    features: Mapping[str, np.ndarray] | None = None,
    reference_features_key: str | None = None,
) -> pa.Table:
    """Rows for ``ids`` from an N x K probability matrix in the manifest's class order, with
    the images' true labels (class names or None) and input summaries ({column: (N,)}) when
    given, and ``reference_features_key`` (where Observe finds the model's reference input
    summaries in the data bucket) in the metadata."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    if probabilities.ndim != 2 or probabilities.shape != (len(ids), len(manifest.classes)):
        raise ValueError(
            f"probabilities must be {len(ids)} x {len(manifest.classes)}, got {probabilities.shape}"
        )
    best = probabilities.argmax(axis=1) if len(ids) else np.zeros(0, dtype=np.int64)
    columns: dict[str, Any] = {"id": string_array(np.asarray(ids, dtype=str).tolist())}
    for k, name in enumerate(manifest.classes):
        columns[probability_column(name)] = float32_array(probabilities[:, k])
    columns["label"] = string_array([manifest.classes[k] for k in best.tolist()])
    columns["probability"] = float32_array(probabilities[np.arange(len(ids)), best])
    columns["model_name"] = string_array([manifest.name] * len(ids))
    columns["model_version"] = string_array([manifest.version] * len(ids))
    if true_labels is not None:
        if len(true_labels) != len(ids):
            raise ValueError(f"{len(true_labels)} true labels for {len(ids)} images")
        columns[TRUE_LABEL] = string_array(list(true_labels))
    for column, values in (features or {}).items():
        if len(values) != len(ids):
            raise ValueError(f"{len(values)} values of {column} for {len(ids)} images")
        columns[column] = float32_array(values)
    table = pa.table(columns)
    meta = {
        "name": manifest.name,
        "version": manifest.version,
        "classes": list(manifest.classes),
        "reference_class_shares": manifest.reference_class_shares,
        "reference_metrics": manifest.reference_metrics,
        "reference_features_key": reference_features_key,
    }
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})


def write(tables: list[pa.Table], path: Path, *, quality: Mapping[str, Any] | None = None) -> int:
    """Write one or more tables (chunks of one file) as one Parquet file, with the file's
    quality counts in its metadata when given; returns rows."""
    if not tables:
        raise ValueError("nothing to write")
    table = pa.concat_tables(tables)
    metadata = dict(tables[0].schema.metadata or {})
    if quality is not None:
        metadata[QUALITY_KEY] = json.dumps(quality).encode()
    table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path, compression="zstd")
    return table.num_rows


def read(path: Path) -> tuple[Any, dict[str, Any]]:
    """(pandas DataFrame, model metadata) of a predictions file."""
    try:
        table = pq.read_table(path)
        metadata = table.schema.metadata or {}
        meta = json.loads(metadata[METADATA_KEY])
        meta["quality"] = json.loads(metadata[QUALITY_KEY]) if QUALITY_KEY in metadata else None
        classes = meta["classes"]
        required = {"id", "label", "probability", *(probability_column(c) for c in classes)}
    except (pa.ArrowException, KeyError, ValueError, TypeError) as exc:
        raise InvalidPredictions(
            f"{path.name}: not a droughtwatch predictions file ({exc})"
        ) from exc
    missing = required - set(table.column_names)
    if missing:
        raise InvalidPredictions(f"{path.name}: missing columns {sorted(missing)}")
    return table.to_pandas(), meta

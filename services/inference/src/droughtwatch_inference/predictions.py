"""The predictions file: one Parquet file per processed file, one row per image.

Columns: ``id`` (the image id from preprocessing), ``p_<class>`` (float32 probability of each
class, in the model's class order), ``label`` (the predicted class name), ``probability`` (its
probability), ``model_name``, ``model_version``. The file's key-value metadata holds, under
``droughtwatch.model``, the model's name, version, classes and reference class shares, so that
Observe compares each file with the reference of the model that made it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from droughtwatch_inference.errors import InvalidPredictions
from droughtwatch_inference.manifest import ModelManifest

METADATA_KEY = b"droughtwatch.model"


def probability_column(class_name: str) -> str:
    return f"p_{class_name}"


def build_table(ids: np.ndarray, probabilities: np.ndarray, manifest: ModelManifest) -> pa.Table:
    """Rows for ``ids`` from an N x K probability matrix in the manifest's class order."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    if probabilities.ndim != 2 or probabilities.shape != (len(ids), len(manifest.classes)):
        raise ValueError(
            f"probabilities must be {len(ids)} x {len(manifest.classes)}, got {probabilities.shape}"
        )
    best = probabilities.argmax(axis=1) if len(ids) else np.zeros(0, dtype=np.int64)
    classes = np.asarray(manifest.classes, dtype=object)
    columns: dict[str, Any] = {"id": pa.array(np.asarray(ids, dtype=str), pa.string())}
    for k, name in enumerate(manifest.classes):
        columns[probability_column(name)] = pa.array(probabilities[:, k], pa.float32())
    columns["label"] = pa.array(classes[best] if len(ids) else [], pa.string())
    columns["probability"] = pa.array(
        probabilities[np.arange(len(ids)), best] if len(ids) else [], pa.float32()
    )
    columns["model_name"] = pa.array([manifest.name] * len(ids), pa.string())
    columns["model_version"] = pa.array([manifest.version] * len(ids), pa.string())
    table = pa.table(columns)
    meta = {
        "name": manifest.name,
        "version": manifest.version,
        "classes": list(manifest.classes),
        "reference_class_shares": manifest.reference_class_shares,
    }
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})


def write(tables: list[pa.Table], path: Path) -> int:
    """Write one or more tables (chunks of one file) as one Parquet file; returns rows."""
    if not tables:
        raise ValueError("nothing to write")
    table = pa.concat_tables(tables)
    table = table.replace_schema_metadata(tables[0].schema.metadata)
    pq.write_table(table, path, compression="zstd")
    return table.num_rows


def read(path: Path) -> tuple[Any, dict[str, Any]]:
    """(pandas DataFrame, model metadata) of a predictions file."""
    try:
        table = pq.read_table(path)
        meta = json.loads((table.schema.metadata or {})[METADATA_KEY])
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

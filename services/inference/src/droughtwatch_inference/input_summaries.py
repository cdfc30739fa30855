"""Per-image input summaries: the mean of each channel over an image's 65 x 65 pixels, for the
model's channels and the spectral indices (NDVI, NDMI, EVI). `droughtwatch model publish
--reference` stores them for the reference data beside the model (model.json's
``reference_features``), so that input drift can be measured against them with the same
function on new data.

The Parquet file: one row per image, columns ``id``, ``source`` (the raw file's name),
``label`` (the model's predicted class) and ``mean_<channel>`` (float32) per summarised
channel; its key-value metadata ``droughtwatch.reference_features`` names the model, the
channels and the statistic.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from droughtwatch_preprocess import FEATURE_PREFIX, INDICES, feature_column
from droughtwatch_preprocess import channel_means as _channel_means

METADATA_KEY = b"droughtwatch.reference_features"
STATISTIC = "mean over the image's finite pixels"


def summary_channels(model_channels: Sequence[str]) -> tuple[str, ...]:
    """The model's channels, then the indices it does not take."""
    return (*model_channels, *(c for c in INDICES if c not in model_channels))


column = feature_column  # mean_<channel>, as Inference names its summaries


def channel_means(images: np.ndarray) -> np.ndarray:
    """float32 (n, C): each channel's mean over an image's finite pixels (EVI is infinite where
    its denominator is zero; those pixels are left out), NaN when no pixel is finite; the
    function Inference summarises its images with (droughtwatch_preprocess.channel_means)."""
    return _channel_means(images).astype(np.float32)


def summary_table(
    ids: np.ndarray,
    source: str,
    labels: Sequence[str],
    images: np.ndarray,
    channels: Sequence[str],
) -> pa.Table:
    """One row per image of ``images`` (n, C, H, W) with ``channels`` in order."""
    means = channel_means(images)
    columns: dict[str, pa.Array] = {
        "id": pa.array(np.asarray(ids, dtype=str), pa.string()),
        "source": pa.array([source] * len(ids), pa.string()),
        "label": pa.array(list(labels), pa.string()),
    }
    for k, channel in enumerate(channels):
        columns[column(channel)] = pa.array(means[:, k], pa.float32())
    return pa.table(columns)


def write(tables: Sequence[pa.Table], path: Path, *, model: str, version: str) -> int:
    """Write the summaries of every reference file as one Parquet file; returns its rows."""
    table = pa.concat_tables(tables)
    channels = [
        name.removeprefix(FEATURE_PREFIX)
        for name in table.column_names
        if name.startswith(FEATURE_PREFIX)
    ]
    meta = {"model": model, "version": version, "channels": channels, "statistic": STATISTIC}
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})
    pq.write_table(table, path, compression="zstd")
    return table.num_rows

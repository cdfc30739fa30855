"""The predictions file's columns, built from their buffers (no pandas), are exactly the columns
pa.array builds: the same values, nulls and types, so the files Inference writes do not change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from droughtwatch_inference import predictions
from droughtwatch_inference.model.manifest import ModelManifest

MANIFEST = ModelManifest(
    name="m",
    version="v1",
    channels=("B4", "NDVI"),
    classes=("0", "1", "2", "3+"),
    reference_class_shares={"0": 0.4, "1": 0.3, "2": 0.2, "3+": 0.1},
)


@pytest.mark.parametrize(
    "values",
    [[], ["a"], ["img-0", "img-1", ""], ["0", None, "3+", None], [None], ["é", "水", "naïve"]],
)
def test_string_columns_equal_pa_array(values: list[str | None]) -> None:
    built = predictions.string_array(values)
    assert built.equals(pa.array(values, pa.string()))
    assert built.null_count == values.count(None)
    built.validate(full=True)


@pytest.mark.parametrize(
    "values",
    [
        np.zeros(0, np.float32),
        np.array([0.5, np.nan, -np.inf, 1e30], np.float32),
        np.arange(10, dtype=np.float64)[::3],  # cast and made contiguous
    ],
)
def test_float_columns_equal_pa_array(values: np.ndarray) -> None:
    built = predictions.float32_array(values)
    expected = pa.array(np.asarray(values, np.float32), pa.float32())
    assert built.type == pa.float32() and built.null_count == 0  # NaN is a value, not a null
    np.testing.assert_array_equal(built.to_numpy(zero_copy_only=False), expected.to_numpy())


def _table_with_pa_array(ids, probabilities, true_labels, features) -> pa.Table:
    """The table as build_table made it with pa.array, before it built columns from buffers."""
    best = probabilities.argmax(axis=1)
    classes = np.asarray(MANIFEST.classes, dtype=object)
    columns = {"id": pa.array(np.asarray(ids, dtype=str), pa.string())}
    for k, name in enumerate(MANIFEST.classes):
        columns[f"p_{name}"] = pa.array(probabilities[:, k], pa.float32())
    columns["label"] = pa.array(classes[best], pa.string())
    columns["probability"] = pa.array(probabilities[np.arange(len(ids)), best], pa.float32())
    columns["model_name"] = pa.array([MANIFEST.name] * len(ids), pa.string())
    columns["model_version"] = pa.array([MANIFEST.version] * len(ids), pa.string())
    columns["true_label"] = pa.array(list(true_labels), pa.string())
    for column, values in features.items():
        columns[column] = pa.array(np.asarray(values, dtype=np.float32), pa.float32())
    return pa.table(columns)


def test_a_predictions_file_is_what_pa_array_would_write(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    n = 300
    ids = np.array([f"scene-{i:05d}" for i in range(n)])
    probabilities = rng.dirichlet(np.ones(4), n).astype(np.float32)
    true_labels = [None if i % 7 == 0 else MANIFEST.classes[i % 4] for i in range(n)]
    features = {"mean_B4": rng.random(n), "mean_EVI": np.where(rng.random(n) < 0.1, np.nan, 1.0)}

    table = predictions.build_table(
        ids, probabilities, MANIFEST, true_labels=true_labels, features=features
    )

    expected = _table_with_pa_array(ids, probabilities, true_labels, features)
    assert table.schema.remove_metadata() == expected.schema
    # (Table.equals takes NaN for unequal to itself: the files are compared byte for byte)
    predictions.write([table], tmp_path / "new.parquet")
    pq.write_table(
        expected.replace_schema_metadata(table.schema.metadata),
        tmp_path / "old.parquet",
        compression="zstd",
    )
    assert (tmp_path / "new.parquet").read_bytes() == (tmp_path / "old.parquet").read_bytes()

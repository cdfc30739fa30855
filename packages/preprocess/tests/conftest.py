"""Shared fixtures: the real droughtwatch shard and synthetic raw files built with the writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from droughtwatch_preprocess import encode_example, iter_records, process_file, write_tfrecord

REPO_ROOT = Path(__file__).resolve().parents[3]
SHARD = REPO_ROOT / "../shared/data/droughtwatch/part-r-00012"


@pytest.fixture(scope="session")
def shard_path() -> Path:
    """The real shard (81 records), which CI provides beside the repository."""
    if not SHARD.is_file():
        pytest.skip(
            f"real droughtwatch shard not found at {SHARD.resolve()} (a fresh clone lacks it; "
            "CI provides ../shared/data/droughtwatch/part-r-00012 beside the repository)"
        )
    return SHARD


@pytest.fixture(scope="session")
def shard_bytes(shard_path: Path) -> bytes:
    return shard_path.read_bytes()


@pytest.fixture(scope="session")
def shard_payloads(shard_path: Path) -> list[bytes]:
    return list(iter_records(shard_path))


@pytest.fixture(scope="session")
def processed_shard(shard_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """The shard processed once with the default chunk size: (ProcessResult, path)."""
    dest = tmp_path_factory.mktemp("processed") / "part-r-00012.npz"
    return process_file(shard_path, dest), dest


class Synthetic(NamedTuple):
    bands: np.ndarray  # uint8 (n, 11, 65, 65)
    labels: list[int | None]
    filenames: list[str]
    payloads: list[bytes]


def make_synthetic(n: int, seed: int = 0) -> Synthetic:
    """``n`` random records (never blank) with labels (some missing) and filenames."""
    rng = np.random.default_rng(seed)
    bands = rng.integers(0, 256, size=(n, 11, 65, 65), dtype=np.uint8)
    bands[:, :, 0, 0] = 200  # guarantees a value > 1, so no record is blank
    labels: list[int | None] = [
        None if i % 5 == 4 else int(v) for i, v in enumerate(rng.integers(0, 4, n))
    ]
    filenames = [f"LC08_{seed}_{i:04d}.tif" for i in range(n)]
    payloads = [encode_example(bands[i], labels[i], filenames[i]) for i in range(n)]
    return Synthetic(bands, labels, filenames, payloads)


@pytest.fixture
def write_raw(tmp_path: Path) -> Callable[[list[bytes], str], Path]:
    """Write payloads as a TFRecord file under tmp_path and return its path."""

    def write(payloads: list[bytes], name: str = "raw.tfrecord") -> Path:
        path = tmp_path / name
        write_tfrecord(path, payloads)
        return path

    return write

"""Where local runs keep what outlives a process: the embedded database's files and the local
buckets (the folder store every local run shares), under the user's data folder (e.g.
~/.local/share/droughtwatch, or DROUGHTWATCH_HOME)."""

from __future__ import annotations

import os
from pathlib import Path

STORE_ROOT_VARIABLE = "DROUGHTWATCH_STORE_ROOT"


def data_home() -> Path:
    override = os.environ.get("DROUGHTWATCH_HOME")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("droughtwatch", appauthor=False))


def postgres_root() -> Path:
    return data_home() / "postgres"


def store_root(home: Path | None = None) -> Path:
    """The local buckets' folder: DROUGHTWATCH_STORE_ROOT, else ``buckets`` in the data folder
    (where earlier versions mirrored their in-memory buckets, so their products stay in place)."""
    override = os.environ.get(STORE_ROOT_VARIABLE)
    if override:
        return Path(override).expanduser().absolute()
    return (home or data_home()) / "buckets"

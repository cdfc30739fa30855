"""Where local runs keep what outlives a process: the embedded database's files and the local
buckets (the folder store every local run shares), under the user's data folder (e.g.
~/.local/share/droughtwatch, or DROUGHTWATCH_HOME)."""

from __future__ import annotations

import os
from pathlib import Path

from droughtwatch_contract.settings import ENV_PREFIX, CommonSettings, env_name

# The data folder's override: the tools' own variable, with the settings' prefix.
HOME_VARIABLE = f"{ENV_PREFIX}HOME"
# The stages' setting of where the buckets' folders are, which local runs set.
STORE_ROOT_VARIABLE = env_name(CommonSettings, "store_root")


def data_home() -> Path:
    override = os.environ.get(HOME_VARIABLE)
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

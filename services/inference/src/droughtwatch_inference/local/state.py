"""Where local runs keep what moto would forget: the embedded database's files and a mirror of
the local buckets, under the user's data folder (e.g. ~/.local/share/droughtwatch)."""

from __future__ import annotations

import os
from pathlib import Path


def data_home() -> Path:
    override = os.environ.get("DROUGHTWATCH_HOME")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("droughtwatch", appauthor=False))


def postgres_root() -> Path:
    return data_home() / "postgres"


def buckets_root() -> Path:
    return data_home() / "buckets"


def mirror_in(s3: object, bucket: str, root: Path) -> int:
    """Upload the mirror of ``bucket`` under ``root`` into (moto) S3; returns objects loaded."""
    base = root / bucket
    count = 0
    if base.is_dir():
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            s3.upload_file(str(path), bucket, path.relative_to(base).as_posix())  # type: ignore[attr-defined]
            count += 1
    return count


def mirror_out(s3: object, bucket: str, root: Path, prefixes: tuple[str, ...] = ("",)) -> int:
    """Download every object of ``bucket`` under ``prefixes`` into ``root/bucket``."""
    count = 0
    paginator = s3.get_paginator("list_objects_v2")  # type: ignore[attr-defined]
    for prefix in prefixes:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                dest = root / bucket / item["Key"]
                dest.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, item["Key"], str(dest))  # type: ignore[attr-defined]
                count += 1
    return count

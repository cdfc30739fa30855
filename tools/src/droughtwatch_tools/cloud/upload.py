"""Raw files into a deployed stack's data bucket, under the keys the next run lists."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.outputs import StackOutput

from droughtwatch_tools.errors import UserError


def upload(
    files: Sequence[Path | str],
    date: dt.date,
    outputs: Mapping[str, Any],
    *,
    s3: Any = None,
    layout: KeyLayout | None = None,
    on_file: Callable[[Path, str], None] | None = None,
) -> list[str]:
    """Upload raw files to ``raw/<date>/<name>`` in the data bucket; returns the keys. Every
    file is checked before any is uploaded."""
    layout = layout or KeyLayout()
    bucket = outputs[StackOutput.DATA_BUCKET]
    paths = [Path(f) for f in files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"not a file: {', '.join(missing)}", "name existing files to upload")
    keys = [layout.raw_key(p.name, date) for p in paths]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise UserError(
            f"two files would land on the same key: {', '.join(duplicates)}",
            "upload files with the same name under different dates, or rename one",
        )
    if s3 is None:
        import boto3

        s3 = boto3.client("s3", region_name=outputs.get(StackOutput.REGION))
    for path, key in zip(paths, keys, strict=True):
        s3.upload_file(str(path), bucket, key)
        if on_file is not None:
            on_file(path, key)
    return keys

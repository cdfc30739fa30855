"""Which files of a user's folder a local run takes as raw data: the TFRecord files (plain, GZIP
or ZLIB, and empty ones, which Processing fails as "empty file" in the ledger); every other
file is named with why it is not taken."""

from __future__ import annotations

from pathlib import Path


def raw_files(folder: Path) -> tuple[list[Path], list[str]]:
    """The TFRecord files of a folder, in name order, and each other file (a README, notes, an
    image) named with why it is not taken, e.g. ``README.md (text file)``. Hidden files are
    passed over."""
    from droughtwatch_preprocess import EMPTY_FILE, why_not_tfrecord

    files, skipped = [], []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        reason = why_not_tfrecord(path)
        # an empty file is taken: Processing fails it as "empty file", in the ledger
        if reason in (None, EMPTY_FILE):
            files.append(path)
        else:
            skipped.append(f"{path.name} ({reason})")
    return files, skipped

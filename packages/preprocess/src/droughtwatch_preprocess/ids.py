"""Image ids: the one place they are made.

An id is the first 20 hex digits of the raw file's SHA-256 and the record's 0-based position
in that file (blank records count), e.g. ``3f2a...9c-000042``: the same file always gives
the same ids, different files different ones, and an id leads back to its raw record.
"""

from __future__ import annotations

import numpy as np

DIGEST_CHARS = 20


def image_id(source_digest: str, index: int) -> str:
    """The id of record ``index`` of the raw file whose sha256 hex digest is given."""
    return f"{source_digest[:DIGEST_CHARS]}-{index:06d}"


def image_ids(source_digest: str, indices: np.ndarray) -> np.ndarray:
    """``image_id`` for each record index, as a numpy unicode array."""
    return np.array([image_id(source_digest, int(i)) for i in indices], dtype=np.str_)

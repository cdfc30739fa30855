"""`droughtwatch labels upload`: a label file checked here with the pipeline's own parser
(droughtwatch_inference.label_file), then put under the labels prefix of the data bucket, where
the next run's first step reads it.

Ids whose raw file has no predictions file in the bucket yet are counted, not refused: labels
may come before the predictions of a file that is late, and are matched when they come. (The
ingestion counts them again, against the ledger, and records that count with the file.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from droughtwatch_contract.keys import DIGEST_CHARS as PRODUCT_DIGEST_CHARS
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_inference.label_file import LabelFile, parse_label_file
from droughtwatch_inference.logic.ports import StorePort

from droughtwatch_tools.errors import UserError


@dataclass(frozen=True)
class CheckedLabels:
    """A label file that passed, and how many of its ids name a raw file not predicted yet."""

    parsed: LabelFile
    unknown_ids: int

    @property
    def class_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.parsed.labels.values()).items()))


def read_label_file(path: Path) -> LabelFile:
    """The labels of ``path``, by the pipeline's rules (InvalidLabelFile names each problem)."""
    if not path.is_file():
        raise UserError(f"{path} is not a file", "name a CSV or Parquet file with id,label")
    return parse_label_file(path.read_bytes(), str(path))


def predicted_digests(store: StorePort, bucket: str, layout: KeyLayout) -> set[str]:
    """The raw files (the first hex digits of their digests, as product keys carry them) that
    have a predictions file in the bucket."""
    found = (layout.predicted_digest(obj.key) for obj in store.list(bucket, layout.predictions))
    return {digest for digest in found if digest is not None}


def count_unknown(ids: Iterable[str], predicted: set[str]) -> int:
    return sum(1 for i in ids if i[:PRODUCT_DIGEST_CHARS] not in predicted)


def check_and_upload(
    path: Path, store: StorePort, bucket: str, layout: KeyLayout | None = None
) -> tuple[CheckedLabels, str]:
    """Check ``path`` and upload it as ``labels/<its name>``; (what the check found, the key).
    A file that does not pass is not uploaded."""
    layout = layout or KeyLayout()
    parsed = read_label_file(path)
    predicted = predicted_digests(store, bucket, layout)
    checked = CheckedLabels(parsed, count_unknown(parsed.labels, predicted))
    key = layout.label_key(path.name)
    store.upload(path, bucket, key, "text/csv" if parsed.format == "CSV" else None)
    return checked, key

"""The S3 key layout of the data bucket: one place that knows where each product lives.

    raw/<YYYY-MM-DD>/<name>                          what users upload (any name)
    processed/<YYYY-MM-DD>/<name>/<digest12>.npz     preprocess output, one per raw version
    predictions/<YYYY-MM-DD>/<name>/<digest12>.parquet
    reports/<YYYY-MM-DD>/<name>/<digest12>.html      Evidently report of that predictions file

Products sit under their own prefixes, so listing raw data never sees them; the raw file's
content digest in the product name keeps every raw version's products apart.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})/")
DIGEST_CHARS = 12


@dataclass(frozen=True)
class KeyLayout:
    raw: str = "raw/"
    processed: str = "processed/"
    predictions: str = "predictions/"
    reports: str = "reports/"

    @classmethod
    def from_settings(cls, settings: object) -> KeyLayout:
        return cls(
            raw=settings.raw_prefix,  # type: ignore[attr-defined]
            processed=settings.processed_prefix,  # type: ignore[attr-defined]
            predictions=settings.predictions_prefix,  # type: ignore[attr-defined]
            reports=settings.reports_prefix,  # type: ignore[attr-defined]
        )

    def raw_key(self, name: str, date: dt.date) -> str:
        if not name or name.endswith("/"):
            raise ValueError(f"raw object name must be a file name, got {name!r}")
        return f"{self.raw}{date.isoformat()}/{name}"

    def relative(self, raw_key: str) -> str:
        if not raw_key.startswith(self.raw):
            raise ValueError(f"{raw_key!r} is not under the raw prefix {self.raw!r}")
        return raw_key[len(self.raw) :]

    def is_raw_object(self, key: str) -> bool:
        """An object that Processing registers: anything under the raw prefix but a folder
        marker. Names decide nothing (``_late.tfrecord`` is data); Processing tells a data file
        from a README or a job marker by its content and records why."""
        return key.startswith(self.raw) and not key.endswith("/")

    def processed_key(self, raw_key: str, digest: str) -> str:
        return f"{self.processed}{self.relative(raw_key)}/{digest[:DIGEST_CHARS]}.npz"

    def predictions_key(self, raw_key: str, digest: str) -> str:
        return f"{self.predictions}{self.relative(raw_key)}/{digest[:DIGEST_CHARS]}.parquet"

    def report_key(self, raw_key: str, digest: str) -> str:
        return f"{self.reports}{self.relative(raw_key)}/{digest[:DIGEST_CHARS]}.html"

    def batch_date(self, raw_key: str) -> dt.date | None:
        """The data's date from the raw/<YYYY-MM-DD>/ partition, or None when the key has none."""
        match = _DATE.match(self.relative(raw_key)) if raw_key.startswith(self.raw) else None
        if not match:
            return None
        try:
            return dt.date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            return None

"""The S3 key layout of the data bucket: one place that knows where each product lives.

    raw/<YYYY-MM-DD>/<name>                          what users upload (any name)
    processed/<YYYY-MM-DD>/<name>/<digest12>.npz     preprocess output, one per raw version
    predictions/<YYYY-MM-DD>/<name>/<digest12>.parquet
    reports/<YYYY-MM-DD>/<name>/<digest12>.html      Evidently report of that predictions file
    daily-reports/<YYYY-MM-DD>/<model>/<version>.html    Evidently report of the day (a model's)
    predictions/_reference/<sha12>.parquet           a model's reference input summaries, copied
                                                     by Inference for Observe
    labels/<name>                                    late ground truth: a CSV or Parquet of
                                                     id,label that users upload (any name)

Products sit under their own prefixes, so listing raw data never sees them; the raw file's
content digest in the product name keeps every raw version's products apart. Each kind of
product has a prefix of its own because the stack's lifecycle rules, which work by prefix, keep
them for different times: processed files and per-file reports expire, predictions and the
day's reports are kept.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, fields

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})/")
DIGEST_CHARS = 12
_PRODUCT = re.compile(rf"^([0-9a-f]{{{DIGEST_CHARS}}})\.parquet$")


@dataclass(frozen=True)
class KeyLayout:
    raw: str = "raw/"
    processed: str = "processed/"
    predictions: str = "predictions/"
    reports: str = "reports/"
    daily_reports: str = "daily-reports/"
    labels: str = "labels/"

    @classmethod
    def from_settings(cls, settings: object) -> KeyLayout:
        """The layout the settings give (each field from its ``<field>_prefix`` setting)."""
        return cls(**{name: getattr(settings, setting) for name, setting in PREFIX_SETTINGS})

    def prefix_settings(self) -> dict[str, str]:
        """This layout as the settings name it: ``{"raw_prefix": "raw/", ...}``."""
        return {setting: getattr(self, name) for name, setting in PREFIX_SETTINGS}

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
        return _is_object_under(self.raw, key)

    def label_key(self, name: str) -> str:
        """Where an uploaded label file lands: ``labels/<name>``."""
        if not name or name.endswith("/"):
            raise ValueError(f"label file name must be a file name, got {name!r}")
        return f"{self.labels}{name}"

    def is_label_object(self, key: str) -> bool:
        """A label file the pipeline ingests: anything under the labels prefix but a folder
        marker (its content, not its name, says whether it is CSV or Parquet)."""
        return _is_object_under(self.labels, key)

    def processed_key(self, raw_key: str, digest: str) -> str:
        return f"{self.processed}{self.relative(raw_key)}/{digest[:DIGEST_CHARS]}.npz"

    def predictions_key(self, raw_key: str, digest: str) -> str:
        return f"{self.predictions}{self.relative(raw_key)}/{digest[:DIGEST_CHARS]}.parquet"

    def predicted_digest(self, key: str) -> str | None:
        """The start of the raw file's digest (``DIGEST_CHARS`` hex digits) that a predictions
        file's key ends with, or None for another key: the reference summaries
        (``<predictions>_reference/<sha12>.parquet``) sit one level higher than any predictions
        file (``<predictions><date>/<name>/<digest12>.parquet``)."""
        if not key.startswith(self.predictions):
            return None
        parts = key[len(self.predictions) :].split("/")
        match = _PRODUCT.match(parts[-1])
        return match[1] if match and len(parts) >= 3 else None

    def report_key(self, raw_key: str, digest: str) -> str:
        return f"{self.reports}{self.relative(raw_key)}/{digest[:DIGEST_CHARS]}.html"

    def daily_report_key(self, date: dt.date, model_name: str, model_version: str) -> str:
        """The report of one day's files of one model version: under its own prefix, apart from
        the per-file reports, so that a lifecycle rule can expire those and keep these."""
        name, version = _segment(model_name), _segment(model_version)
        return f"{self.daily_reports}{date.isoformat()}/{name}/{version}.html"

    def reference_features_key(self, digest: str) -> str:
        """A model's reference input summaries in the data bucket, by content (sha256 hex):
        Observe reads them there, as it may read nothing of the model bucket."""
        return f"{self.predictions}_reference/{digest[:DIGEST_CHARS]}.parquet"

    def batch_date(self, raw_key: str) -> dt.date | None:
        """The data's date from the raw/<YYYY-MM-DD>/ partition, or None when the key has none."""
        match = _DATE.match(self.relative(raw_key)) if raw_key.startswith(self.raw) else None
        if not match:
            return None
        try:
            return dt.date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            return None


def _segment(value: str) -> str:
    """A model name or version as one key segment (no '/', never empty)."""
    return value.replace("/", "_") or "_"


def _is_object_under(prefix: str, key: str) -> bool:
    """An object under ``prefix``, not a folder marker."""
    return key.startswith(prefix) and not key.endswith("/")


# Each layout field and the setting that configures it (the field's name + "_prefix").
PREFIX_SETTINGS: tuple[tuple[str, str], ...] = tuple(
    (f.name, f"{f.name}_prefix") for f in fields(KeyLayout)
)

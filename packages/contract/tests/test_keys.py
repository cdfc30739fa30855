"""The S3 key layout."""

from __future__ import annotations

import datetime as dt

from droughtwatch_contract.keys import KeyLayout

LAYOUT = KeyLayout()


def test_products_live_under_their_own_prefixes_per_raw_version() -> None:
    raw = LAYOUT.raw_key("part-r-00012", dt.date(2026, 11, 27))
    assert raw == "raw/2026-11-27/part-r-00012"
    digest = "ab" * 32
    assert LAYOUT.processed_key(raw, digest) == "processed/2026-11-27/part-r-00012/abababababab.npz"
    assert LAYOUT.predictions_key(raw, digest).startswith("predictions/2026-11-27/part-r-00012/")
    assert LAYOUT.report_key(raw, digest).endswith("/abababababab.html")


def test_batch_date_from_partition_or_none() -> None:
    assert LAYOUT.batch_date("raw/2026-02-03/x") == dt.date(2026, 2, 3)
    assert LAYOUT.batch_date("raw/2026-02-30/x") is None
    assert LAYOUT.batch_date("raw/somewhere/x") is None


def test_every_object_under_raw_but_a_folder_marker_is_registered() -> None:
    assert LAYOUT.is_raw_object("raw/2026-11-27/it's a file")
    assert LAYOUT.is_raw_object("raw/2026-11-27/_late.tfrecord")
    assert LAYOUT.is_raw_object("raw/2026-11-27/.hidden")
    assert not LAYOUT.is_raw_object("raw/2026-11-27/")
    assert not LAYOUT.is_raw_object("processed/2026-11-27/x/abc.npz")


def test_daily_reports_and_reference_summaries_have_keys_of_their_own() -> None:
    day = dt.date(2026, 11, 27)
    assert (
        LAYOUT.daily_report_key(day, "baseline-cnn", "s7/abc")
        == "daily-reports/2026-11-27/baseline-cnn/s7_abc.html"
    )
    # the per-file reports' prefix (which a lifecycle rule expires) holds no day's report, and
    # no raw file's name can put a per-file report under the day's reports
    raw = LAYOUT.raw_key("daily-reports", day)
    assert not LAYOUT.daily_report_key(day, "m", "v").startswith(LAYOUT.reports)
    assert not LAYOUT.report_key(raw, "ab" * 32).startswith(LAYOUT.daily_reports)
    assert LAYOUT.reference_features_key("cd" * 32) == "predictions/_reference/cdcdcdcdcdcd.parquet"
    # Observe reads under the predictions prefix: the reference copy is inside it
    assert LAYOUT.reference_features_key("cd" * 32).startswith(LAYOUT.predictions)


def test_label_files_land_under_their_own_prefix_whatever_their_name() -> None:
    assert LAYOUT.label_key("survey 2026-12.csv") == "labels/survey 2026-12.csv"
    assert LAYOUT.is_label_object("labels/survey.parquet")
    assert LAYOUT.is_label_object("labels/2026/december")
    assert not LAYOUT.is_label_object("labels/2026/")
    assert not LAYOUT.is_label_object("raw/2026-11-27/labels.csv")
    # raw data is never a label file, nor the other way round
    assert not LAYOUT.is_raw_object(LAYOUT.label_key("x.csv"))


def test_a_predictions_key_names_its_raw_files_digest_and_the_reference_none() -> None:
    digest = "0123456789ab" + "cd" * 26
    for name in ("part-r-00012", "nested/folder/scene.tfrecord", "_reference"):
        key = LAYOUT.predictions_key(LAYOUT.raw_key(name, dt.date(2026, 11, 27)), digest)
        assert LAYOUT.predicted_digest(key) == "0123456789ab", key
    assert LAYOUT.predicted_digest(LAYOUT.reference_features_key(digest)) is None
    assert LAYOUT.predicted_digest("reports/2026-11-27/x/0123456789ab.html") is None
    assert LAYOUT.predicted_digest("predictions/2026-11-27/x/notes.parquet") is None

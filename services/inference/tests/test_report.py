"""A report opens with what it is about (the date, the file or the day, the model, the image
count, each signal's score against its threshold and its verdict), read from its metrics row
and escaped; the class distribution is drawn once, as shares. Read from the HTML alone (the
rendered page was checked by hand in a browser; CI has none)."""

from __future__ import annotations

import datetime as dt
import json
import re
from html.parser import HTMLParser
from typing import Any

import pandas as pd
import pytest
from droughtwatch_inference.logic.observe import observe_predictions
from droughtwatch_inference.logic.report import Section, render
from droughtwatch_inference.logic.report_header import (
    DRIFT,
    NOT_COMPUTED,
    OK,
    TOO_FEW,
    day_header,
    file_header,
    header_html,
)
from droughtwatch_inference.metrics_row import DayMetrics, FileMetrics, Signals

RAW_KEY = 'raw/2026-12-04/<img src=x onerror=alert(1)> & "north".tfrecord'
CLASSES = ["0", "1", "2", "3+"]
META = {
    "name": "baseline",
    "version": "v<1>",
    "classes": CLASSES,
    "reference_class_shares": {"0": 0.6, "1": 0.15, "2": 0.15, "3+": 0.1},
}


def _signals(**values: Any) -> Signals:
    signals: dict[str, Any] = {
        "model_name": "baseline",
        "model_version": "v<1>",
        "images": 295,
        "class_counts": {"0": 295},
        "class_shares": {"0": 1.0},
        "most_common_class": "0",
        "most_common_share": 1.0,
        "missing_share": 0.0,
        "drift_score": 0.2498728331640835,
        "drift_method": "psi",
        "drift_threshold": 0.25,
        "drift_detected": False,
        "labelled_images": 295,
        "accuracy": 0.61,
        "macro_f1": 0.2,
        "per_class": {},
        "confusion": {},
        "reference_accuracy": 0.75,
        "accuracy_drop": 0.14,
        "accuracy_margin": 0.1,
        "accuracy_alert": True,
        "feature_drift": {"mean_NDVI": 1.4, "mean_NDMI": 1.3, "mean_B4": 0.1},
        "drifted_features": 2,
        "feature_drift_share": 2 / 3,
        "feature_drift_method": "wasserstein",
        "feature_drift_threshold": 0.3,
        "input_drift_detected": True,
        "records": 300,
        "dropped_blank": 5,
        "blank_share": 5 / 300,
        "missing_label_share": 0.0,
        "zero_share": None,
        "saturated_share": None,
        "nonfinite_share": None,
        "notes": ["the <model> has <no> reference summaries"],
    }
    signals.update(values)
    return signals  # type: ignore[return-value]


def _file_row(**values: Any) -> FileMetrics:
    return {  # type: ignore[return-value]
        **_signals(**values),
        "ledger_id": 1,
        "predictions_key": "predictions/p.parquet",
        "report_key": "reports/r.html",
        "batch_date": dt.date(2026, 12, 4),
        "run_id": "run-1",
    }


class Page(HTMLParser):
    """The header's text: its title, facts, table rows and notes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: dict[str, list[str]] = {"h1": [], "p": [], "tr": [], "li": [], "title": []}
        self.cells: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)
        if tag == "tr":
            self.cells = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self.text["tr"].append(" | ".join(self.cells))
        self.tags.pop()

    def handle_data(self, data: str) -> None:
        if not self.tags:
            return
        tag = self.tags[-1]
        if tag in ("td", "th"):
            self.cells.append(data)
        elif tag in self.text:
            self.text[tag].append(data)


def _read(markup: str) -> Page:
    page = Page()
    page.feed(markup)
    return page


def test_a_file_header_says_what_the_report_is_about_from_its_row() -> None:
    header = file_header(_file_row(), RAW_KEY, share_threshold=0.5)
    markup = header_html(header)
    # every value escaped: the raw key is a user's file name
    assert "<img" not in markup and "v<1>" not in markup and "<model>" not in markup
    page = _read(markup)
    assert page.text["h1"] == ['<img src=x onerror=alert(1)> & "north".tfrecord']
    (_, facts) = page.text["p"]
    assert facts.split(" · ") == [
        f"file {RAW_KEY}",
        "2026-12-04",
        "model baseline v<1>",
        "295 images",
        "1.67% of 300 raw records blank (dropped)",
    ]
    assert page.text["tr"][1:] == [
        # 0.24987 reads below 0.25, as its flag says
        "prediction drift | psi 0.2499 | threshold >= 0.25 | ok",
        "model quality | accuracy 0.610, macro F1 0.200; drop 0.140 from 0.750 | "
        "accuracy drop > margin 0.1 | alert",
        "input drift | 2 of 3 summaries drifted: share 0.667 | share >= 0.5; a summary "
        "drifts at wasserstein >= 0.3 | drift",
    ]
    assert page.text["li"] == ["the <model> has <no> reference summaries"]


def test_a_small_days_header_says_why_no_alert_fired() -> None:
    row: DayMetrics = {  # type: ignore[typeddict-item]
        **_signals(
            images=120,
            drift_score=0.4,
            drift_detected=False,
            input_drift_detected=False,
            accuracy_alert=False,
            labelled_images=120,
            notes=["not enough data: 120 images, fewer than 200: no alert for this day"],
        ),
        "batch_date": dt.date(2026, 12, 4),
        "run_id": "run-1",
        "files": 3,
        "last_metrics_id": 9,
        "report_key": "reports/d.html",
        "min_images": 200,
        "enough_data": False,
    }
    page = _read(header_html(day_header(row, share_threshold=0.5)))
    assert page.text["h1"] == ["day 2026-12-04, 3 files"]
    verdicts = [line.rsplit(" | ", 1)[1] for line in page.text["tr"][1:]]
    assert verdicts == [TOO_FEW, "no alert: too few labelled images", TOO_FEW]
    assert page.text["li"][0].startswith("not enough data: 120 images")


def test_a_signal_without_a_score_says_it_was_not_computed() -> None:
    row = _file_row(
        drift_score=None,
        accuracy=None,
        macro_f1=None,
        accuracy_drop=None,
        accuracy_alert=False,
        feature_drift=None,
        drifted_features=None,
        feature_drift_share=None,
        input_drift_detected=False,
        records=None,
        blank_share=None,
    )
    page = _read(header_html(file_header(row, "raw/2026-12-04/a.tfrecord", 0.5)))
    assert [line.rsplit(" | ", 1)[1] for line in page.text["tr"][1:]] == [NOT_COMPUTED] * 3
    assert page.text["h1"] == ["a.tfrecord"]
    assert not any("raw records" in fact for fact in page.text["p"][1].split(" · "))


def _dashboard(page: str) -> dict[str, Any]:
    """The widgets Evidently's page embeds as JSON."""
    (data,) = re.findall(r"var metric_\w+ = (\{.*?\});\n", page)
    return json.loads(data)


def _charts(widget: dict[str, Any]):
    if widget.get("type") == "big_graph":
        yield widget
    for child in widget.get("widgets") or []:
        yield from _charts(child)
    for tab in widget.get("tabs") or []:
        yield from _charts(tab["widget"])


@pytest.mark.parametrize("verdict", [DRIFT, OK])
def test_the_page_opens_with_the_header_and_draws_the_classes_once_as_shares(
    verdict: str,
) -> None:
    shares = (
        {"0": 250, "1": 30, "2": 15} if verdict == DRIFT else {"0": 60, "1": 15, "2": 15, "3+": 10}
    )
    labels = [name for name, n in shares.items() for _ in range(n)]
    df = pd.DataFrame({"label": pd.Series(labels, dtype=object)})
    values, snapshot = observe_predictions(df, META, method="psi", threshold=0.25)
    header = file_header(_file_row(**values), RAW_KEY, 0.5)
    page = render(header, [Section("Prediction drift", snapshot)])

    body = page.index("<body>")
    assert page[body:].split("\n", 1)[1].startswith("<header class='droughtwatch-header'>")
    assert (
        "<title>droughtwatch: &lt;img src=x onerror=alert(1)&gt; &amp; &quot;north" in page[:body]
    )
    assert _read(header_html(header)).text["tr"][1].endswith(f"| {verdict}")  # prediction drift

    charts = [c for w in _dashboard(page)["widgets"] for c in _charts(w)]
    classes = [c for c in charts if any(list(t["x"]) == CLASSES for t in c["params"]["data"])]
    assert len(classes) == 1  # ValueDrift's copy of UniqueValueCount's chart is left out
    (chart,) = classes
    (menu,) = chart["params"]["layout"]["updatemenus"]
    shares = menu["buttons"][menu["active"]]
    assert shares["label"] == "perc"
    shown = [t["visible"] for t in chart["params"]["data"]]
    assert shown == shares["args"][0]["visible"] and shown.count(True) == 2
    current = next(t for t in chart["params"]["data"] if t["visible"] and t["name"] == "current")
    assert sum(current["y"]) == pytest.approx(100)  # percent of the file's images

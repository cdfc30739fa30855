"""What a report says first: which images it is about (the date, the raw file or the day's
files, the model, the image count) and each signal's score against its threshold with its
verdict. Everything is read from the metrics row the report belongs to, so the page says what
the row, and Grafana reading the row, says; the notes say why a signal is missing.

The header is plain HTML above Evidently's widgets (it reads without JavaScript), and every
value in it is escaped: a raw key is a user's file name.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from droughtwatch_contract.drift import is_drift, score_text

from droughtwatch_inference.logic.model_quality import quality_dropped
from droughtwatch_inference.metrics_row import DayMetrics, FileMetrics, Signals

DRIFT, ALERT, OK, NOT_COMPUTED = "drift", "alert", "ok", "not computed"
# Why a score at its threshold raised nothing: a day's alerts are off below its minimum of images
TOO_FEW, TOO_FEW_LABELLED = "no alert: too few images", "no alert: too few labelled images"


@dataclass(frozen=True)
class Verdict:
    """One signal's line: its score, what it is compared with, and what that means."""

    signal: str
    score: str
    against: str
    verdict: str

    @property
    def raised(self) -> bool:
        return self.verdict in (DRIFT, ALERT)


@dataclass(frozen=True)
class Header:
    title: str  # the raw file's name, or "day 2026-12-04, 3 files"
    facts: list[str]
    verdicts: list[Verdict]
    notes: list[str] = field(default_factory=list)


def file_header(row: FileMetrics, raw_key: str, share_threshold: float) -> Header:
    """The header of one file's report. ``share_threshold`` is the share of drifted summaries
    at which the input drifts (ObserveConfig.feature_drift_share: not a column of the row)."""
    return Header(
        title=PurePosixPath(raw_key).name or raw_key,
        facts=[f"file {raw_key}", *_facts(row, row["batch_date"].isoformat())],
        verdicts=_verdicts(row, share_threshold),
        notes=list(row["notes"]),
    )


def day_header(row: DayMetrics, share_threshold: float) -> Header:
    """The header of a day's report, with the day's verdicts (off below its minimum of
    images)."""
    files = "1 file" if row["files"] == 1 else f"{row['files']} files"
    return Header(
        title=f"day {row['batch_date'].isoformat()}, {files}",
        facts=_facts(row, f"{row['batch_date'].isoformat()} (the day's files pooled)"),
        verdicts=_verdicts(row, share_threshold),
        notes=list(row["notes"]),
    )


def _facts(row: Signals, date: str) -> list[str]:
    facts = [date, f"model {row['model_name']} {row['model_version']}", f"{row['images']} images"]
    if row["records"] is not None and row["blank_share"] is not None:
        facts.append(f"{row['blank_share']:.2%} of {row['records']} raw records blank (dropped)")
    return facts


def _verdicts(row: Signals, share_threshold: float) -> list[Verdict]:
    return [_prediction_drift(row), _model_quality(row), _input_drift(row, share_threshold)]


def _prediction_drift(row: Signals) -> Verdict:
    score, threshold = row["drift_score"], row["drift_threshold"]
    against = f"threshold >= {threshold}"
    if score is None:
        return Verdict("prediction drift", "-", against, NOT_COMPUTED)
    verdict = _flag(row["drift_detected"], is_drift(score, threshold), DRIFT, TOO_FEW)
    text = f"{row['drift_method']} {score_text(score, threshold)}"
    return Verdict("prediction drift", text, against, verdict)


def _model_quality(row: Signals) -> Verdict:
    margin, accuracy, drop = row["accuracy_margin"], row["accuracy"], row["accuracy_drop"]
    against = f"accuracy drop > margin {margin}"
    if accuracy is None:
        return Verdict("model quality", "-", against, NOT_COMPUTED)
    text = f"accuracy {accuracy:.3f}, macro F1 {row['macro_f1']:.3f}"
    if drop is None or row["reference_accuracy"] is None:
        return Verdict("model quality", text, "no reference accuracy", NOT_COMPUTED)
    text += (
        f"; drop {score_text(drop, margin, rule=quality_dropped)} "
        f"from {row['reference_accuracy']:.3f}"
    )
    verdict = _flag(row["accuracy_alert"], quality_dropped(drop, margin), ALERT, TOO_FEW_LABELLED)
    return Verdict("model quality", text, against, verdict)


def _input_drift(row: Signals, share_threshold: float) -> Verdict:
    scores, share = row["feature_drift"], row["feature_drift_share"]
    against = (
        f"share >= {share_threshold}; a summary drifts at {row['feature_drift_method']} >= "
        f"{row['feature_drift_threshold']}"
    )
    if not scores or share is None:
        return Verdict("input drift", "-", against, NOT_COMPUTED)
    text = (
        f"{row['drifted_features']} of {len(scores)} summaries drifted: share "
        f"{score_text(share, share_threshold)}"
    )
    verdict = _flag(row["input_drift_detected"], is_drift(share, share_threshold), DRIFT, TOO_FEW)
    return Verdict("input drift", text, against, verdict)


def _flag(stored: bool, reached: bool, raised: str, why_off: str) -> str:
    """The verdict of a row's flag: ``raised``, ok, or ``why_off`` when the score reached its
    threshold but the flag is off (a day below its minimum of images; its notes say so)."""
    if stored:
        return raised
    return why_off if reached else OK


_STYLE = """
.droughtwatch-header { font-family: Roboto, Helvetica, Arial, sans-serif; margin: 16px 24px;
  padding: 16px 20px; border: 1px solid #ddd; border-radius: 4px; background: #fff; }
.droughtwatch-header h1 { font-size: 22px; margin: 0 0 6px; overflow-wrap: anywhere; }
.droughtwatch-header .kind { color: #666; margin: 0 0 4px; font-size: 13px; }
.droughtwatch-header .facts { margin: 0 0 12px; color: #333; overflow-wrap: anywhere; }
.droughtwatch-header table { border-collapse: collapse; font-size: 14px; }
.droughtwatch-header th, .droughtwatch-header td { text-align: left; padding: 4px 12px 4px 0;
  border-bottom: 1px solid #eee; vertical-align: top; }
.droughtwatch-header .raised { color: #c00; font-weight: bold; }
.droughtwatch-header ul { margin: 10px 0 0; padding-left: 18px; color: #555; font-size: 13px; }
"""


def header_html(header: Header) -> str:
    """The header as an HTML element, every value escaped."""
    e = html.escape
    lines = "".join(
        f"<tr><th scope='row'>{e(v.signal)}</th><td>{e(v.score)}</td><td>{e(v.against)}</td>"
        f"<td class='{'raised' if v.raised else 'verdict'}'>{e(v.verdict)}</td></tr>"
        for v in header.verdicts
    )
    notes = "".join(f"<li>{e(note)}</li>" for note in header.notes)
    return (
        f"<header class='droughtwatch-header'><style>{_STYLE}</style>"
        "<p class='kind'>droughtwatch: what Observe measured</p>"
        f"<h1>{e(header.title)}</h1>"
        f"<p class='facts'>{' · '.join(e(fact) for fact in header.facts)}</p>"
        "<table><thead><tr><th>signal</th><th>score</th><th>against</th><th>verdict</th>"
        f"</tr></thead><tbody>{lines}</tbody></table>"
        + (f"<ul class='notes'>{notes}</ul>" if notes else "")
        + "</header>"
    )

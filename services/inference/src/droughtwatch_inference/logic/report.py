"""One HTML report of several Evidently runs: prediction drift, model quality, input drift and
data quality, each a titled section.

Each signal needs its own Evidently run, because a run has one reference dataset and every
metric in it is computed on the reference too: prediction drift compares with the model's
reference class shares, input drift with its reference summaries, and model quality has no
reference rows at all. Evidently 0.7 renders a run as one group of widgets
(``Snapshot.get_html_str``); this module renders the runs' widget lists as groups of one page
with Evidently's own renderer. The widget list is the snapshot's ``_widgets``, a private
attribute: Evidently is pinned (services/inference/pyproject.toml) and a test reads the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from droughtwatch_inference.logic.evidently_api import load_evidently


@dataclass
class Section:
    """A titled part of the report: an Evidently snapshot's widgets, lines of text, and rows
    of a two-column table (any of them may be empty)."""

    title: str
    snapshot: Any = None
    text: list[str] = field(default_factory=list)
    rows: list[tuple[str, str]] = field(default_factory=list)


def render(sections: Sequence[Section]) -> str:
    """The self-contained HTML page of the sections, in order."""
    ev = load_evidently()
    groups = []
    for section in sections:
        widgets = []
        if section.text:
            widgets.append(ev.text_widget(title="", text="\n\n".join(section.text)))
        if section.rows:
            widgets.append(
                ev.table_data(
                    title="",
                    column_names=["", "value"],
                    data=[list(row) for row in section.rows],
                )
            )
        if section.snapshot is not None:
            widgets.extend(section.snapshot._widgets)
        groups.append(ev.group_widget(title=section.title, widgets=widgets))
    return ev.render_widgets(groups)

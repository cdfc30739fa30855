"""What the local runs print: the demo's table of days, a local run's table of files, and an
execution's history as the AWS console shows it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from droughtwatch_contract.drift import score_text
from droughtwatch_contract.settings import ObserveSettings
from droughtwatch_preprocess.summaries import feature_column
from rich.markup import escape
from rich.table import Table

from droughtwatch_tools import printer
from droughtwatch_tools.local.outcome import DayLine, FileLine, failure_words

if TYPE_CHECKING:
    from droughtwatch_inference.records import LabelFileOutcome

    from droughtwatch_tools.execution import Execution
    from droughtwatch_tools.local.demo import DayResult, DemoResult
    from droughtwatch_tools.local.run import LocalRunOutcome

DEMO_INDICES = ("NDVI", "NDMI")
# Past this many files a local run prints counts by status instead of a row per file.
TABLE_FILES = 50
# The children whose events `print_history` prints: all of a run of this many, else the failed
# ones up to this many (the rest: --item).
CHILDREN_SHOWN = 3
# The alert threshold a table without days names: Observe's default.
DRIFT_THRESHOLD: float = ObserveSettings.model_fields["drift_threshold"].default


# The alert cell of a score at or above its threshold (the flag Observe set with is_drift).
DRIFT = "[bold red]DRIFT[/]"


def compact_table(title: str, caption: str, *, pad_edge: bool) -> Table:
    """The run tables' layout: no rules, short headers, one space between columns, and a
    caption that explains the headers, so that the table reads in a 80-90 column terminal."""
    return Table(
        title=title,
        caption=caption,
        box=None,
        padding=(0, 1),
        collapse_padding=True,
        pad_edge=pad_edge,
        header_style="bold underline",
    )


def add_prediction_columns(table: Table, classes: list[str]) -> None:
    """The columns both run tables show of a batch's predictions, in this order: images,
    blank images dropped, each class's share, the prediction drift score and its alert."""
    table.add_column("images", justify="right")
    table.add_column("blank", justify="right")
    for name in classes:
        table.add_column(name, justify="right")
    table.add_column("PSI", justify="right")
    table.add_column("alert")


def history_table(execution: Execution, title: str | None = None) -> Table:
    """The execution's events; the detail (error, cause) of the failures only."""
    table = Table(
        title=title or f"execution {execution.name}: {execution.status}", show_lines=False
    )
    table.add_column("time", style="dim")
    table.add_column("event")
    table.add_column("state")
    table.add_column("detail", overflow="fold", max_width=80)
    for event in execution.events:
        table.add_row(
            event.timestamp.strftime("%H:%M:%S.%f")[:-3],
            event.type,
            event.state or "",
            event.detail if event.failed else "",
        )
    return table


def children_table(execution: Execution) -> Table | None:
    """One row per child execution of each map run: its item, status, time, the state it
    ended in and its error; None without map runs."""
    if not execution.map_runs:
        return None
    runs = ", ".join(
        f"{run.status.lower()}: {run.done} of {run.total} items done, {run.failed} failed"
        for run in execution.map_runs
    )
    table = Table(title=f"map runs of {execution.name} ({runs})", show_lines=False)
    table.add_column("round", justify="right")
    table.add_column("child")
    table.add_column("status")
    table.add_column("seconds", justify="right")
    table.add_column("ended in")
    table.add_column("error", overflow="fold", max_width=60)
    for round_number, run in enumerate(execution.map_runs, start=1):
        for child in run.children:
            states = child.states_entered()
            status = child.status if child.succeeded else f"[red]{child.status}[/]"
            table.add_row(
                str(round_number),
                child.name,
                status,
                f"{child.seconds:.1f}",
                states[-1] if states else "",
                "" if child.succeeded else child.error_line,
            )
    return table


def print_history(execution: Execution, item: int | None = None) -> None:
    """An execution's events, its map runs' children, and the events of a few children: every
    child of a small run, else the failed ones, or the child of ``item``."""
    console = printer.console
    console.print(history_table(execution))
    children = children_table(execution)
    if children is not None:
        console.print(children)
    if item is not None:
        shown = [c for c in execution.children if c.item == item]
    elif len(execution.children) <= CHILDREN_SHOWN:
        shown = execution.children
    else:
        shown = execution.failed_children[:CHILDREN_SHOWN]
    for child in shown:
        console.print(
            history_table(child, f"child {child.name} of {execution.name}: {child.status}")
        )


# -- the demo -----------------------------------------------------------------------------------


def demo_table(result: DemoResult) -> Table:
    """One row a day: its data, its predictions' class shares, its drift and accuracy."""
    classes = list(result.model.get("classes", []))
    threshold = result.days[0].drift_threshold if result.days else DRIFT_THRESHOLD
    late = " (+: from labels that arrived later)" if any(d.late_labels for d in result.days) else ""
    table = compact_table(
        "droughtwatch demo: one run per day",
        "class shares of the predictions; PSI: prediction drift against the model's "
        f"reference (alert at >= {threshold}); NDVI, NDMI: their input drift scores; "
        f"input: the day's input drift; acc.: accuracy on the labelled images{late}",
        pad_edge=False,
    )
    table.add_column("date", no_wrap=True, min_width=10)
    table.add_column("drought", justify="right")
    add_prediction_columns(table, classes)
    for index in DEMO_INDICES:
        table.add_column(index, justify="right")
    table.add_column("input")
    table.add_column("acc.", justify="right")
    for day in result.days:
        shares = [f"{day.class_shares.get(c, 0.0):.0%}" for c in classes]
        score = score_text(day.drift_score, day.drift_threshold)
        status = day.execution.status
        table.add_row(
            day.date.isoformat() if day.execution.succeeded else f"[red]{day.date} {status}[/]",
            f"{day.drought:.2f}",
            str(day.images),
            str(day.dropped_blank),
            *shares,
            score,
            # the day's flag: Observe set it with the contract's is_drift, off without enough data
            DRIFT if day.drift_detected else _no_alert(day),
            *(_score(day.feature_drift.get(feature_column(index))) for index in DEMO_INDICES),
            DRIFT if day.input_drift_detected else _no_alert(day),
            _accuracy(day),
        )
    return table


def print_demo(result: DemoResult) -> None:
    """The table of days, each failed day's history, the model, the counts of alerts, and
    where the products are."""
    console = printer.console
    console.print(demo_table(result))
    if result.skipped:
        console.print(f"not taken (not TFRecord files): {', '.join(result.skipped)}")
    for execution in result.executions:
        if not execution.succeeded:
            console.print(history_table(execution))
    late = [d for d in result.days if d.labels_arrived is not None]
    if late:
        console.print(
            "late labels: the drought days' images came without labels; each day's labels "
            "arrived as a label file before a later run, which recomputed the day:"
        )
        for day in late:
            quality = "no labelled image" if day.accuracy is None else f"accuracy {_accuracy(day)}"
            alert = ", [bold red]accuracy alert[/]" if day.accuracy_alert else ""
            console.print(
                f"  {day.date}: {day.label_file} read by the run of "
                f"{day.labels_arrived}: {day.late_labels} late labels, {quality}{alert}",
                highlight=False,
            )
    training = result.model.get("training", {})
    console.print(
        f"model {result.model.get('name')} {result.model.get('version')}"
        f" (channels {', '.join(result.model.get('channels', []))};"
        f" held-out accuracy {training.get('accuracy', float('nan')):.2f})"
    )
    alerts = sum(d.drift_detected for d in result.days)
    console.print(f"{alerts} of {len(result.days)} days at or above the drift alert threshold.")
    drifted = sum(d.input_drift_detected for d in result.days)
    console.print(f"{drifted} of {len(result.days)} days with input drift (NDVI, NDMI, ...).")
    dropped = sum(d.accuracy_alert for d in result.days)
    console.print(
        f"{dropped} of {len(result.days)} days with the accuracy alert (accuracy more than the "
        "margin below the model's reference)."
    )
    console.print(
        "Predictions, Evidently reports, execution histories and the pipeline's JSON log:"
        f" [bold]{result.out_dir}[/]"
    )
    console.print(
        "Show an execution's history: droughtwatch local history "
        f"{result.out_dir / 'executions' / (result.days[-1].execution.name + '.json')}"
    )
    if result.dashboard is not None:
        console.print(
            f"The dashboard, offline: open {result.dashboard} in a browser",
            highlight=False,
            soft_wrap=True,
        )
    console.print("See it in Grafana (needs Docker): droughtwatch grafana")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _no_alert(day: DayResult) -> str:
    return "ok" if day.enough_data else "[dim]too few[/]"


def _accuracy(day: DayResult) -> str:
    if day.accuracy is None:
        return "-"
    text = f"{day.accuracy:.2f}" + ("+" if day.late_labels else "")
    return f"[bold red]{text}[/]" if day.accuracy_alert else text


# -- a local run --------------------------------------------------------------------------------


def local_run_table(outcome: LocalRunOutcome) -> Table:
    """One row a file: its state in words, its images, class shares and prediction drift. Laid
    out as the demo's table so that it reads in an 80-column terminal or a cron log; the
    reports' paths follow the table."""
    lines = outcome.summary.files
    classes: list[str] = []
    for line in lines:
        classes.extend(c for c in line.outcome.class_shares if c not in classes)
    thresholds = {o.drift_threshold for o in (x.outcome for x in lines) if o.drift_threshold}
    threshold = f" (alert at >= {thresholds.pop()})" if len(thresholds) == 1 else ""
    files = "1 file" if len(lines) == 1 else f"{len(lines)} files"
    table = compact_table(
        f"local run {outcome.execution.name}: {outcome.execution.status}, {files}",
        f"blank: blank images dropped; {', '.join(classes) or 'the classes'}: class shares "
        f"of the predictions; PSI: prediction drift against the model's reference{threshold}",
        pad_edge=True,
    )
    table.add_column("file", overflow="fold")
    table.add_column("status", overflow="fold")
    add_prediction_columns(table, classes)
    for line in lines:
        o = line.outcome
        shares = [f"{o.class_shares[c]:.0%}" if c in o.class_shares else "-" for c in classes]
        alert = "-" if o.drift_detected is None else DRIFT if o.drift_detected else "ok"
        state = line.state
        if line.failed:
            state = f"[red]{state}[/]"
        elif line.settled:
            state = f"[dim]{state}[/]"
        elif not line.done:
            state = f"[yellow]{state}[/]"
        table.add_row(
            line.name,
            state,
            "-" if o.images is None else str(o.images),
            "-" if o.dropped is None else str(o.dropped),
            *shares,
            score_text(o.drift_score, o.drift_threshold),
            alert,
        )
    return table


def label_file_words(outcome: LabelFileOutcome) -> str:
    """What became of a label file the run read, in one line."""
    if outcome.status != "ingested":
        return f"{outcome.key}: {outcome.status}: {outcome.error}"
    words = (
        f"{outcome.key}: {_count(outcome.label_rows or 0, 'label')} ({outcome.new_labels} new, "
        f"{outcome.replaced} replaced, {outcome.unchanged} unchanged)"
    )
    if outcome.unknown_ids:
        words += f"; {outcome.unknown_ids} ids of images not predicted yet, kept"
    return words


def days_table(days: list[DayLine]) -> Table:
    """The days the run recomputed, as their daily rows (the dashboard's figures) say: how many
    images are labelled, how many labels came later and how late, and the accuracy."""
    table = compact_table(
        "days recomputed by this run",
        "labelled: labelled images / predicted images; late: labels from label files; lag: "
        "days from the images' date to the newest late label; acc.: accuracy",
        pad_edge=True,
    )
    table.add_column("date", no_wrap=True)
    table.add_column("model", overflow="fold")
    table.add_column("images", justify="right")
    table.add_column("labelled", justify="right")
    table.add_column("late", justify="right")
    table.add_column("lag", justify="right")
    table.add_column("acc.", justify="right")
    table.add_column("alert")
    for day in days:
        share, lag = day.labelled_share, day.label_lag_days
        if day.accuracy is None:
            alert = "-"
        elif day.accuracy_alert:
            alert = "[bold red]ALERT[/]"
        else:
            alert = "ok" if (day.labelled_images or 0) >= day.min_images else "[dim]too few[/]"
        table.add_row(
            day.batch_date.isoformat(),
            f"{day.model_name} {day.model_version}",
            str(day.images),
            "-" if share is None else f"{share:.0%}",
            str(day.late_labels),
            "-" if lag is None else f"{lag}d",
            _score(day.accuracy),
            alert,
        )
    return table


def status_word(line: FileLine) -> str:
    """A file's state without its details: done, failed, skipped, duplicate, superseded, or
    where it waits."""
    if line.done:
        return "done"
    if line.failed:
        return "failed"
    if line.settled:
        return str(line.outcome.status)
    return line.state


def local_run_counts(outcome: LocalRunOutcome) -> Table:
    """A large run's files counted by state, with their images and blank images dropped."""
    lines = outcome.summary.files
    title = f"local run {outcome.execution.name}: {outcome.execution.status}, {len(lines):,} files"
    table = compact_table(
        title, "files by state; images and blank images dropped, summed", pad_edge=True
    )
    table.min_width = len(title)  # a few narrow columns: the title sets the width
    table.add_column("state")
    table.add_column("files", justify="right")
    table.add_column("images", justify="right")
    table.add_column("blank", justify="right")
    groups: dict[str, list[FileLine]] = {}
    for line in lines:
        groups.setdefault(status_word(line), []).append(line)
    for word, group in sorted(groups.items(), key=lambda g: (-len(g[1]), g[0])):
        table.add_row(
            f"[red]{word}[/]" if word == "failed" else word,
            f"{len(group):,}",
            f"{sum(line.outcome.images or 0 for line in group):,}",
            f"{sum(line.outcome.dropped or 0 for line in group):,}",
        )
    return table


def print_local_run(outcome: LocalRunOutcome) -> None:
    """The table of files (past TABLE_FILES files, their counts by state), the failed ones
    with their errors and what happens to them, the unfinished ones, and where the buckets,
    the history and the log are."""
    console = printer.console
    summary = outcome.summary
    many = len(summary.files) > TABLE_FILES
    console.print(local_run_counts(outcome) if many else local_run_table(outcome))
    reports = [line for line in summary.files if line.report_path or line.report_expired]
    saved = [str(line.report_path) for line in reports if line.report_path]
    if many:
        if saved:
            folder = os.path.commonpath(saved)
            console.print(f"{len(saved):,} reports (Evidently HTML) under {folder}", soft_wrap=True)
        if len(reports) > len(saved):
            console.print(f"{len(reports) - len(saved):,} reports expired (report_retention_days)")
    elif reports:
        # one line each, never wrapped: a path cut in two cannot be copied or clicked
        console.print("reports (Evidently HTML):")
        for line in reports:
            where = (
                f"expired on {line.report_expired:%Y-%m-%d} (report_retention_days)"
                if line.report_expired
                else line.report_path
            )
            console.print(f"  {line.name} {where}", highlight=False, soft_wrap=True)
    if outcome.skipped:
        console.print(f"not taken (not TFRecord files): {', '.join(outcome.skipped)}")
    if summary.label_files:
        console.print("label files read by this run:")
        for label_file in summary.label_files:
            style = "red" if label_file.status == "failed" else "default"
            console.print(
                f"  [{style}]{escape(label_file_words(label_file))}[/]",
                highlight=False,
                soft_wrap=True,
            )
    if summary.days:
        console.print(days_table(summary.days))
        for day in summary.days:
            if day.accuracy is None:
                said = "; ".join(note for note in day.notes if "label" in note)
                console.print(f"  {day.batch_date}: {said}", highlight=False, soft_wrap=True)
    if outcome.ledger_error:
        console.print(
            f"[red]cannot read the files' states from the ledger:[/] {outcome.ledger_error}"
        )
    failed = summary.failed
    if failed:
        console.print(f"[bold red]{len(failed)} failed:[/]")
        for line in failed:
            console.print(f"- {failure_words(line, summary.max_attempts)}", highlight=False)
    bad_labels = summary.failed_label_files
    if bad_labels:
        console.print(
            f"[bold red]{_count(len(bad_labels), 'label file')} failed[/] (above): nothing of "
            "it was loaded; fix it and upload it again (droughtwatch labels upload)",
            highlight=False,
        )
    unfinished = summary.unfinished
    if unfinished and outcome.execution.succeeded:
        names = ", ".join(line.name for line in unfinished[:TABLE_FILES])
        more = len(unfinished) - TABLE_FILES
        console.print(
            f"{len(unfinished)} not done yet (a later run, or the run that holds them, finishes"
            f" them): {names}" + (f" and {more} more" if more > 0 else "")
        )
    console.print(f"local buckets: {outcome.store_root}", highlight=False, soft_wrap=True)
    console.print(f"history: {outcome.history_file}", highlight=False, soft_wrap=True)
    console.print(f"pipeline log: {outcome.log_file}", highlight=False, soft_wrap=True)

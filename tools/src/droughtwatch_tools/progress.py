"""What a user sees while an execution runs, locally (`local run`) or on AWS (`droughtwatch
run`): the step it is in, and while the Map runs, its items done and failed of their total
with the round's files and items' size, as one rich progress bar that the table replaces."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from droughtwatch_tools.execution import MapRun, PlanSummary


def map_run_words(run: MapRun, plan: PlanSummary | None) -> str:
    """``round 1: 12 of 40 items done, 1 failed, 2 running; 1,000 files, up to 25 per item``."""
    counts = run.items
    words = f"{run.done} of {run.total} items done"
    if run.failed:
        words += f", {run.failed} failed"
    if counts.get("running"):
        words += f", {counts['running']} running"
    if plan is None:
        return words
    return f"round {plan.round}: {words}; {plan.files:,} files, up to {plan.largest} per item"


class ExecutionProgress:
    """A transient progress bar: a description, and the Map's items as its steps."""

    def __init__(self, console: Console, description: str = "starting") -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._task = self._progress.add_task(description, total=None)
        self._seen: set[str] = set()

    def __enter__(self) -> ExecutionProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.__exit__(kind, value, traceback)

    @property
    def console(self) -> Console:
        return self._progress.console

    def step(self, description: str) -> None:
        """The step running now; the bar waits for the next map run."""
        self._progress.update(self._task, description=description, total=None, completed=0)

    def map_run(self, run: MapRun, plan: PlanSummary | None) -> None:
        """The map run's counts now; a line is printed above the bar when a run ends."""
        self._progress.update(
            self._task,
            description=map_run_words(run, plan),
            total=run.total or None,
            completed=run.done,
        )
        if run.status != "RUNNING" and run.arn not in self._seen:
            self._seen.add(run.arn)
            colour = "green" if run.status == "SUCCEEDED" else "red"
            self.console.print(
                f"[{colour}]items {run.status.lower()}[/] {map_run_words(run, plan)}",
                highlight=False,
            )

"""The pipeline's steps, in order: the one registry that the state machine, the handlers, the
ledger, the Pulumi program and the local runner read.

An execution is a workflow of steps, each one Lambda function of the shared image: Plan
registers new raw objects and splits the pending files into items; each item's files go
through the stages (Processing, Inference, Observe: one child workflow per item, fanned out by
a Distributed Map); then Day pools every stale day once. The stages move files through the
ledger; Plan and Day are steps around them that move no file.

Adding a stage is an entry in STAGES plus that stage's own code: its handler and logic, its
settings model if it needs one, and the migration that adds its ledger columns (and its name to
the ledger's and the runs table's CHECK constraints; a test compares the migrated schema with
this registry).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Generic, Literal, TypeVar

from droughtwatch_contract.settings import (
    CommonSettings,
    InferenceSettings,
    ObserveSettings,
    PlanSettings,
    ProcessingSettings,
)

# Where a stage reads or writes: a prefix of the data bucket's key layout (keys.KeyLayout's
# fields), or the model bucket under the configured model prefix.
Location = Literal["raw", "processed", "predictions", "reports", "daily_reports", "labels", "model"]
MODEL: Location = "model"

# The ledger's `stage` after the last stage, and the statuses a file has in a stage: on its way
# (pending, running, failed), or ended: done, or without products (skipped: not a TFRecord;
# duplicate: its content was taken under another key; superseded: a newer version came).
DONE = "done"
PENDING, RUNNING, FAILED = "pending", "running", "failed"
SKIPPED, DUPLICATE, SUPERSEDED = "skipped", "duplicate", "superseded"
LEDGER_STATUSES = (PENDING, RUNNING, FAILED, DONE, SKIPPED, DUPLICATE, SUPERSEDED)
# The `runs` table: how one stage invocation ended.
RUN_STATUSES = ("succeeded", "failed")


@dataclass(frozen=True, kw_only=True)
class Step:
    """One Lambda function of the workflow, with what its role may touch."""

    name: str  # lowercase: the function's (and the runs table's) name for it
    title: str  # the state machine's Task state
    handler: str  # the image config's command: "<module>.<callable>"
    settings: type[CommonSettings]  # what its handler reads from the environment
    reads: tuple[Location, ...] = ()  # prefixes whose objects it reads
    writes: tuple[Location, ...] = ()  # prefixes it writes objects under
    lists: tuple[Location, ...] = ()  # prefixes it only lists (names, sizes, ETags)
    memory_mb: int = 2048  # the function's default memory (a stack may override it)


@dataclass(frozen=True, kw_only=True)
class Stage(Step):
    """A step that moves files through the ledger, one item's files per invocation."""

    ledger_columns: frozenset[str]  # what completing a file in this stage records
    completed_at: str  # the ledger's timestamp of that


S = TypeVar("S", bound=Step)


class _Ordered(Generic[S]):
    """Steps in order, looked up by name: what both registries offer over ``_ordered()``."""

    kind = "step"

    def _ordered(self) -> tuple[S, ...]:
        raise NotImplementedError

    def _check_names(self) -> None:
        names = [s.name for s in self._ordered()]
        if not names or len(set(names)) != len(names) or DONE in names:
            raise ValueError(
                f"{self.kind} names must be unique, non-empty and not {DONE!r}: {names}"
            )

    def __iter__(self) -> Iterator[S]:
        return iter(self._ordered())

    def __len__(self) -> int:
        return len(self._ordered())

    def __contains__(self, item: object) -> bool:
        """A step, or a step's name."""
        return item in self._ordered() or item in self.names

    def __getitem__(self, name: str) -> S:
        for step in self._ordered():
            if step.name == name:
                return step
        raise KeyError(f"no {self.kind} {name!r}; the {self.kind}s are {list(self.names)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self._ordered())


@dataclass(frozen=True)
class StageRegistry(_Ordered[Stage]):
    """Stages in execution order, looked up by name."""

    stages: tuple[Stage, ...]
    kind = "stage"

    def __post_init__(self) -> None:
        self._check_names()

    def _ordered(self) -> tuple[Stage, ...]:
        return self.stages

    def next_name(self, name: str) -> str:
        """The stage a file moves to after ``name``, or DONE after the last."""
        position = self.names.index(self[name].name)
        return self.stages[position + 1].name if position + 1 < len(self.stages) else DONE

    def writer_of(self, location: Location) -> Stage:
        """The stage that writes ``location`` (the one to send a file back to when that
        product is gone)."""
        for stage in self.stages:
            if location in stage.writes:
                return stage
        raise KeyError(f"no stage writes {location!r}")

    def extended(self, stage: Stage) -> StageRegistry:
        """This registry with ``stage`` appended."""
        return StageRegistry((*self.stages, stage))


STAGES = StageRegistry(
    (
        Stage(
            name="processing",
            title="Processing",
            handler="droughtwatch_inference.handlers.processing.handler",
            settings=ProcessingSettings,
            ledger_columns=frozenset(
                {
                    "source_digest",
                    "processed_key",
                    "processed_expires_at",
                    "records",
                    "images",
                    "dropped",
                }
            ),
            completed_at="processed_at",
            reads=("raw",),
            writes=("processed",),
        ),
        Stage(
            name="inference",
            title="Inference",
            handler="droughtwatch_inference.handlers.inference.handler",
            settings=InferenceSettings,
            ledger_columns=frozenset(
                {"predictions_key", "predicted_images", "model_name", "model_version"}
            ),
            completed_at="predicted_at",
            reads=("processed", MODEL),
            writes=("predictions",),
            # torch and a batch of images: more memory (and CPU with it).
            memory_mb=4096,
        ),
        Stage(
            name="observe",
            title="Observe",
            handler="droughtwatch_inference.handlers.observe.handler",
            settings=ObserveSettings,
            ledger_columns=frozenset({"report_key", "report_expires_at"}),
            completed_at="observed_at",
            reads=("predictions",),
            # a file's own report, when save_file_reports is on; the day's is the day step's
            writes=("reports",),
        ),
    )
)


@dataclass(frozen=True)
class Workflow(_Ordered[Step]):
    """The steps of one execution in order: ``plan``, then ``stages`` (run per item, inside the
    Map), then ``day``. Each step is one function; its name keys the function ARNs, the stack's
    functions config and the local runner's dispatch."""

    plan: Step
    stages: StageRegistry
    day: Step

    def __post_init__(self) -> None:
        self._check_names()

    @property
    def steps(self) -> tuple[Step, ...]:
        return (self.plan, *self.stages, self.day)

    def _ordered(self) -> tuple[Step, ...]:
        return self.steps

    def with_stages(self, stages: StageRegistry) -> Workflow:
        """This workflow with another stage registry (e.g. one stage more)."""
        return replace(self, stages=stages)


PLAN = Step(
    name="plan",
    title="Plan",
    handler="droughtwatch_inference.handlers.plan.handler",
    settings=PlanSettings,
    # Registering new raw objects needs their keys, sizes and ETags only: a listing. Late
    # label files are ingested here too, first (handlers/plan.py), so only Plan reads them.
    lists=("raw",),
    reads=("labels",),
    memory_mb=512,
)
DAY = Step(
    name="day",
    title="Pool days",
    handler="droughtwatch_inference.handlers.day.handler",
    # The day's signals are Observe's, measured on the day's pool.
    settings=ObserveSettings,
    reads=("predictions",),
    writes=("daily_reports",),
)
WORKFLOW = Workflow(PLAN, STAGES, DAY)

"""The pipeline's stages, in order: the one registry that the state machine, the handlers, the
ledger, the Pulumi program and the local runner read.

Adding a stage is an entry here plus that stage's own code: its handler and logic, its settings
model if it needs one, and the migration that adds its ledger columns (and its name to the
ledger's CHECK constraints; a test compares the migrated schema with this registry).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from droughtwatch_contract.settings import (
    CommonSettings,
    InferenceSettings,
    ObserveSettings,
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


@dataclass(frozen=True)
class Stage:
    name: str  # lowercase: the ledger's and the function's name for it
    title: str  # the state machine's Task state
    handler: str  # the image config's command: "<module>.<callable>"
    settings: type[CommonSettings]  # what its handler reads from the environment
    ledger_columns: frozenset[str]  # what completing a file in this stage records
    completed_at: str  # the ledger's timestamp of that
    reads: tuple[Location, ...]
    writes: tuple[Location, ...]
    memory_mb: int = 2048  # the function's default memory (a stack may override it)


@dataclass(frozen=True)
class StageRegistry:
    """Stages in execution order, looked up by name."""

    stages: tuple[Stage, ...]

    def __post_init__(self) -> None:
        names = [s.name for s in self.stages]
        if not names or len(set(names)) != len(names) or DONE in names:
            raise ValueError(f"stage names must be unique, non-empty and not {DONE!r}: {names}")

    def __iter__(self) -> Iterator[Stage]:
        return iter(self.stages)

    def __len__(self) -> int:
        return len(self.stages)

    def __contains__(self, item: object) -> bool:
        """A stage, or a stage's name."""
        return item in self.stages or item in self.names

    def __getitem__(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"no stage {name!r}; the stages are {list(self.names)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

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
            # labels/: each run ingests new label files first, in this stage (handlers/
            # processing.py), so only this stage's role may read them.
            reads=("raw", "labels"),
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
            writes=("reports", "daily_reports"),
        ),
    )
)

"""Adding a stage is an entry in the stage registry plus that stage's own code: with a fourth stage
and its migration (its ledger columns, its name in the CHECK constraints), the ledger moves files
through it and the state machine runs it, with nothing else edited. (The Pulumi side:
infra/tests/test_new_stage_in_the_stack.py.)"""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from droughtwatch_contract import statemachine
from droughtwatch_contract.settings import CommonSettings
from droughtwatch_contract.stages import DONE, STAGES, WORKFLOW, Stage
from droughtwatch_inference.adapters.ledger import Ledger
from droughtwatch_inference.records import RawObject, StageReport

REVIEW = Stage(
    name="review",
    title="Review",
    handler="droughtwatch_inference.handlers.review.handler",
    settings=CommonSettings,
    ledger_columns=frozenset({"review_key"}),
    completed_at="reviewed_at",
    reads=("predictions",),
    writes=("reports",),
)
FOUR = STAGES.extended(REVIEW)
# What the new stage's migration file would hold.
REVIEW_MIGRATION = """
ALTER TABLE ledger ADD COLUMN review_key text, ADD COLUMN reviewed_at timestamptz;
ALTER TABLE ledger DROP CONSTRAINT ledger_stage_check, ADD CONSTRAINT ledger_stage_check
    CHECK (stage IN ('processing', 'inference', 'observe', 'review', 'done'));
ALTER TABLE runs DROP CONSTRAINT runs_stage_check, ADD CONSTRAINT runs_stage_check
    CHECK (stage IN ('plan', 'processing', 'inference', 'observe', 'review', 'day'));
"""


@pytest.fixture
def ledger(admin_dsn: str, database_dsn: str):
    with psycopg.connect(admin_dsn, autocommit=True) as owner:
        owner.execute(REVIEW_MIGRATION)
    with psycopg.connect(database_dsn, autocommit=True) as conn:
        yield Ledger(conn, stages=FOUR)


def test_the_ledger_moves_a_file_through_a_fourth_stage(ledger: Ledger) -> None:
    raw = RawObject("raw/2026-11-27/scene.tfrecord", "etag", 10)
    assert ledger.register("data", [(raw, dt.date(2026, 11, 27))], "run-1") == 1
    for stage in STAGES.names:
        entry = ledger.claim(stage, max_attempts=3, lease_seconds=60)
        assert entry is not None
        ledger.complete(entry.id, stage)
    # After Observe the file waits for Review instead of being done.
    row = ledger.conn.execute("SELECT stage, status FROM ledger").fetchone()
    assert row == ("review", "pending")

    entry = ledger.claim("review", max_attempts=3, lease_seconds=60)
    assert entry is not None
    with pytest.raises(ValueError, match="unknown ledger columns for review"):
        ledger.complete(entry.id, "review", predictions_key="not review's column")
    ledger.complete(entry.id, "review", review_key="reports/2026-11-27/scene.html")
    row = ledger.conn.execute(
        "SELECT stage, status, review_key, reviewed_at IS NOT NULL FROM ledger"
    ).fetchone()
    assert row == (DONE, "done", "reports/2026-11-27/scene.html", True)

    ledger.record_run(StageReport(stage="review", run_id="run-1"), dt.datetime.now(dt.UTC), None)
    assert ledger.conn.execute("SELECT stage FROM runs").fetchall() == [("review",)]


def test_the_state_machine_runs_the_fourth_stage_last_in_each_item() -> None:
    steps = WORKFLOW.with_stages(FOUR)
    arns = {name: f"arn:aws:lambda:eu-west-1:123456789012:function:{name}" for name in steps.names}
    definition = statemachine.definition(arns, workflow=steps)
    assert statemachine.item_path(FOUR) == [
        *statemachine.ITEM_PATH[:-1],
        "Review",
        "Review succeeded?",
        "Item done",
    ]
    child = definition["States"][statemachine.ITEMS]["ItemProcessor"]["States"]
    assert child["Review"]["Parameters"]["FunctionName"] == arns["review"]
    assert child["Review succeeded?"]["Default"] == "Review failed"

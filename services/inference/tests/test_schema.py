"""The migrated schema agrees with the stage registry: the CHECK constraints (SQL, written in the
migrations) allow exactly the registry's stages (in the ledger), steps (in runs) and statuses,
and every column a stage records exists. A stage added to the registry without its migration
fails here."""

from __future__ import annotations

import re

import psycopg
import pytest
from droughtwatch_contract.stages import DONE, LEDGER_STATUSES, RUN_STATUSES, STAGES, WORKFLOW


def allowed_values(conn: psycopg.Connection) -> dict[tuple[str, str], set[str]]:
    """(table, column) -> the values its CHECK (column IN (...)) constraint allows."""
    rows = conn.execute(
        "SELECT c.conrelid::regclass::text, a.attname, pg_get_constraintdef(c.oid)"
        " FROM pg_constraint c JOIN pg_attribute a"
        "   ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)"
        " WHERE c.contype = 'c' AND c.conrelid IN ('ledger'::regclass, 'runs'::regclass)"
    ).fetchall()
    # PostgreSQL shows `x IN ('a', 'b')` as `x = ANY (ARRAY['a'::text, 'b'::text])`.
    return {
        (table, column): set(re.findall(r"'([^']*)'::text", definition))
        for table, column, definition in rows
        if "ANY (ARRAY[" in definition
    }


@pytest.fixture
def conn(database_dsn: str):
    with psycopg.connect(database_dsn, autocommit=True) as connection:
        yield connection


def test_check_constraints_allow_exactly_the_registry_stages_and_statuses(
    conn: psycopg.Connection,
) -> None:
    assert allowed_values(conn) == {
        ("ledger", "stage"): {*STAGES.names, DONE},
        ("ledger", "status"): set(LEDGER_STATUSES),
        ("runs", "stage"): set(WORKFLOW.names),
        ("runs", "status"): set(RUN_STATUSES),
    }


def test_a_new_file_starts_at_the_first_stage(conn: psycopg.Connection) -> None:
    (default,) = conn.execute(
        "SELECT column_default FROM information_schema.columns"
        " WHERE table_name = 'ledger' AND column_name = 'stage'"
    ).fetchone()
    assert default == f"'{STAGES.names[0]}'::text"


def test_every_column_a_stage_records_exists(conn: psycopg.Connection) -> None:
    columns = {
        name
        for (name,) in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'ledger'"
        )
    }
    for stage in STAGES:
        assert stage.ledger_columns | {stage.completed_at} <= columns, stage.name

"""Splitting a SQL script into statements as PostgreSQL's lexer does (the RDS Data API runs one
statement per call): semicolons inside literals, quoted identifiers, dollar quotes and comments
do not end a statement. Every shipped migration, split and run statement by statement, gives
the same schema as the file run whole."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from droughtwatch_inference.adapters.schema import SCHEMA_MIGRATIONS_TABLE, migration_files
from droughtwatch_inference.sql_statements import UnterminatedSql, split_statements


def test_semicolons_end_statements_at_the_top_level_only() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE "odd;name" (note text DEFAULT 'a;b', quote text DEFAULT 'it''s; fine');
    /* a block; /* nested; */ still a comment; */
    INSERT INTO t VALUES (E'escaped \\'; quote', U&'d\\0061t;a');
    SELECT 1
    """
    assert split_statements(script) == [
        """CREATE TABLE "odd;name" (note text DEFAULT 'a;b', quote text DEFAULT 'it''s; fine')""",
        """INSERT INTO t VALUES (E'escaped \\'; quote', U&'d\\0061t;a')""",
        "SELECT 1",
    ]
    inside = split_statements("SELECT 1 -- a comment; inside\n + 1;")
    assert inside == ["SELECT 1 -- a comment; inside\n + 1"]


def test_dollar_quoted_bodies_are_one_statement() -> None:
    script = """DO $$
BEGIN
    PERFORM 1; -- inside the body
    EXECUTE $inner$SELECT ';'$inner$;
END
$$;
CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $fn$ SELECT '$$;' $fn$;
SELECT $1::int;
SELECT price$tag FROM t WHERE a = 'x$$y';"""
    statements = split_statements(script)
    assert len(statements) == 4
    assert statements[0].startswith("DO $$") and statements[0].endswith("END\n$$")
    assert statements[1].endswith("$fn$ SELECT '$$;' $fn$")
    # $1 is a parameter and price$tag an identifier: neither opens a dollar quote
    assert statements[2:] == ["SELECT $1::int", "SELECT price$tag FROM t WHERE a = 'x$$y'"]


def test_a_word_ending_in_e_before_a_quote_is_no_escape_string() -> None:
    # "some'..." is not E'...': the backslash stays literal and ends nothing
    assert split_statements(r"SELECT 'a\'; SELECT 2") == [r"SELECT 'a\'", "SELECT 2"]
    assert split_statements(r"SELECT E'a\'; b'; SELECT 2") == [r"SELECT E'a\'; b'", "SELECT 2"]


def test_blank_and_comment_only_pieces_are_dropped() -> None:
    assert split_statements(" ; -- nothing\n; /* nothing */ ;") == []
    assert split_statements("SELECT 1;;\n-- trailing comment\n") == ["SELECT 1"]


@pytest.mark.parametrize(
    "script", ["SELECT 'open", 'SELECT "open', "DO $x$ BEGIN", "/* open /* */", "E'\\'"]
)
def test_an_unterminated_script_is_refused(script: str) -> None:
    with pytest.raises(UnterminatedSql):
        split_statements(script)


def test_the_shipped_migrations_split_where_expected() -> None:
    counts = {name: len(split_statements(sql)) for _, name, sql in migration_files()}
    # 0003 holds a DO $$ block with semicolons inside, as one statement among others
    (do_block,) = [s for s in split_statements(dict_of_files()["0003_roles.sql"]) if "DO $$" in s]
    assert do_block.count(";") >= 4 and do_block.rstrip().endswith("$$")
    assert all(count >= 1 for count in counts.values()), counts


def dict_of_files() -> dict[str, str]:
    return {name: sql for _, name, sql in migration_files()}


# -- the same schema both ways ----------------------------------------------------------------

SCHEMA_QUERIES = {
    "columns": """SELECT table_name, column_name, data_type, is_nullable, column_default
                  FROM information_schema.columns WHERE table_schema = 'public'""",
    "constraints": """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
                      FROM pg_constraint WHERE connamespace = 'public'::regnamespace""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "grants": """SELECT grantee, table_name, privilege_type
                 FROM information_schema.role_table_grants
                 WHERE table_schema = 'public' AND grantee LIKE 'droughtwatch%'""",
    "sequence_grants": """SELECT c.relname, a.grantee::regrole::text, a.privilege_type
                          FROM pg_class c, aclexplode(c.relacl) a
                          WHERE c.relkind = 'S' AND c.relnamespace = 'public'::regnamespace""",
}


def schema_of(dsn: str) -> dict[str, set[tuple[Any, ...]]]:
    with psycopg.connect(dsn) as conn:
        return {name: set(conn.execute(sql).fetchall()) for name, sql in SCHEMA_QUERIES.items()}


@pytest.fixture
def two_databases(postgres: Any) -> Iterator[tuple[str, str]]:
    names = [f"dw_split_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    dsns = tuple(postgres.create(name) for name in names)
    yield dsns  # type: ignore[misc]
    for name in names:
        postgres.drop(name)


def test_split_migrations_give_the_same_schema_as_whole_files(
    two_databases: tuple[str, str],
) -> None:
    whole, split = two_databases
    with psycopg.connect(whole, autocommit=True) as conn, conn.transaction():
        conn.execute(SCHEMA_MIGRATIONS_TABLE)
        for _, _, sql in migration_files():
            conn.execute(sql)  # type: ignore[arg-type]  # psycopg runs a whole script at once
    with psycopg.connect(split, autocommit=True) as conn, conn.transaction():
        conn.execute(SCHEMA_MIGRATIONS_TABLE)
        for _, _, sql in migration_files():
            for statement in split_statements(sql):
                conn.execute(statement)  # type: ignore[arg-type]
    expected = schema_of(whole)
    assert all(expected.values()), expected  # the queries see the schema
    assert schema_of(split) == expected

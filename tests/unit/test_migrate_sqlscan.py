"""Which goose statements may be pipelined: only those that are certainly one SQL command.

A wrong "yes" would make PostgreSQL refuse a statement goose runs fine (the extended protocol takes one
command); a wrong "no" only costs round trips. So every doubt answers no.
"""

from __future__ import annotations

import pytest

from schemagate.migrate.sqlscan import one_statement


@pytest.mark.parametrize("sql", [
    "SELECT 1;",
    "SELECT 1",
    "SELECT ';' AS semicolon;",
    'SELECT 1 AS "a;b";',
    "SELECT 'it''s';",
    "SELECT $$a;b$$;",
    "DO $$\nBEGIN\n  PERFORM 1;\nEND\n$$;",
    "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;",
    "SELECT 1; -- trailing comment\n",
    "SELECT 1; /* nested /* comment; */ still ; */",
    "-- leading comment; with a semicolon\nSELECT 1;",
    "CREATE INDEX CONCURRENTLY i ON t (a);",
])
def test_one_command(sql: str) -> None:
    assert one_statement(sql)


@pytest.mark.parametrize("sql", [
    "SELECT 1; SELECT 2;",  # two commands on one line: one goose statement
    "CREATE TABLE a (id int);\nCREATE TABLE b (id int);",  # a StatementBegin/End block with two
    "SELECT 1;;",
    "SELECT a$b$; SELECT 2;",  # `$` inside an identifier is not a dollar quote
    "SELECT $1; SELECT 2;",
    "",
    "-- only a comment\n",
    "SELECT 'unterminated;",
    "SELECT $x$ unterminated;",
    "SELECT 1 /* unterminated",
    "SELECT E'a\\'; SELECT 2;",  # backslash escapes depend on the string kind and standard_conforming_strings
    "SELECT 'a\\'; SELECT 2;",
    "COPY t FROM STDIN;",
    "  copy t TO STDOUT;",
])
def test_not_certainly_one_command(sql: str) -> None:
    assert not one_statement(sql)

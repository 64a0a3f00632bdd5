"""goose's grammar: valid files split as goose splits them, invalid ones fail with goose's message."""

from __future__ import annotations

import pytest

from schemagate.migrate.parser import MigrationParseError, ends_with_semicolon, parse


def stmts(text: str, env: dict[str, str] | None = None) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    p = parse(text, "00001_x.sql", env or {})
    return [(s.sql, s.line) for s in p.up], [(s.sql, s.line) for s in p.down]


VALID = [
    pytest.param(
        "-- +goose Up\nCREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n\n-- +goose Down\nDROP TABLE a;\n",
        [("CREATE TABLE a (id int);", 2), ("INSERT INTO a VALUES (1);", 3)], [("DROP TABLE a;", 6)],
        id="up-and-down"),
    pytest.param("-- +goose Up\nSELECT 1;\n", [("SELECT 1;", 2)], [], id="up-only"),
    pytest.param(
        "\n\n-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  RETURN 1;\n"
        "END;\n$$ LANGUAGE plpgsql;\n-- +goose StatementEnd\n-- +goose Down\nDROP FUNCTION f();\n",
        [("CREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$ LANGUAGE plpgsql;", 5)],
        [("DROP FUNCTION f();", 12)], id="statement-block"),
    pytest.param("-- +goose Up\nSELECT 1; -- trailing comment\nSELECT 2;\n",
                 [("SELECT 1; -- trailing comment", 2), ("SELECT 2;", 3)], [], id="semicolon-then-comment-ends"),
    pytest.param("-- +goose Up\nSELECT 1;--glued comment\nSELECT 2;\n",
                 [("SELECT 1;--glued comment\nSELECT 2;", 2)], [], id="semicolon-glued-to-comment-does-not-end"),
    pytest.param("-- +goose Up\n-- leading comment dropped\n\nSELECT\n-- inner comment kept\n  1;\n",
                 [("SELECT\n-- inner comment kept\n  1;", 4)], [], id="comments"),
    pytest.param("-- +goose Up\nSELECT 1; SELECT 2;\n", [("SELECT 1; SELECT 2;", 2)], [], id="two-on-one-line"),
    pytest.param("-- +goose up\nSELECT 1;\n--+goose DOWN\nSELECT 2;\n", [("SELECT 1;", 2)], [("SELECT 2;", 4)],
                 id="annotations-case-insensitive"),
    pytest.param("-- +goose Up\r\nSELECT 1;\r\n-- +goose Down\r\nSELECT 2;\r\n", [("SELECT 1;", 2)],
                 [("SELECT 2;", 4)], id="crlf"),
    pytest.param("-- +goose Up\nDO $$ BEGIN\n  PERFORM 1;\nEND $$;\n",
                 [("DO $$ BEGIN\n  PERFORM 1;", 2), ("END $$;", 4)], [],
                 id="dollar-quotes-not-understood-without-block"),
]


@pytest.mark.parametrize(("text", "up", "down"), VALID)
def test_valid_files_split_like_goose(text: str, up: list, down: list) -> None:
    assert stmts(text) == (up, down)


def test_flags() -> None:
    p = parse("-- +goose Up\nSELECT 1;\n-- +goose Down\nSELECT 2;\n-- +goose NO TRANSACTION\n", "1_a.sql", {})
    assert (p.use_transaction, p.has_down, p.envsub) == (False, True, False)
    p = parse("-- +goose Up\n-- +goose ENVSUB ON\nSELECT 1;\n", "1_a.sql", {})
    assert (p.use_transaction, p.has_down, p.envsub) == (True, False, True)


def test_envsub_substitutes_only_where_on() -> None:
    text = ("-- +goose Up\nSELECT '$A';\n-- +goose ENVSUB ON\nSELECT '$A', '${B:-dflt}', '${C-unset}', "
            "'$$', '${A}x';\n-- +goose ENVSUB OFF\nSELECT '${A}';\n")
    up, _ = stmts(text, {"A": "va", "B": ""})
    assert [s for s, _ in up] == ["SELECT '$A';", "SELECT 'va', 'dflt', 'unset', '$', 'vax';", "SELECT '${A}';"]


def test_envsub_value_decides_where_a_statement_ends() -> None:
    up, _ = stmts("-- +goose Up\n-- +goose ENVSUB ON\nSELECT 1${END}\nSELECT 2;\n", {"END": ";"})
    assert up == [("SELECT 1;", 3), ("SELECT 2;", 4)]


@pytest.mark.parametrize(("line", "ends"), [
    ("SELECT 1;", True), ("SELECT 1; -- c", True), ("SELECT 1;-- c", False), ("SELECT ';' || x", False),
    ("  end;  ", True), ("-- SELECT 1;", False), ("SELECT 1; --", True),
])
def test_ends_with_semicolon(line: str, ends: bool) -> None:
    assert ends_with_semicolon(line) is ends


INVALID = [
    pytest.param("", 1, "failed to parse migration: must start with '-- +goose Up' annotation", id="empty"),
    pytest.param("", 1, "no '-- +goose Up' annotation: the file has no migration in it", id="empty-names-the-fault"),
    pytest.param("\n\n  \n", 3, "must start with '-- +goose Up' annotation", id="blank"),
    pytest.param("-- just a comment\nSELECT 1;\n-- +goose Up\n", 2,
                 'unexpected state 0 on line "SELECT 1;"', id="sql-before-up"),
    pytest.param("SELECT 1;\n", 1, "SQL before the '-- +goose Up' annotation", id="no-up-names-the-fault"),
    pytest.param("-- +goose Up\nSELECT 1;\n-- +goose Up\n", 3,
                 "duplicate '-- +goose Up' annotations; stateMachine=1", id="duplicate-up"),
    pytest.param("-- +goose Down\nSELECT 1;\n", 1,
                 "must start with '-- +goose Up' annotation, stateMachine=0", id="down-first"),
    pytest.param("-- +goose StatementBegin\nSELECT 1;\n", 1,
                 "'-- +goose StatementBegin' must be defined after '-- +goose Up' or '-- +goose Down' annotation, "
                 "stateMachine=0", id="begin-before-up"),
    pytest.param("-- +goose Up\nSELECT 1;\n-- +goose StatementEnd\n", 3,
                 "'-- +goose StatementEnd' must be defined after '-- +goose StatementBegin'", id="end-without-begin"),
    pytest.param("-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n-- +goose Down\n", 4,
                 "must start with '-- +goose Up' annotation, stateMachine=2", id="down-inside-block"),
    pytest.param("-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n-- +goose Down\n", 4,
                 "inside the '-- +goose StatementBegin' block opened on line 2: close that block with "
                 "'-- +goose StatementEnd' first", id="unterminated-block-names-the-fault"),
    pytest.param("-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n", 2,
                 "failed to parse migration: missing '-- +goose StatementEnd' annotation", id="missing-end"),
    pytest.param("-- +goose Up\nSELECT 1;\nSELECT 2\n", 3,
                 'state 1, direction: up: unexpected unfinished SQL query: "SELECT 2": missing semicolon?',
                 id="missing-semicolon-eof"),
    pytest.param("-- +goose Up\nSELECT 2\n-- +goose Down\nSELECT 3;\n", 2,
                 'state 1, direction: up: unexpected unfinished SQL query: "SELECT 2": missing semicolon?',
                 id="missing-semicolon-before-down"),
    pytest.param("-- +goose Up\nSELECT 1;\n-- +goose Down\nDROP TABLE a\n", 4,
                 'state 4, direction: down: unexpected unfinished SQL query: "DROP TABLE a": missing semicolon?',
                 id="missing-semicolon-in-down"),
    pytest.param(" -- +goose Up\nSELECT 1;\n", 1, 'contains leading whitespace: invalid annotation',
                 id="leading-whitespace"),
    pytest.param("-- +goose Upp\nSELECT 1;\n", 1, '"Upp" not supported: invalid annotation', id="unknown"),
    pytest.param("-- +goose Up +goose\nSELECT 1;\n", 1, "contains multiple '+goose' annotations", id="twice"),
    pytest.param("-- +goose\nSELECT 1;\n", 1, "empty annotation", id="empty-annotation"),
    pytest.param("-- +goose Up\n-- we like +goose\nSELECT 1;\n", 2, '"we like" not supported',
                 id="comment-mentioning-goose"),
    pytest.param("-- +goose Up\n-- +goose ENVSUB ON\nSELECT '${NOPE?must be set}';\n", 3,
                 "variable substitution failed: $NOPE: must be set", id="envsub-required"),
    pytest.param("-- +goose Up\n-- +goose ENVSUB ON\nSELECT $1;\n", 3,
                 "variable substitution failed: Expected identifier to start with a letter, got 1",
                 id="envsub-bad-expansion"),
]


@pytest.mark.parametrize(("text", "line", "message"), INVALID)
def test_invalid_files_fail_with_goose_message_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(MigrationParseError) as info:
        parse(text, "00007_bad.sql", {})
    assert message in info.value.message
    assert (info.value.file, info.value.line) == ("00007_bad.sql", line)
    assert str(info.value).startswith(f"00007_bad.sql:{line}: ")


def test_envsub_values_stay_out_of_messages_and_quoted_lines() -> None:
    # With ENVSUB, substituted values are often secrets; errors and quoted lines show the file as written.
    env = {"APP_PW": "Sup3rS3cret"}
    with pytest.raises(MigrationParseError) as info:
        parse("-- +goose Up\n-- +goose ENVSUB ON\nALTER ROLE app PASSWORD '${APP_PW}'\n", "00007_bad.sql", env)
    assert "Sup3rS3cret" not in str(info.value)
    assert "unexpected unfinished SQL query: \"ALTER ROLE app PASSWORD '${APP_PW}'\"" in info.value.message
    p = parse("-- +goose Up\n-- +goose ENVSUB ON\nALTER ROLE app\n  PASSWORD '${APP_PW}';\n"
              "-- +goose StatementBegin\nSELECT '${APP_PW}';\n-- +goose StatementEnd\n", "00001_x.sql", env)
    assert [(s.sql, s.first_line) for s in p.up] == [
        ("ALTER ROLE app\n  PASSWORD 'Sup3rS3cret';", "ALTER ROLE app"),
        ("SELECT 'Sup3rS3cret';", "SELECT '${APP_PW}';")]


def test_envsub_never_reads_the_connection_from_the_environment(monkeypatch):
    """A ConfigMap author must not get the password into an error message through ENVSUB."""
    from schemagate.migrate.parser import parse

    monkeypatch.setenv("DATABASE_URL", "postgres://app:s3cret@db/app")
    monkeypatch.setenv("PGPASSWORD", "s3cret")
    monkeypatch.setenv("APP_ROLE", "reader")
    text = ("-- +goose Up\n-- +goose ENVSUB ON\n"
            "SELECT reverse('${DATABASE_URL}')::int, '${PGPASSWORD}', '${PGPASSWORD:-fallback}', '${APP_ROLE}';\n")
    [stmt] = parse(text, "00001_x.sql").up
    assert "s3cret" not in stmt.sql
    assert "reverse('')" in stmt.sql and "'fallback'" in stmt.sql and "'reader'" in stmt.sql

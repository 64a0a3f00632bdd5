"""The writing rules as checks: each fixture breaks its rule once (file, line), annotations, CLI, operator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemagate import cli
from schemagate.api.v1alpha1 import SchemaMigrationSpec
from schemagate.controller import policy
from schemagate.controller import decide as p
from schemagate.migrate import lint, rules, source, sqlshape
from tests.unit.conftest import plan_inputs, smig_spec

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "writing_rules"


def findings_of(text: str, name: str = "00002_x.sql", exclude=()) -> list[rules.Finding]:
    return lint.findings(source.load_files({name: text}, env={}), exclude)


def test_each_fixture_breaks_its_rule_once_with_file_and_line():
    found = lint.findings(source.load_dir(FIXTURES))
    assert [(f.file, f.line, f.rule, f.level) for f in found] == [
        ("00001_no_down.sql", 2, rules.REQUIRE_DOWN, "warning"),  # the `-- +goose Up` line
        ("00002_not_idempotent.sql", 3, rules.REQUIRE_IDEMPOTENT_DDL, "warning"),
        ("00003_schema_and_data.sql", 4, rules.SEPARATE_SCHEMA_AND_DATA, "warning"),
    ]  # 00004 breaks all three and turns them off with `-- +schemagate NoLint`
    assert "CREATE TABLE without IF NOT EXISTS" in found[1].message
    assert "UPDATE of existing table accounts" in found[2].message and "line 3" in found[2].message


def test_the_initial_schema_passes_every_rule():
    assert lint.findings(source.load_dir(REPO / "migrations")) == []


IDEMPOTENT = [
    "CREATE TABLE IF NOT EXISTS t (id bigint)",
    "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a) WHERE deleted_at IS NULL",
    "DROP TABLE IF EXISTS a, b",
    "DROP INDEX CONCURRENTLY IF EXISTS i",
    "ALTER TABLE t ADD COLUMN IF NOT EXISTS a int, DROP COLUMN IF EXISTS b, ALTER COLUMN c DROP DEFAULT",
    "ALTER TABLE t ALTER COLUMN c DROP NOT NULL",
    "DO $$ BEGIN ALTER TABLE t ADD COLUMN a int; ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0); END $$;",
    "CREATE TABLE IF NOT EXISTS t (note text DEFAULT 'CREATE TABLE x; DROP TABLE y')",
    "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS $f$ SELECT 1 $f$",
    "-- DROP TABLE t\nSELECT 1",
]
NOT_IDEMPOTENT = [
    ("CREATE TABLE t (id bigint)", "CREATE TABLE without IF NOT EXISTS"),
    ("create unique index i on t (a)", "CREATE INDEX without IF NOT EXISTS"),
    ("CREATE INDEX CONCURRENTLY i ON t (a)", "CREATE INDEX without IF NOT EXISTS"),
    ("DROP TABLE t", "DROP TABLE without IF EXISTS"),
    ("DROP INDEX CONCURRENTLY i", "DROP INDEX without IF EXISTS"),
    ("DROP TYPE mood", "DROP TYPE without IF EXISTS"),
    ("ALTER TABLE ONLY public.t ADD COLUMN a int", "ADD COLUMN without IF NOT EXISTS"),
    ("ALTER TABLE t ADD a int", "ADD COLUMN without IF NOT EXISTS"),
    ("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)", "ADD CONSTRAINT outside a guard"),
    ("ALTER TABLE t DROP COLUMN a", "DROP COLUMN without IF EXISTS"),
    ("ALTER TABLE t ADD COLUMN IF NOT EXISTS a int, DROP b", "DROP COLUMN without IF EXISTS"),
]


@pytest.mark.parametrize("sql", IDEMPOTENT)
def test_idempotent_ddl_passes(sql):
    assert sqlshape.shape(sql).not_idempotent == ()


@pytest.mark.parametrize("sql, why", NOT_IDEMPOTENT)
def test_non_idempotent_ddl_is_named(sql, why):
    (reason,) = sqlshape.shape(sql).not_idempotent
    assert why in reason


@pytest.mark.parametrize("up, mixed", [
    ("CREATE TABLE IF NOT EXISTS plans (id bigint);\nINSERT INTO plans VALUES (1);\n", False),  # seeds its own
    ("INSERT INTO plans VALUES (1);\nUPDATE plans SET id = 2;\n", False),  # data only
    ("CREATE INDEX IF NOT EXISTS i ON t (a);\nDELETE FROM public.t WHERE a IS NULL;\n", True),
    ("ALTER TABLE IF EXISTS t RENAME TO u;\nWITH x AS (SELECT 1) INSERT INTO u SELECT * FROM x;\n", False),
    ("DROP TABLE IF EXISTS old;\nTRUNCATE audit;\n", True),
])
def test_schema_and_data_in_one_section(up, mixed):
    found = findings_of(f"-- +goose Up\n{up}-- +goose Down\nSELECT 1;\n")
    assert [f.line for f in found if f.rule == rules.SEPARATE_SCHEMA_AND_DATA] == ([3] if mixed else [])  # the DML, on line 3


def test_down_section_is_checked_too():
    found = findings_of("-- +goose Up\nCREATE TABLE IF NOT EXISTS t (id bigint);\n-- +goose Down\nDROP TABLE t;\n")
    assert [(f.line, f.rule) for f in found] == [(4, rules.REQUIRE_IDEMPOTENT_DDL)]


def test_unreadable_annotations_are_errors_on_their_line_not_silence():
    text = ("-- +schemagate NoLint requre-down\n-- +schemagate Nolint require-down\n-- +schemagate NoLint\n"
            "-- +goose Up\nSELECT 1;\n")
    found = findings_of(text)
    invalid = [(f.line, f.level) for f in found if f.rule == rules.INVALID_ANNOTATION]
    assert invalid == [(1, "error"), (2, "error"), (3, "error")]
    assert "unknown rule 'requre-down'" in found[0].message and "require-down" in found[0].message
    assert [f.rule for f in found if f.rule != rules.INVALID_ANNOTATION] == [rules.REQUIRE_DOWN]  # still on


def test_goose_reads_the_annotation_as_a_comment():
    (m,) = source.load_files({"00001_a.sql": "-- +goose Up\n-- +schemagate NoLint require-down\nSELECT 1;\n"})
    assert [s.sql for s in m.parsed.up] == ["SELECT 1;"] and m.notes.nolint == ((2, rules.REQUIRE_DOWN),)


def test_exclude_turns_rules_off_and_splits_from_squawk():
    assert findings_of("-- +goose Up\nCREATE TABLE t (id bigint);\n", exclude=[rules.REQUIRE_DOWN,
                                                                               rules.REQUIRE_IDEMPOTENT_DDL]) == []
    assert rules.split_exclude(["require-down", "ban-drop-column"]) == (frozenset({"require-down"}), ["ban-drop-column"])


# --- the CLI -----------------------------------------------------------------------------------------------

def test_cli_prints_file_line_rule_and_why(capsys):
    code = cli.main(["migrate", "--dir", str(FIXTURES), "lint"])
    out = capsys.readouterr()
    assert code == 1
    lines = out.out.splitlines()
    assert lines[0].startswith("00001_no_down.sql:2: warning require-down: no `-- +goose Down` section")
    assert lines[1].startswith("00002_not_idempotent.sql:3: warning require-idempotent-ddl: CREATE TABLE without")
    assert lines[2].startswith("00003_schema_and_data.sql:4: warning separate-schema-and-data: UPDATE")
    assert len(lines) == 3 and "3 finding(s) in 3 of 4 file(s)" in out.err


def test_cli_json(capsys):
    code = cli.main(["migrate", "--dir", str(FIXTURES), "lint", "--json", "--exclude", "require-down"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["ok"] is False and doc["files"] == 4 and doc["error"] is None
    assert doc["findings"] == [
        {"file": "00002_not_idempotent.sql", "line": 3, "level": "warning", "rule": "require-idempotent-ddl",
         "message": doc["findings"][0]["message"]},
        {"file": "00003_schema_and_data.sql", "line": 4, "level": "warning", "rule": "separate-schema-and-data",
         "message": doc["findings"][1]["message"]}]


def test_cli_passes_the_project_and_refuses_bad_input(capsys, tmp_path):
    assert cli.main(["migrate", "--dir", str(REPO / "migrations"), "lint"]) == 0
    assert "1 file(s) follow the writing rules" in capsys.readouterr().out
    assert cli.main(["migrate", "--dir", str(FIXTURES), "lint", "--exclude", "no-such-rule"]) == 2
    assert "unknown rule 'no-such-rule'" in capsys.readouterr().err
    (tmp_path / "00001_a.sql").write_text("-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n")
    assert cli.main(["migrate", "--dir", str(tmp_path), "lint", "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["error"]["reason"] == "InvalidMigrations" and doc["error"]["file"] == "00001_a.sql"


# --- the operator: status.plan, Events, failOn -------------------------------------------------------------

def _spec(**lint_spec) -> SchemaMigrationSpec:
    return smig_spec(lint=lint_spec)


def _inputs() -> p.Inputs:
    files = tuple(p.migration_file(m) for m in source.load_dir(FIXTURES))
    return plan_inputs(migrations=files)


def no_squawk(steps, direction, exclude):
    return []


def test_operator_shows_them_in_status_plan_and_one_event():
    i = _inputs()
    d = policy.evaluate(i, p.plan(i), _spec(), annotations={}, old={}, linter=no_squawk)
    assert isinstance(d.action, p.StartJob)
    assert [(f["file"], f["line"], f["rule"]) for f in d.plan["lint"]] == [
        ("00001_no_down.sql", 2, "require-down"), ("00002_not_idempotent.sql", 3, "require-idempotent-ddl"),
        ("00003_schema_and_data.sql", 4, "separate-schema-and-data")]
    (event,) = d.events
    assert event.reason == "LintFindings" and "3 lint finding(s)" in event.message
    assert "00002_not_idempotent.sql:3" in event.message


def test_fail_on_blocks_on_them_and_exclude_lets_the_plan_through():
    i = _inputs()
    blocked = policy.evaluate(i, p.plan(i), _spec(failOn="warning"), annotations={}, old={}, linter=no_squawk).action
    assert isinstance(blocked, p.Refuse) and blocked.reason == "LintFailed"
    assert "00001_no_down.sql:2: warning require-down" in blocked.message and "nothing was applied" in blocked.message
    given = []
    allowed = policy.evaluate(i, p.plan(i), _spec(failOn="warning", exclude=list(rules.RULES)),
                              annotations={}, old={}, linter=lambda s, d, e: given.append(e) or []).action
    assert isinstance(allowed, p.StartJob)


def test_they_are_reported_even_when_squawk_cannot_run():
    def broken(steps, direction, exclude):
        raise policy.lint_mod.LintUnavailable("squawk is not installed")

    i = _inputs()
    d = policy.evaluate(i, p.plan(i), _spec(), annotations={}, old={}, linter=broken)
    assert isinstance(d.action, p.StartJob) and len(d.plan["lint"]) == 3
    assert {e.reason for e in d.events} == {"LintFindings", "LintUnavailable"}


def test_squawk_is_never_given_the_writing_rules_names():
    from schemagate.controller import plan_lint as controller_lint

    if controller_lint.squawk_binary() is None:
        pytest.fail("squawk is not installed: pip install -e . (squawk-cli is a dependency)")
    controller_lint._cache.clear()
    files = [f for f in _inputs().migrations or () if f.version == 2]
    found = controller_lint.lint(files, "up", ["require-idempotent-ddl", "prefer-bigint-over-int"])
    assert all(f.rule != "prefer-bigint-over-int" for f in found)  # squawk ran, with its own exclusion

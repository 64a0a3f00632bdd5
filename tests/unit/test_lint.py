"""squawk over planned statements: lines as in the file, levels, failOn, and the real binary."""

from __future__ import annotations

import pytest

from schemagate.controller import plan_lint as lint
from schemagate.controller.plan_lint import Finding
from schemagate.controller.decide import MigrationFile
from schemagate.migrate.source import load_files

FILE = """-- +goose Up
CREATE TABLE accounts (id bigint PRIMARY KEY);

-- a comment
ALTER TABLE accounts ADD COLUMN email text NOT NULL;

-- +goose Down
ALTER TABLE accounts DROP COLUMN email;
"""


def migration(text: str = FILE, name: str = "00002_email.sql") -> MigrationFile:
    (m,) = load_files({name: text}, env={})
    return MigrationFile(m.version, m.file, m.sha256, m.parsed.has_down, not m.parsed.use_transaction,
                         tuple((s.line, s.sql) for s in m.parsed.up), tuple((s.line, s.sql) for s in m.parsed.down))


def test_script_keeps_each_statement_on_its_line():
    text = lint.script(migration().up)
    lines = text.splitlines()
    assert lines[1].startswith("CREATE TABLE accounts") and lines[4].startswith("ALTER TABLE accounts ADD")


def test_report_lines_become_one_based():
    report = '[{"line": 4, "level": "Warning", "rule_name": "adding-required-field", "message": "x"}]'
    assert lint.parse_report(report, "f.sql") == [Finding("f.sql", 5, "warning", "adding-required-field", "x")]


def test_unreadable_report_is_an_error_not_silence():
    with pytest.raises(lint.LintUnavailable):
        lint.parse_report("panic: oops", "f.sql")


@pytest.mark.parametrize("fail_on, blocked", [("none", 0), ("error", 1), ("warning", 2)])
def test_fail_on(fail_on, blocked):
    found = [Finding("f", 1, "warning", "r", "m"), Finding("f", 2, "error", "syntax-error", "m")]
    assert len(lint.blocking(found, fail_on)) == blocked


def test_real_squawk_finds_the_required_column_on_its_file_line():
    if lint.squawk_binary() is None:
        pytest.fail("squawk is not installed: pip install -e . (squawk-cli is a dependency)")
    lint._cache.clear()
    found = lint.lint([migration()], "up", [])
    assert Finding in {type(f) for f in found}
    required = [f for f in found if f.rule == "adding-required-field"]
    assert required and required[0].line == 5 and required[0].file == "00002_email.sql"
    assert not any(f.rule == "require-lock-timeout" for f in found)  # the Job sets lock_timeout itself
    down = lint.lint([migration()], "down", ["require-statement-timeout"])
    assert [f.rule for f in down] == ["ban-drop-column"] and down[0].line == 8


def test_excluded_rules_are_not_reported():
    if lint.squawk_binary() is None:
        pytest.fail("squawk is not installed: pip install -e . (squawk-cli is a dependency)")
    found = lint.lint([migration()], "up", ["adding-required-field", "require-statement-timeout"])
    assert not any(f.rule in ("adding-required-field", "require-statement-timeout") for f in found)

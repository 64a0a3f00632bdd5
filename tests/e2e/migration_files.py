"""The goose migration files the e2e tests put in their ConfigMaps, in one place: each a {file name: content}
as App.migrations takes it, so a test merges the ones it needs (`{**USERS, **ORDERS}`) and names them as
its versions (`from migration_files import USERS as V1`).

The contents are what the tests' assertions rely on (table names, line numbers, a missing Down section, the
sleeps that keep a Job visibly running): change one only together with the tests that import it.
tests/e2e/test_bad_inputs.py and tests/e2e/test_job_env.py still write their own.
"""

from __future__ import annotations

USERS = {"00001_users.sql": "-- +goose Up\nCREATE TABLE users (id bigint PRIMARY KEY);\n"
                            "-- +goose Down\nDROP TABLE users;\n"}
"""Version 1 of every test: the table users."""

# Version 2: the table orders, in the variants the tests need.
ORDERS = {"00002_orders.sql": "-- +goose Up\nCREATE TABLE orders (id bigint PRIMARY KEY);\n"
                              "-- +goose Down\nDROP TABLE orders;\n"}
ORDERS_WITH_NOTE = {"00002_orders.sql": "-- +goose Up\nCREATE TABLE orders (id bigint PRIMARY KEY, note text);\n"
                                        "-- +goose Down\nDROP TABLE orders;\n"}
"""ORDERS edited: another plan hash, for the same version."""
ORDERS_OF_USERS = {"00002_orders.sql": "-- +goose Up\nCREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint "
                                       "REFERENCES users);\n-- +goose Down\nDROP TABLE orders;\n"}
"""Needs USERS applied first."""
ORDERS_OF_USERS_AFTER_1S = {"00002_orders.sql": "-- +goose Up\nSELECT pg_sleep(1);\nCREATE TABLE orders (id bigint "
                                                "PRIMARY KEY, user_id bigint REFERENCES users);\n-- +goose Down\n"
                                                "DROP TABLE orders;\n"}
"""ORDERS_OF_USERS after a second's sleep: the Job is visibly running while a new pod is decided, whatever the
machine's speed."""
ORDERS_AFTER_2S = {"00002_orders.sql": "-- +goose Up\nSELECT pg_sleep(2);\nCREATE TABLE orders (id bigint PRIMARY "
                                       "KEY);\n-- +goose Down\nDROP TABLE orders;\n"}
ORDERS_AFTER_25S = {"00002_orders.sql": "-- +goose Up\nSELECT pg_sleep(25);\nCREATE TABLE orders (id bigint PRIMARY "
                                        "KEY);\n-- +goose Down\nDROP TABLE orders;\n"}
"""Long enough to kill the operator's leader while its Job runs."""
ORDERS_BROKEN = {"00002_orders.sql": "-- +goose Up\nCREATE TABLE orders (id bigint PRIMARY KEY);\n"
                                     "ALTER TABLE no_such_table ADD COLUMN x int;\n-- +goose Down\nDROP TABLE orders;\n"}
"""Fails on its second statement (42P01, no_such_table): the run is MigrationFailed."""

AUDIT_WITHOUT_DOWN = {"00003_audit.sql": "-- +goose Up\nCREATE TABLE audit (id bigint PRIMARY KEY);\n"}
"""Version 3 with no `-- +goose Down` section (the writing rule require-down)."""
EMAIL_REQUIRED = {"00002_email.sql": "-- +goose Up\n-- existing rows have no email\n"
                                     "ALTER TABLE users ADD COLUMN email text NOT NULL;\n"
                                     "-- +goose Down\nALTER TABLE users DROP COLUMN email;\n"}
"""squawk's adding-required-field (a warning) on line 3 of the file."""
SLOW_FIRST = {"00001_slow.sql": "-- +goose Up\nSELECT pg_sleep(4);\nCREATE TABLE slow (id int);\n"
                                "-- +goose Down\nDROP TABLE slow;\n"}
"""A version 1 that takes four seconds (the table slow)."""
STATEMENT_BEFORE_UP = {"00002_bad.sql": "CREATE TABLE x (id int);\n-- +goose Up\nSELECT 1;\n"}
"""Invalid: a statement on line 1, before any `-- +goose Up`."""

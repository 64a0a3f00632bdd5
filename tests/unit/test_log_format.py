"""--log-format json: one object a line with the fields log pipelines index, and no secret in any of them."""

from __future__ import annotations

import io
import json
import logging

import pytest

from schemagate import logs
from schemagate.controller import main

URL = "postgres://app:hunter2-s3cret@db.shop.svc:5432/app"


def _emit(fmt: str, emit) -> list[str]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.formatter(fmt))
    log = logging.getLogger("schemagate.test.logformat")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        emit(log)
    finally:
        log.removeHandler(handler)
    return out.getvalue().splitlines()


def test_json_lines_carry_time_level_logger_message_and_the_object():
    def emit(log):
        with logs.about("shop", "app"):
            log.warning("%s/%s: %s: %s", "shop", "app", "MigrationFailed", "boom", extra={"reason": "MigrationFailed"})
        log.info("resync done")

    first, second = (json.loads(line) for line in _emit("json", emit))
    assert first["level"] == "WARNING" and first["logger"] == "schemagate.test.logformat"
    assert (first["namespace"], first["name"], first["reason"]) == ("shop", "app", "MigrationFailed")
    assert first["message"] == "shop/app: MigrationFailed: boom" and first["time"].endswith("Z")
    assert (second["namespace"], second["name"], second["reason"]) == (None, None, None)


@pytest.mark.parametrize("fmt", logs.FORMATS)
def test_no_password_reaches_the_log_in_either_format(fmt):
    def emit(log):
        log.error("cannot reach %s", URL)
        try:
            raise RuntimeError(f"connect failed: {URL}")
        except RuntimeError:
            log.exception("reconciling shop/app failed")

    text = "\n".join(_emit(fmt, emit))
    assert "hunter2-s3cret" not in text and "db.shop.svc" in text and "RuntimeError" in text


def test_the_operator_flag_picks_the_format():
    parser = __import__("argparse").ArgumentParser()
    main.add_arguments(parser)
    assert parser.parse_args(["--log-format", "json"]).log_format == "json"
    assert parser.parse_args([]).log_format == "text"
    with pytest.raises(SystemExit):
        parser.parse_args(["--log-format", "xml"])

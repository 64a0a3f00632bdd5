"""The operator's log formats: `text` for people, `json` (one object a line) for log pipelines.

Both go through one redaction: whatever a message or traceback quotes, a password in a URL-looking part
never reaches the log. Which SchemaMigration a line is about comes from `about()` (set around each
reconcile; contextvars follow it into the worker thread) or from `extra={"namespace": …, "migration": …}`.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from schemagate.migrate.dburl import redact

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_about: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("schemagate_about", default=None)


@contextmanager
def about(namespace: str, name: str) -> Iterator[None]:
    token = _about.set((namespace, name))
    try:
        yield
    finally:
        _about.reset(token)


def _clean(text: str) -> str:
    return redact(text, "", env={})


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return _clean(super().format(record))


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, namespace, name, reason (null when unknown); exception when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        where = _about.get()
        namespace = getattr(record, "namespace", None) or (where[0] if where else None)
        name = getattr(record, "migration", None) or (where[1] if where else None)
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
                    .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": _clean(record.getMessage()),
            "namespace": namespace,
            "name": name,
            "reason": getattr(record, "reason", None),
        }
        if record.exc_info:
            doc["exception"] = _clean(self.formatException(record.exc_info))
        elif record.exc_text:
            doc["exception"] = _clean(record.exc_text)
        return json.dumps(doc, ensure_ascii=False, default=str)


def formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return TextFormatter()
    raise ValueError(f"unknown log format {fmt!r}: one of {', '.join(FORMATS)}")

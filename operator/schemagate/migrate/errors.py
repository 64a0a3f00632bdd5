"""The one error type of the migration engine: a reason constant plus what a user needs to find the fault."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class MigrateError(Exception):
    reason: str  # one of schemagate.api.reasons.RUN_FAILURES
    message: str  # one human sentence; never contains a password
    file: str | None = None
    version: int | None = None
    line: int | None = None
    statement: int | None = None  # 1-based number of the statement within its direction
    sqlstate: str | None = None
    details: list[str] = field(default_factory=list)  # further problems of the same kind (e.g. more bad files)

    def __str__(self) -> str:
        return self.message

    def to_json(self) -> dict[str, Any]:
        """Every key always present (null when unknown), so readers need no special cases."""
        return {"reason": self.reason, "message": self.message, "file": self.file, "version": self.version,
                "line": self.line, "statement": self.statement, "sqlstate": self.sqlstate}

"""The fault runs of this session, one row each: what the tests append and the summary prints. A module
of its own so the test module and conftest share one list (a conftest imported by name is a second copy)."""

from __future__ import annotations

from typing import Any

RUNS: list[dict[str, Any]] = []

"""One reasons module: every reason is a named constant with the line that says when it is used, and no
two constants share a value (one word per idea)."""

import ast
from pathlib import Path

from schemagate.api import reasons

SOURCE = Path(reasons.__file__).read_text()


def _constants() -> list[tuple[str, bool]]:
    """(name, followed by a docstring) for each top-level UPPER_CASE assignment."""
    body = ast.parse(SOURCE).body
    out = []
    for node, after in zip(body, [*body[1:], None], strict=True):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name.isupper():
                doc = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) \
                    and isinstance(after.value.value, str) and bool(after.value.value.strip())
                out.append((name, doc))
    return out


def test_every_reason_says_when_it_is_used():
    assert [name for name, doc in _constants() if not doc] == []


def test_no_two_reasons_share_a_value_and_each_is_camel_case():
    values = [getattr(reasons, name) for name, _ in _constants() if isinstance(getattr(reasons, name), str)]
    assert len(values) == len(set(values))
    assert all(v[:1].isupper() and v.isalpha() for v in values)
    assert set(values) == reasons.ALL


def test_the_runner_reports_only_reasons_of_this_module():
    assert set(reasons.RUN_FAILURES) <= reasons.ALL
    assert reasons.INVALID_INPUT <= set(reasons.RUN_FAILURES)

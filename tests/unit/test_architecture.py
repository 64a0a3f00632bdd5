"""The one direction of imports between schemagate's layers (docs/architecture.md), checked on the source:
every `import` and `from ... import`, at the top of a module or inside a function, counts."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "schemagate"

# Lowest first: a module may import its own layer and the layers before it, never one after it.
LAYERS = [
    ("api", ["schemagate.api"]),  # the CRD's types, reasons, conditions: the words everything else uses
    ("kube", ["schemagate.kube"]),  # the Kubernetes client's configuration and API groups
    ("lease", ["schemagate.lease"]),  # the database's Lease, shared by the runner and the operator
    ("migrate", ["schemagate.migrate", "schemagate.verify"]),  # the runner: parse, plan, store, run, verify
    ("controller", ["schemagate.controller", "schemagate.logs"]),  # the operator: read, decide, act, status, gate
]
# Command-line entry points sit above every layer: each wires one command to the layers it needs.
ENTRY_POINTS = {"schemagate.cli", "schemagate.migrate.command", "schemagate.controller.main"}
# The decisions are pure: they take what was read and say what to do, and never talk to an API or a database.
PURE = {"schemagate.controller.decide", "schemagate.controller.gate", "schemagate.controller.fleet",
        "schemagate.controller.drift", "schemagate.controller.approval", "schemagate.controller.allow",
        "schemagate.controller.jobenv", "schemagate.controller.mergepatch", "schemagate.controller.backoff", "schemagate.migrate.envsub",
        "schemagate.migrate.plan", "schemagate.migrate.parser", "schemagate.migrate.rules",
        "schemagate.api.conditions", "schemagate.api.reasons", "schemagate.api.shared"}
IO_PACKAGES = ("kubernetes", "psycopg", "subprocess", "socket", "kopf")


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in sorted(PACKAGE.rglob("*.py")) if p != PACKAGE / "__init__.py"}


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            # `from schemagate.controller import gate` imports the module schemagate.controller.gate
            out.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES)
    return out


def _layer(module: str) -> int | None:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return None


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m not in ENTRY_POINTS))
def test_imports_go_down_the_layers_only(module):
    mine = _layer(module)
    assert mine is not None, f"{module} is in no layer: add it to LAYERS here and to docs/architecture.md"
    upward = sorted(i for i in _imports(MODULES[module])
                    if i.startswith("schemagate.") and i not in ENTRY_POINTS and (_layer(i) or 0) > mine)
    assert upward == [], f"{module} ({LAYERS[mine][0]}) imports a higher layer"
    entry = sorted(i for i in _imports(MODULES[module]) if i in ENTRY_POINTS)
    assert entry == [], f"{module} imports an entry point"


@pytest.mark.parametrize("module", sorted(PURE))
def test_the_decisions_do_no_io(module):
    io = sorted(i for i in _imports(MODULES[module]) if i.split(".")[0] in IO_PACKAGES)
    assert io == [], f"{module} is pure but imports {io}"


def test_no_two_modules_share_a_file_name():
    names = [p.name for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def test_the_docs_name_every_layer():
    doc = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text()
    for name, prefixes in LAYERS:
        assert all(f"`{p}`" in doc for p in prefixes), f"docs/architecture.md does not name layer {name}"


def test_no_two_types_share_a_name():
    """One name for each idea: a class or type alias is defined once in the package."""
    where: dict[str, list[str]] = {}
    for module, path in MODULES.items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                where.setdefault(node.name, []).append(module)
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                    and node.targets[0].id[:1].isupper() and not node.targets[0].id.isupper() \
                    and isinstance(node.value, (ast.Subscript, ast.BinOp)):
                where.setdefault(node.targets[0].id, []).append(module)
    assert {name: mods for name, mods in where.items() if len(mods) > 1} == {}

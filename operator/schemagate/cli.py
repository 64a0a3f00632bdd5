"""`schemagate` command line: one subcommand per module, imported only when used."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each module provides `add_arguments(parser)` and `run(args) -> int`.
SUBCOMMANDS = {
    "migrate": ("schemagate.migrate.command", "run goose-format migrations against PostgreSQL"),
    "verify": ("schemagate.verify", "check that the schema an application needs is in place"),
    "crd": ("schemagate.api.crd",
            "print or write the SchemaMigration and SchemaMigrationSet CustomResourceDefinitions"),
    "operator": ("schemagate.controller.main", "run the Kubernetes operator"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="schemagate", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen subcommand's module is imported, so `migrate` never pays for kopf.
        if name == wanted:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""Time `up` and `status` of N generated migrations: schemagate vs the goose CLI vs `psql -f`, at a distance.

    .venv/bin/python bench/run.py [--sizes 200,1000] [--latencies 0,1] [--repeat 3] [--tools schemagate,goose,psql]

Starts its own throw-away PostgreSQL on 127.0.0.1 (devenv.postgres) and a toxiproxy in front of it
(bench/latency.py), so every tool pays the same delay per round trip: `--latencies` in ms each way
("direct" bypasses the proxy). Gives every measured run a fresh database, checks that each run really
applied everything, prints medians and ratios and writes the raw timings to bench/results/<UTC time>.json.
Every command has a timeout, so the run always ends.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

BENCH = Path(__file__).resolve().parent
# bench/ for its own modules, the repository root for devenv/ (test support, not in the wheel).
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from devenv.postgres import (PostgresServer, PostgresUnavailable,  # noqa: E402
                             find_bindir, running_postgres)

import latency  # noqa: E402
import report  # noqa: E402
import workload  # noqa: E402

TOOLS = ("schemagate", "goose", "psql")
SUBJECT, BASELINES = "schemagate", ["goose", "psql"]


class BenchError(RuntimeError):
    """A tool failed or did not do the work; the message names the tool, size and step."""


@dataclass(frozen=True)
class Tool:
    name: str
    up: list[str]  # argv with {dir}, {url}, {sql} placeholders
    status: list[str] | None  # None: the tool has no notion of applied migrations
    start: list[str]  # does no database work: the fixed cost of starting the process
    tracks_versions: bool


def default_goose() -> str:
    cache = Path(os.environ.get("SCHEMAGATE_CACHE", Path.home() / ".cache" / "schemagate"))
    return os.environ.get("GOOSE_BIN") or str(cache / "goose-v3.27.3" / "goose")


def default_schemagate() -> str:
    beside = Path(sys.executable).parent / "schemagate"
    return str(beside) if beside.exists() else (shutil.which("schemagate") or str(beside))


def make_tools(names: list[str], schemagate: str, goose: str, psql: str) -> list[Tool]:
    available = {
        "schemagate": Tool("schemagate",
                           [schemagate, "migrate", "--dir", "{dir}", "--database-url", "{url}", "up"],
                           [schemagate, "migrate", "--dir", "{dir}", "--database-url", "{url}", "status"],
                           [schemagate, "migrate", "--help"], tracks_versions=True),
        "goose": Tool("goose", [goose, "-dir", "{dir}", "postgres", "{url}", "up"],
                      [goose, "-dir", "{dir}", "postgres", "{url}", "status"], [goose, "--version"],
                      tracks_versions=True),
        # No -1: the script has its own BEGIN/COMMIT around transactional files (CONCURRENTLY cannot be in one).
        "psql": Tool("psql", [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "{url}", "-f", "{sql}"],
                     None, [psql, "--version"], tracks_versions=False),
    }
    tools = []
    for name in names:
        if name not in available:
            raise BenchError(f"unknown tool {name!r}; choose from {', '.join(TOOLS)}")
        tool = available[name]
        if not os.access(tool.up[0], os.X_OK):
            hint = {"schemagate": "run hack/test.sh once (it installs .venv) or use --schemagate",
                    "goose": "run hack/build-goose.sh or set GOOSE_BIN",
                    "psql": "run hack/install-postgres.sh"}[name]
            raise BenchError(f"{name}: {tool.up[0]} is not an executable; {hint}")
        tools.append(tool)
    return tools


def run_timed(argv: list[str], what: str, timeout: float, secret: str) -> float:
    start = time.perf_counter()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{what}: no answer within {timeout:.0f}s") from exc
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:]).replace(secret, "***")
        raise BenchError(f"{what}: exited {proc.returncode}\n{tail}")
    return elapsed


def check_applied(url: str, tool: Tool, migrations: list[workload.Migration], what: str) -> None:
    """The timing counts only if every table and index exists and (for trackers) every version is recorded."""
    size, want_tables = len(migrations), workload.expected_tables(migrations)
    want_indexes = sum(not m.transactional for m in migrations)
    first = workload.first_table(migrations)
    with psycopg.connect(url) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
                              "AND tablename LIKE 'bench\\_%'").fetchone()[0]
        schema = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY(%s)",
                              (list(workload.INITIAL_TABLES),)).fetchone()[0]
        indexes = conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'ix\\_bench\\_%'").fetchone()[0]
        rows = conn.execute(f"SELECT count(*) FROM {first}").fetchone()[0] if first else workload.ROWS_PER_MIGRATION
        versions = None
        if tool.tracks_versions:
            versions = conn.execute("SELECT count(*) FROM goose_db_version WHERE version_id > 0").fetchone()[0]
    found = (tables, schema, indexes, rows, versions)
    if found != (want_tables, len(workload.INITIAL_TABLES), want_indexes, workload.ROWS_PER_MIGRATION,
                 size if tool.tracks_versions else None):
        raise BenchError(f"{what}: expected {want_tables} bench tables, the {len(workload.INITIAL_TABLES)} schema "
                         f"tables, {want_indexes} concurrent indexes and {size} versions; found {tables}, {schema}, "
                         f"{indexes} and {versions} ({rows} rows in {first})")


def drop_database(server: PostgresServer, name: str) -> None:
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def via(url: str, port: int) -> str:
    """`url` through the proxy on loopback: the same database, its host and port replaced."""
    head, tail = url.rsplit("@", 1)
    path = tail.split("/", 1)[1]
    return f"{head}@127.0.0.1:{port}/{path}"


def measure(server: PostgresServer, proxy: latency.Proxy | None, tools: list[Tool], sizes: list[int],
            latencies: list[str], repeat: int, timeout: float, workdir: Path) -> list[report.Timing]:
    timings: list[report.Timing] = []
    for size in sizes:
        migrations = workload.render_all(size)
        mdir = workdir / f"migrations-{size}"
        workload.write_migrations(mdir, migrations)
        sql = workdir / f"all-up-{size}.sql"
        sql.write_text(workload.psql_script(migrations))
        for lat in latencies:
            if proxy is not None and lat != "direct":
                proxy.set_latency(int(lat.removesuffix("ms")))
            for rep in range(repeat):
                # Rotate the order so no tool always runs first (cold caches) or last.
                order = tools[rep % len(tools):] + tools[:rep % len(tools)]
                for tool in order:
                    dbname = f"bench_{tool.name}_{size}_{lat}_{rep}"
                    direct = server.create_database(dbname)
                    url = direct if proxy is None or lat == "direct" else via(direct, proxy.port)
                    subst = {"{dir}": str(mdir), "{url}": url, "{sql}": str(sql)}
                    argv = [subst.get(a, a) for a in tool.up]
                    what = f"{tool.name} up N={size} {lat} #{rep + 1}"
                    seconds = run_timed(argv, what, timeout, server.password)
                    check_applied(direct, tool, migrations, what)
                    timings.append(report.Timing(tool.name, size, lat, "up", rep, seconds))
                    line = f"{what}: {seconds:.3f}s"
                    if tool.status:
                        argv = [subst.get(a, a) for a in tool.status]
                        what = f"{tool.name} status N={size} {lat} #{rep + 1}"
                        seconds = run_timed(argv, what, timeout, server.password)
                        timings.append(report.Timing(tool.name, size, lat, "status", rep, seconds))
                        line += f", status {seconds:.3f}s"
                    seconds = run_timed(tool.start, f"{tool.name} start-up", timeout, server.password)
                    timings.append(report.Timing(tool.name, size, lat, "start", rep, seconds))
                    print(line + f", start-up {seconds:.3f}s", file=sys.stderr, flush=True)
                    drop_database(server, dbname)
    return timings


def environment(server: PostgresServer, tools: list[Tool]) -> dict[str, object]:
    with psycopg.connect(server.url()) as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
    goose = next((t for t in tools if t.name == "goose"), None)
    goose_version = None
    if goose:
        out = subprocess.run([goose.up[0], "--version"], capture_output=True, text=True, timeout=30)
        goose_version = (out.stdout + out.stderr).strip()
    try:
        schemagate_version = importlib.metadata.version("schemagate")
    except importlib.metadata.PackageNotFoundError:
        schemagate_version = None
    return {"postgres": pg_version, "goose": goose_version, "schemagate": schemagate_version,
            "python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
            "postgres_settings": "fsync=off, synchronous_commit=off, full_page_writes=off (throw-away cluster)"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="200,1000", help="comma-separated migration counts (default 200,1000)")
    p.add_argument("--latencies", default="0,1",
                   help="comma-separated ms of delay each way through toxiproxy, or 'direct' (default 0,1)")
    p.add_argument("--repeat", type=int, default=3, help="repetitions per tool, size and latency; the median is kept")
    p.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of " + ",".join(TOOLS))
    p.add_argument("--schemagate", default=default_schemagate(), help="schemagate executable")
    p.add_argument("--goose", default=default_goose(), help="goose executable (default $GOOSE_BIN)")
    p.add_argument("--toxiproxy", default=latency.default_toxiproxy(),
                   help="toxiproxy-server executable (default $TOXIPROXY_BIN, else hack/build-toxiproxy.sh's)")
    p.add_argument("--timeout", type=float, default=600, help="seconds allowed for any one command")
    p.add_argument("--out", type=Path, default=BENCH / "results", help="directory for the JSON result")
    args = p.parse_args(argv)
    try:
        args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        p.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if not args.sizes or min(args.sizes) < 1 or args.repeat < 1:
        p.error("--sizes must be positive integers and --repeat at least 1")
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    args.latencies = [lat.strip() for lat in args.latencies.split(",") if lat.strip()]
    for lat in args.latencies:
        try:
            if lat != "direct" and int(lat) < 0:
                raise ValueError
        except ValueError:
            p.error(f"--latencies: {lat!r} is neither a whole number of ms (toxiproxy's unit) nor 'direct'")
    args.latencies = [lat if lat == "direct" else f"{int(lat)}ms" for lat in args.latencies]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        # Refuse a missing runner before paying for a server start.
        tools = make_tools(args.tools, args.schemagate, args.goose, str(find_bindir() / "psql"))
        proxied = any(lat != "direct" for lat in args.latencies)
        if proxied and not os.access(args.toxiproxy, os.X_OK):
            raise latency.ProxyUnavailable(f"toxiproxy: {args.toxiproxy} is not an executable; run "
                                           "hack/build-toxiproxy.sh (or set TOXIPROXY_BIN)")
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(running_postgres())
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="schemagate-bench-"))
            proxy = stack.enter_context(latency.running_proxy(args.toxiproxy, server.port)) if proxied else None
            env = environment(server, tools)
            env["toxiproxy"] = latency.TOXIPROXY_VERSION if proxied else None
            started = dt.datetime.now(dt.timezone.utc)
            timings = measure(server, proxy, tools, args.sizes, args.latencies, args.repeat, args.timeout, Path(tmp))
    except (BenchError, PostgresUnavailable, latency.ProxyUnavailable) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    names = [t.name for t in tools]
    med = report.medians(timings)
    baselines = [b for b in BASELINES if b in names] if SUBJECT in names else []
    print(f"\nmedian wall-clock of {args.repeat} run(s), fresh database each, PostgreSQL {env['postgres']}, "
          f"{env['cpus']} CPUs (each time includes process start-up; latency is added each way)\n")
    print(report.render_table(med, names, args.sizes, args.latencies, SUBJECT, baselines))
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"{started:%Y%m%dT%H%M%SZ}.json"
    result = {"started_at": started.isoformat(), "sizes": args.sizes, "latencies": args.latencies,
              "repeat": args.repeat,
              "tools": names, "environment": env, **report.to_json(timings, med, SUBJECT, baselines)}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The runner's connection cut mid-file by a link that drops every byte and closes nothing (a toxiproxy
`timeout` toxic with timeout 0, as the fault suite cuts the network between a Job and its database): the
run fails in bounded time, naming the file, instead of waiting forever on both ends.

Kept cut past connection.SILENT_CLIENT_TIMEOUT: removing toxiproxy's timeout toxic closes the connections it
held (its Cleanup), so a shorter cut ends with that close, fix or not. Through the cut nothing the server says
arrives, so the runner reads its close (`server closed the connection unexpectedly`), not its reason."""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from pathlib import Path

import pytest

from devenv import toxiproxy
from migrate_support import mig, query, rows, sg_process, write_dir

pytestmark = pytest.mark.db

SLEEPING = "SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(1)%'"


@pytest.mark.xfail(reason="open: measured 2026 on this machine, the runner was still waiting 75 s into a cut held "
                          "that long; whether the server ended the idle session and its close did not pass the "
                          "toxic, or the session was never idle, is not known yet", strict=False)
def test_a_run_whose_network_is_cut_mid_file_fails_in_bounded_time_saying_so(database_url: str,
                                                                             tmp_path: Path) -> None:
    binary = toxiproxy.default_binary()
    if not os.access(binary, os.X_OK):
        pytest.fail(f"toxiproxy is not at {binary}; run through hack/test.sh (hack/build-toxiproxy.sh)")
    parts = urllib.parse.urlsplit(database_url)
    d = write_dir(tmp_path / "m", {"00001_a.sql": mig("CREATE TABLE a (id int);"),
                                   "00002_b.sql": mig("CREATE TABLE b (id int);\nSELECT pg_sleep(1);\n"
                                                      "CREATE TABLE b2 (id int);")})
    with toxiproxy.running_server(binary) as server:
        proxy = server.proxy("pg", f"{parts.hostname}:{parts.port}")
        userinfo = parts.netloc.rsplit("@", 1)[0]
        proxied = urllib.parse.urlunsplit(parts._replace(netloc=f"{userinfo}@{proxy.host}:{proxy.port}"))
        proc = sg_process(proxied, d, "up")
        try:
            deadline = time.monotonic() + 20
            while not query(database_url, SLEEPING)[0][0]:
                assert time.monotonic() < deadline, "the second file never ran"
                time.sleep(0.05)
            cut = time.monotonic()
            proxy.blackhole()  # the pg_sleep's answer is dropped: the server then waits on a silent client
            # Still cut: the server ends the idle session after 30 s; its FIN passes the toxic (which closes
            # on end of input). Without the server's idle timeouts this waits until the timeout below.
            out, _ = proc.communicate(timeout=75)
            took = time.monotonic() - cut
            proxy.heal()
        finally:
            proc.kill()
    err = json.loads(out)["error"]
    assert (err["reason"], err["file"]) == ("MigrationFailed", "00002_b.sql"), err
    assert "server closed the connection" in err["message"], err["message"]
    assert 25 < took < 60, took  # the server's 30 s (+ a 10 s connect_timeout re-reading the version), not forever
    assert rows(database_url) == [(0, True), (1, True)]  # 00002 rolled back, 00001 kept
    assert query(database_url, "SELECT to_regclass('b') IS NULL") == [(True,)]

"""The operator's log says what it did: health probes (every 10 s, every pod) are not in it."""

from __future__ import annotations

import asyncio
import logging
import socket
import urllib.request

import aiohttp.web
import pytest

from schemagate.controller import main


@pytest.fixture
def operator_logging():
    levels = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    yield main.configure_logging
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


async def _probe_a_health_server() -> None:
    """A request to an aiohttp server set up as kopf's health reporter sets it up (default access log)."""
    async def health(request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response({})

    app = aiohttp.web.Application()
    app.add_routes([aiohttp.web.get("/healthz", health)])
    runner = aiohttp.web.AppRunner(app, handle_signals=False)
    await runner.setup()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    await aiohttp.web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        status = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz").status)
        assert status == 200
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("verbose", [False, True])
def test_health_probes_are_not_logged(operator_logging, caplog, verbose):
    operator_logging(verbose)
    caplog.set_level(logging.DEBUG if verbose else logging.INFO)  # the root level the operator sets
    asyncio.run(_probe_a_health_server())
    assert not [r for r in caplog.records if "/healthz" in r.getMessage()]


def test_the_operator_still_logs_its_own_work_at_info(operator_logging, caplog):
    operator_logging(False)
    caplog.set_level(logging.INFO)
    logging.getLogger("schemagate.controller.reconcile").info("created Job a-g1-x")
    assert [r.getMessage() for r in caplog.records] == ["created Job a-g1-x"]

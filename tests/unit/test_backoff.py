"""kopf's request retries are spread with jitter, so streams refused together do not retry together, and
they never run out, so a list-and-watch stream is never given up."""

from __future__ import annotations

import asyncio
import collections.abc
import itertools
import logging

import aiohttp
import kopf
import pytest

# kopf's request retry loop itself: the test drives it, not a copy of it.
from kopf._cogs.clients import api as kopf_api
from kopf._cogs.clients import errors

from schemagate.controller import backoff, handlers


def first(n: int, delays: collections.abc.Iterable[float]) -> list[float]:
    return list(itertools.islice(delays, n))


def test_each_delay_lies_within_its_jitter_band_and_none_is_fixed():
    for d, base in zip(first(len(backoff.BASE), backoff.Jittered()), backoff.BASE, strict=True):
        assert base <= d <= base * (1 + backoff.JITTER)
    # 200 streams refused at once: their first retries do not all land on one instant (kopf's fixed 1 s).
    firsts = {round(next(iter(backoff.Jittered())), 3) for _ in range(200)}
    assert len(firsts) > 100


def test_the_first_delays_are_kopfs_own_and_none_grows_past_twelve_seconds():
    """kopf's defaults up to its 8 s, so the first retries come no sooner than without us; then 8-12 s, so
    a stream that failed all through an apiserver outage is back within seconds of its return, not 21-31 s
    (and a 429 met then does not cost as much again)."""
    assert kopf.OperatorSettings().networking.error_backoffs == backoff.KOPF
    assert backoff.BASE == backoff.KOPF[:len(backoff.BASE)] and backoff.BASE[-1] == 8
    for _ in range(50):
        delays = first(20, backoff.Jittered())
        assert all(d >= b for d, b in zip(delays, backoff.BASE, strict=False))
        assert max(delays) <= 12
    # What a stream waits after failing through a 35 s outage: kopf alone tried next up to 31 s after it.
    outage, waited = 35.0, 0.0
    for d in backoff.Jittered(uniform=lambda lo, hi: hi):  # the longest draws
        waited += d
        if waited > outage:
            break
    assert waited - outage <= 12


def test_the_delays_never_run_out_and_stay_at_the_last():
    delays = first(1000, backoff.Jittered())
    assert len(delays) == 1000
    last = backoff.BASE[-1]
    assert all(last <= d <= last * (1 + backoff.JITTER) for d in delays[len(backoff.BASE):])


def test_every_request_draws_a_fresh_sequence():
    """kopf iterates error_backoffs once per failing request: a generator would be spent after the first."""
    calls = iter(range(1000))
    jittered = backoff.Jittered(base=(1, 2), jitter=0.5, uniform=lambda lo, hi: lo + next(calls))
    assert first(3, jittered) == [1.0, 3.0, 4.0]
    assert first(2, jittered) == [4.0, 6.0]
    # Not Sized: kopf then counts attempts without a total, and never treats it as a fixed tuple.
    assert not isinstance(jittered, collections.abc.Sized)


@pytest.mark.parametrize("kw", [{"jitter": 1.5}, {"base": ()}])
def test_a_bad_setting_is_refused(kw):
    with pytest.raises(ValueError):
        backoff.Jittered(**kw)


def test_kopf_retries_a_refused_request_past_its_own_eight_delays(monkeypatch):
    """Through kopf's own retry loop: ten refused connections in a row (an apiserver restarting; kopf alone
    escalates after its eighth delay), then success; the delays are ours, with jitter."""
    slept: list[float] = []
    calls = {"n": 0}

    class Session:
        closed = False

        async def request(self, **_):
            calls["n"] += 1
            if calls["n"] <= 10:
                raise aiohttp.ClientConnectionError("connection refused")
            return "response"

    class Context:
        server = "https://apiserver"
        session = Session()

    async def no_check(response):
        return None

    async def fake_sleep(seconds):
        slept.append(seconds)

    settings = kopf.OperatorSettings()
    handlers.configure_kopf(settings)
    monkeypatch.setattr(errors, "check_response", no_check)
    monkeypatch.setattr(kopf_api.asyncio, "sleep", fake_sleep)
    got = asyncio.run(kopf_api.request("get", "/api/v1/pods", settings=settings, context=Context(),
                                       logger=logging.getLogger("test")))
    assert got == "response"
    assert len(slept) == 10
    assert len(set(slept)) == 10


def test_the_operator_gives_kopf_the_jittered_delays():
    """What the startup handler configures: without it every replica retries in lockstep again."""
    settings = kopf.OperatorSettings()
    assert not isinstance(settings.networking.error_backoffs, backoff.Jittered)
    handlers.configure_kopf(settings)
    assert isinstance(settings.networking.error_backoffs, backoff.Jittered)

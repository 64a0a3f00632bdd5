"""kopf's request retries are spread with jitter, so streams refused together do not retry together."""

from __future__ import annotations

import collections.abc

import kopf
import pytest

from schemagate.controller import backoff, handlers


def test_each_delay_lies_within_its_jitter_band_and_none_is_fixed():
    delays = list(backoff.Jittered())
    assert len(delays) == len(backoff.BASE)
    for d, base in zip(delays, backoff.BASE, strict=True):
        assert base <= d <= base * (1 + backoff.JITTER)
    # 200 streams refused at once: their first retries do not all land on one instant (kopf's fixed 1 s).
    firsts = {round(next(iter(backoff.Jittered())), 3) for _ in range(200)}
    assert len(firsts) > 100


def test_every_request_draws_a_fresh_sequence():
    """kopf iterates error_backoffs once per failing request: a generator would be spent after the first."""
    calls = iter(range(1000))
    jittered = backoff.Jittered(base=(1, 2), jitter=0.5, uniform=lambda lo, hi: lo + next(calls))
    assert list(jittered) == [1.0, 3.0]
    assert list(jittered) == [3.0, 5.0]
    # Not Sized: kopf then counts attempts without a total, and never treats it as a fixed tuple.
    assert not isinstance(jittered, collections.abc.Sized)


def test_no_delay_is_shorter_than_kopfs_own():
    """kopf's defaults, so a stream escalates no sooner than it would without us."""
    assert kopf.OperatorSettings().networking.error_backoffs == backoff.BASE
    assert all(d >= b for _ in range(50) for d, b in zip(backoff.Jittered(), backoff.BASE, strict=True))


def test_jitter_out_of_range_is_refused():
    with pytest.raises(ValueError, match="jitter"):
        backoff.Jittered(jitter=1.5)


def test_the_operator_gives_kopf_the_jittered_delays():
    """What the startup handler configures: without it every replica retries in lockstep again."""
    settings = kopf.OperatorSettings()
    assert not isinstance(settings.networking.error_backoffs, backoff.Jittered)
    handlers.configure_kopf(settings)
    assert isinstance(settings.networking.error_backoffs, backoff.Jittered)

"""A watch stream kopf gave up fails liveness, so the kubelet restarts the replica instead of it staying
blind to that resource in that namespace."""

from __future__ import annotations

import asyncio
import inspect

import kopf
import pytest
from kopf._core.intents import causes
from kopf._core.reactor import orchestration

from schemagate.controller import handlers, watchdog


async def forever() -> None:
    await asyncio.Event().wait()


async def broken() -> None:
    await asyncio.sleep(0.01)
    raise RuntimeError("Error in the watch-stream: {'code': 500}")


async def _scenario(*, fail: bool) -> tuple[list[str], int, BaseException | None, int | None]:
    """kopf-named watcher tasks (one running, one cancelled by kopf, maybe one failing) and another task
    that fails; the probe sampled them while they ran, then asked after (handlers.WATCHERS is fresh)."""
    live = asyncio.create_task(forever(), name="watcher for schemamigrations.v1alpha1.schemagate.io@team-a")
    stopped = asyncio.create_task(forever(), name="watcher for pods.v1@team-b")
    other = asyncio.create_task(broken(), name="reconcile ('team-a', 'app')")
    tasks = [stopped, other]
    if fail:
        tasks.append(asyncio.create_task(broken(), name="watcher for jobs.v1.batch@team-c"))
    await asyncio.sleep(0)
    handlers.WATCHERS.sample(asyncio.all_tasks())
    stopped.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    error, answer = None, None
    try:
        answer = await handlers.watch_streams()
    except kopf.PermanentError as e:
        error = e
    dead, alive = handlers.WATCHERS.dead(), handlers.WATCHERS.alive()
    live.cancel()
    await asyncio.gather(live, return_exceptions=True)
    return dead, alive, error, answer


@pytest.fixture(autouse=True)
def fresh_watchers(monkeypatch):
    monkeypatch.setattr(handlers, "WATCHERS", watchdog.Watchers())


def test_a_failed_watcher_fails_the_probe_a_cancelled_one_or_another_task_does_not():
    dead, alive, error, _ = asyncio.run(_scenario(fail=True))
    assert dead == ["jobs.v1.batch@team-c"]
    assert alive == 1
    assert error is not None and "jobs.v1.batch@team-c" in str(error)


def test_the_probe_answers_the_number_of_live_streams_when_none_ended():
    assert asyncio.run(_scenario(fail=False)) == ([], 1, None, 1)


def test_the_sampler_remembers_a_watcher_that_ends_later():
    async def run() -> list[str]:
        w = watchdog.Watchers()
        sampler = asyncio.create_task(w.sample_forever())
        t = asyncio.create_task(broken(), name="watcher for leases.v1.coordination.k8s.io@team-d")
        await asyncio.sleep(0)
        await asyncio.gather(t, return_exceptions=True)
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
        return w.dead()
    assert asyncio.run(run()) == ["leases.v1.coordination.k8s.io@team-d"]


def test_kopf_still_names_its_watcher_tasks_so():
    """The probe finds kopf's watchers by their task name: a kopf upgrade that renames them fails here."""
    assert 'name=f"watcher for {what}"' in inspect.getsource(orchestration)
    assert watchdog.WATCHER_PREFIX == "watcher for "


def test_the_probe_is_registered_with_kopf():
    probes = kopf.get_default_registry()._activities.get_handlers(activity=causes.Activity.PROBE)
    assert [h.id for h in probes] == ["watch_streams"]


@pytest.mark.parametrize("name", ["watcher for x@ns", "watcher for y@None"])
def test_a_running_watcher_is_not_dead(name):
    async def check() -> list[str]:
        w = watchdog.Watchers()
        t = asyncio.create_task(forever(), name=name)
        await asyncio.sleep(0)
        w.sample([t])
        dead = w.dead()
        t.cancel()
        await asyncio.gather(t, return_exceptions=True)
        return dead
    assert asyncio.run(check()) == []

"""What a person sees in the dashboard, in a real browser, while real workers run tasks."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from conveyor import State
from tests.browser.conftest import Stack
from tests.integration import taskapp
from tests.integration.conftest import trace_lines, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(120)]


def test_the_worker_appears_online(stack: Stack, page: Any) -> None:
    page.goto(stack.dashboard.url + "/workers")
    row = page.locator('#workers tr[data-worker="w-main"]')
    row.locator(".badge.ok").wait_for()
    assert row.locator("td").nth(4).inner_text() == "process"
    stack.shot(page, "workers")


def test_an_enqueued_task_turns_success_without_a_reload(stack: Stack, page: Any) -> None:
    page.goto(stack.dashboard.url + "/tasks")
    page.evaluate("window.keptAcrossUpdates = 42")
    result = stack.producer.send_task(taskapp.slow.name, (1.5, "live"))
    row = page.locator(f'#tasks tr[data-id="{result.id}"]')
    row.wait_for()  # listed while queued or running ...
    first_state = row.locator("[data-col=state]").inner_text()
    assert first_state in ("PENDING", "RECEIVED", "STARTED")
    page.wait_for_function(  # ... then it turns SUCCESS in place
        "id => document.querySelector(`#tasks tr[data-id='${id}'] [data-col=state]`)"
        "?.textContent === 'SUCCESS'", arg=result.id, timeout=20_000)
    assert page.evaluate("window.keptAcrossUpdates") == 42  # the page was never reloaded
    assert row.locator("[data-col=worker]").inner_text() == "w-main"
    stack.shot(page, "tasks")


def test_a_failing_task_shows_its_traceback(stack: Stack, page: Any) -> None:
    result = stack.producer.send_task(taskapp.always_fails.name)
    with pytest.raises(ValueError):
        result.get(timeout=20)
    page.goto(f"{stack.dashboard.url}/tasks/{result.id}")
    page.locator("#task-state", has_text="FAILURE").wait_for()
    traceback = page.locator("#traceback").inner_text()
    assert "Traceback (most recent call last)" in traceback
    assert "ValueError: this task always fails" in traceback
    assert page.locator("#retry").is_visible()
    stack.shot(page, "task-failure")


def test_revoke_from_the_page(stack: Stack, page: Any) -> None:
    result = stack.producer.send_task(taskapp.add.name, (1, 2), countdown=600)
    page.goto(f"{stack.dashboard.url}/tasks/{result.id}")
    page.locator("#task-state", has_text="PENDING").wait_for()
    page.click("#revoke")
    assert f"Revoke task {result.id}?" in page.locator("#question").inner_text()
    assert stack.producer.AsyncResult(result.id).status is State.PENDING  # asked, not done
    page.click("#confirm")
    page.locator(".notice", has_text="revoked").wait_for()
    page.locator("#task-state", has_text="REVOKED").wait_for()
    assert stack.producer.AsyncResult(result.id).status is State.REVOKED
    assert not page.locator("#revoke").count()
    stack.shot(page, "task-revoked")


def test_a_worker_killed_with_sigkill_turns_offline(stack: Stack, page: Any) -> None:
    doomed = stack.workers.start("-c", "1", "-n", "w-doomed")
    page.goto(stack.dashboard.url + "/workers")
    row = page.locator('#workers tr[data-worker="w-doomed"]')
    row.locator(".badge.ok").wait_for(timeout=30_000)
    os.killpg(doomed.pid, signal.SIGKILL)  # the supervisor and its child, no goodbye
    doomed.wait()
    row.locator(".badge.off").wait_for(timeout=15_000)  # three missed half-second beats
    assert page.locator('#workers tr[data-worker="w-main"] .badge.ok').count() == 1
    stack.shot(page, "workers-offline")


def test_overview_and_queues_pages(stack: Stack, page: Any) -> None:
    results = [stack.producer.send_task(taskapp.add.name, (i, i)) for i in range(30)]
    results += [stack.producer.send_task(taskapp.always_fails.name) for _ in range(3)]
    stack.producer.send_task(taskapp.add.name, (0, 0), countdown=600)
    for r in results:
        r.get(timeout=30, propagate=False)
    page.goto(stack.dashboard.url + "/")
    assert page.locator("svg.chart").count() == 4
    page.locator('.figure[data-live="workers_online"]', has_text="1").wait_for()
    page.locator("#live-dot.on").wait_for()
    stack.shot(page, "overview")
    page.goto(stack.dashboard.url + "/queues")
    row = page.locator('#queues tr[data-queue="default"]')
    row.wait_for()
    assert int(row.locator("td").nth(3).inner_text()) >= 1  # the delayed one
    stack.shot(page, "queues")
    page.goto(stack.dashboard.url + "/tasks")
    assert page.locator("#tasks tbody tr").count() >= 30
    stack.shot(page, "tasks-busy")


def test_a_queue_only_a_worker_reads_shows_its_depth_and_a_purge_empties_it(
        stack: Stack, page: Any) -> None:
    """The dashboard never sent to "reports": it lists it from the worker's heartbeats (on
    RabbitMQ, which cannot list queues, that is the only way), counts it at the broker, and a
    purge from the page removes what waits there."""
    reader = stack.workers.start("-Q", "reports", "-c", "1", "--prefetch", "1", "-n", "w-reports")
    page.goto(stack.dashboard.url + "/workers")
    page.locator('#workers tr[data-worker="w-reports"] .badge.ok').wait_for(timeout=30_000)
    wait_for(lambda: page.goto(stack.dashboard.url + "/queues") and page.locator(
        '#queues tr[data-queue="reports"]').count(), timeout=10, every=0.5)  # rows come on load
    running = stack.producer.send_task(taskapp.slow.name, (30.0, "r-running"), queue="reports")
    wait_for(lambda: any(line.startswith("r-running ") for line in trace_lines(stack.env, "runs")),
             timeout=30)
    waiting = [stack.producer.send_task(taskapp.add.name, (i, i), queue="reports")
               for i in range(4)]
    page.wait_for_function(
        "() => document.querySelector('#queues tr[data-queue=\"reports\"] td:nth-child(2)')"
        "?.textContent === '4'", timeout=20_000)
    stack.shot(page, "queues-reports")
    page.click('#queues tr[data-queue="reports"] a[href^="/confirm/purge-queue"]')
    assert "reports" in page.locator("#question").inner_text()
    page.click("#confirm")
    page.locator(".notice", has_text="purged 4 waiting").wait_for()
    assert all(stack.producer.AsyncResult(r.id).status is State.PENDING for r in waiting)
    os.killpg(reader.pid, signal.SIGKILL)  # the running task is not waited for
    reader.wait()
    assert stack.producer.AsyncResult(running.id).status is not State.SUCCESS

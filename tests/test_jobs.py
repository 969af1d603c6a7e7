"""Background jobs: the registry, the in-process runner, and the arq worker over real Redis.

The job that matters is the SLA scan: each test checks its effect in the database (a red card
and a 督办 for an overdue ticket), whichever runner ran it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from arq.connections import create_pool
from arq.jobs import Job as ArqJob
from arq.jobs import JobStatus
from click.testing import CliRunner
from sqlalchemy import func, select

from callcenter.cli import cli
from callcenter.db.models import Role
from callcenter.jobs import Job, JobContext, JobRegistry, UnknownJob
from callcenter.jobs.arq_worker import (
    JobQueueUnavailable,
    cron_times,
    enqueue,
    make_worker,
    queue_name,
    redis_settings,
    run_worker,
)
from callcenter.jobs.inprocess import InProcessRunner
from callcenter.services import build_services, job_context, job_registry
from callcenter.settings import Settings
from tests.conftest import REDIS_URL
from tests.ticketing.conftest import OpenTickets, TicketEnv
from tests.ticketing.conftest import open_tickets as open_tickets  # the fixture, shared
from ticketing.models import SlaCard, Supervision
from ticketing.supervision import SCAN_JOB, scan_job

RECEIVED = datetime(2026, 10, 9, 2, 0, tzinfo=UTC)  # Friday 10:00 local; 签收 by Sat 10:00
OVERDUE = "2026-10-10T03:00:00+00:00"


@pytest_asyncio.fixture
async def jenv(open_tickets: OpenTickets, sqlite_url: str) -> AsyncIterator[TicketEnv]:
    async with open_tickets(sqlite_url) as env:
        yield env


async def overdue_ticket(env: TicketEnv, at: datetime = RECEIVED) -> int:
    env.now = at
    desk = await env.actor(Role.AGENT)
    ticket = await env.create(desk)
    env.now = None
    return int(ticket["id"])


async def job_status(settings: Settings, job_id: str) -> JobStatus:
    pool = await create_pool(redis_settings(settings), default_queue_name=queue_name(settings))
    try:
        return await ArqJob(job_id, pool, _queue_name=queue_name(settings)).status()
    finally:
        await pool.aclose()


async def red_cards(env: TicketEnv, tid: int) -> int:
    async with env.services.sessionmaker() as session:
        count = await session.scalar(
            select(func.count(SlaCard.id)).where(SlaCard.ticket_id == tid, SlaCard.kind == "red")
        )
        return int(count or 0)


async def supervisions(env: TicketEnv, tid: int) -> int:
    async with env.services.sessionmaker() as session:
        count = await session.scalar(
            select(func.count(Supervision.id)).where(Supervision.ticket_id == tid)
        )
        return int(count or 0)


def context_of(env: TicketEnv) -> JobContext:
    s = env.services
    return JobContext(s.settings, s.sessionmaker, s.bus)


# --- the registry ------------------------------------------------------------


async def _noop(context: JobContext, kwargs: Mapping[str, Any]) -> str:
    return "ok"


def test_given_a_registry_then_names_are_unique_and_unknown_jobs_are_named() -> None:
    registry = JobRegistry((Job("a", _noop), Job("b", _noop, every=timedelta(minutes=5))))
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(Job("a", _noop))
    with pytest.raises(UnknownJob, match=r"unknown job 'c' \(registered: a, b\)"):
        registry.get("c")
    assert [j.name for j in registry.periodic()] == ["b"]
    with pytest.raises(ValueError, match="lowercase"):
        Job("Bad Name", _noop)
    with pytest.raises(ValueError, match="positive"):
        Job("z", _noop, every=timedelta(0))


@pytest.mark.parametrize(
    ("every", "fields"),
    [
        (timedelta(minutes=1), {"minute": set(range(60)), "second": {0}}),
        (timedelta(minutes=15), {"minute": {0, 15, 30, 45}, "second": {0}}),
        (timedelta(seconds=20), {"second": {0, 20, 40}}),
        (timedelta(hours=6), {"hour": {0, 6, 12, 18}, "minute": {0}, "second": {0}}),
    ],
)
def test_given_an_interval_then_it_becomes_cron_fields(
    every: timedelta, fields: dict[str, set[int]]
) -> None:
    assert cron_times(every) == fields


@pytest.mark.parametrize(
    "every", [timedelta(minutes=7), timedelta(seconds=1.5), timedelta(hours=5)]
)
def test_given_an_interval_that_does_not_divide_evenly_then_refused(every: timedelta) -> None:
    with pytest.raises(ValueError, match="whole divisor"):
        cron_times(every)


def test_given_the_settings_then_the_platform_registry_has_the_scan_every_minute(
    make_settings: Callable[..., Settings],
) -> None:
    registry = job_registry(make_settings(sla_scan_minutes=5))
    assert registry.get(SCAN_JOB).every == timedelta(minutes=5)
    with pytest.raises(Exception, match="CALLCENTER_SLA_SCAN_MINUTES: must divide 60"):
        make_settings(sla_scan_minutes=7)


# --- in-process --------------------------------------------------------------


async def test_given_the_in_process_runner_then_the_scan_runs_periodically(
    jenv: TicketEnv,
) -> None:
    tid = await overdue_ticket(jenv, datetime.now(UTC) - timedelta(days=10))
    registry = JobRegistry((scan_job(timedelta(seconds=0.05)),))
    runner = InProcessRunner(registry, context_of(jenv))
    await runner.start()
    try:
        for _ in range(100):
            if runner.stats[SCAN_JOB].runs >= 2 and await red_cards(jenv, tid):
                break
            await asyncio.sleep(0.05)
    finally:
        await runner.close()
    assert await red_cards(jenv, tid) == 2  # 签收 and 办结 both long past, once each
    assert await supervisions(jenv, tid) == 2
    assert runner.stats[SCAN_JOB].runs >= 2 and runner.stats[SCAN_JOB].failures == 0


async def test_given_a_failing_job_then_it_is_counted_and_the_next_run_still_comes(
    jenv: TicketEnv,
) -> None:
    calls: list[int] = []

    async def flaky(context: JobContext, kwargs: Mapping[str, Any]) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database hiccup")
        return "fine"

    runner = InProcessRunner(
        JobRegistry((Job("flaky", flaky, every=timedelta(seconds=0.02)),)), context_of(jenv)
    )
    await runner.start()
    try:
        for _ in range(100):
            if runner.stats["flaky"].runs:
                break
            await asyncio.sleep(0.02)
    finally:
        await runner.close()
    stats = runner.stats["flaky"]
    assert stats.failures == 1 and stats.runs >= 1 and stats.last_result == "fine"
    with pytest.raises(UnknownJob):
        await runner.run("nope")


async def test_given_a_run_in_progress_when_closing_then_it_finishes_and_sleepers_stop_at_once(
    jenv: TicketEnv,
) -> None:
    """Closing waits for a running job (a write cancelled mid-statement can leak its
    connection) but not for a sleeping one, and cancels a run past the grace period."""
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def slow(context: JobContext, kwargs: Mapping[str, Any]) -> str:
        started.set()
        await release.wait()
        finished.append("slow")
        return "done"

    async def quick(context: JobContext, kwargs: Mapping[str, Any]) -> str:
        return "quick"

    registry = JobRegistry(
        (
            Job("slow", slow, every=timedelta(hours=1)),
            Job("quick", quick, every=timedelta(hours=1)),
        )
    )
    runner = InProcessRunner(registry, context_of(jenv))
    await runner.start()
    await asyncio.wait_for(started.wait(), 5)
    closing = asyncio.create_task(runner.close())
    await asyncio.sleep(0.1)
    assert not closing.done()  # still waiting for the run in progress
    release.set()
    await asyncio.wait_for(closing, 5)  # the hour-long sleep of "quick" did not hold it up
    assert finished == ["slow"] and runner.stats["slow"].runs == 1
    assert runner.stats["quick"].runs == 1


async def test_given_a_run_past_the_grace_period_when_closing_then_it_is_cancelled(
    jenv: TicketEnv, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import callcenter.jobs.inprocess as inprocess

    monkeypatch.setattr(inprocess, "CLOSE_GRACE_S", 0.2)
    started = asyncio.Event()

    async def stuck(context: JobContext, kwargs: Mapping[str, Any]) -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    runner = InProcessRunner(
        JobRegistry((Job("stuck", stuck, every=timedelta(hours=1)),)), context_of(jenv)
    )
    await runner.start()
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(runner.close(), 5)
    assert runner.stats["stuck"].runs == 0
    assert "job:stuck still running after 0.2 s: cancelled" in caplog.text


async def test_given_embedded_mode_then_the_server_runs_the_jobs_itself(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    async with build_services(make_settings(database_url=sqlite_url), jobs=True) as services:
        assert services.jobs is not None
        assert [j.name for j in services.jobs.registry.periodic()] == [SCAN_JOB]
    async with build_services(make_settings(database_url=sqlite_url)) as services:
        assert services.jobs is None  # tests and tools do not scan behind your back
    settings = make_settings(database_url=sqlite_url, redis_url=REDIS_URL)
    async with build_services(settings, jobs=True) as services:
        assert services.jobs is None  # with Redis, `callcenter worker` runs them


# --- arq over Redis ----------------------------------------------------------


@pytest.mark.redis
async def test_given_a_real_redis_when_enqueued_then_the_worker_runs_the_scan(
    jenv: TicketEnv, make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    tid = await overdue_ticket(jenv)
    settings = make_settings(
        database_url=sqlite_url, redis_url=REDIS_URL, redis_prefix=f"t{uuid.uuid4().hex[:8]}"
    )
    registry = job_registry(settings)
    job_id = await enqueue(settings, registry, SCAN_JOB, now=OVERDUE)
    assert job_id and await red_cards(jenv, tid) == 0  # queued, not run

    worker = make_worker(
        settings,
        registry,
        lambda: job_context(settings),
        burst=True,
        handle_signals=False,
        poll_delay=0.05,
    )
    assert [c.name for c in worker.cron_jobs] == [f"cron_{SCAN_JOB}"]
    await asyncio.wait_for(run_worker(worker), timeout=30)

    # The queued run itself must have finished. The cron job may also fire if the wall clock
    # crosses its minute mark during the run; then it scans the same ticket and must add nothing.
    assert worker.jobs_failed == 0 and worker.jobs_complete in (1, 2)
    assert await job_status(settings, job_id) == JobStatus.complete
    assert await red_cards(jenv, tid) == 1 and await supervisions(jenv, tid) == 1


@pytest.mark.redis
async def test_given_an_unreachable_redis_then_a_clear_error_and_nothing_is_lost(
    jenv: TicketEnv,
    make_settings: Callable[..., Settings],
    sqlite_url: str,
    free_port: Callable[[], int],
) -> None:
    tid = await overdue_ticket(jenv)
    port = free_port()
    settings = make_settings(database_url=sqlite_url, redis_url=f"redis://127.0.0.1:{port}/0")
    registry = job_registry(settings)
    with pytest.raises(JobQueueUnavailable) as caught:
        await asyncio.wait_for(enqueue(settings, registry, SCAN_JOB, now=OVERDUE), timeout=10)
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "unreachable" in message and "\n" not in message
    worker = make_worker(settings, registry, lambda: job_context(settings), handle_signals=False)
    with pytest.raises(JobQueueUnavailable, match=f"Redis at 127.0.0.1:{port} is unreachable"):
        await asyncio.wait_for(run_worker(worker), timeout=10)
    with pytest.raises(UnknownJob):
        await enqueue(settings, registry, "teleport")
    assert await red_cards(jenv, tid) == 0
    # Nothing was lost: the deadline is in the database, and the next scan anywhere finds it.
    runner = InProcessRunner(registry, context_of(jenv))
    await runner.run(SCAN_JOB, now=OVERDUE)
    assert await red_cards(jenv, tid) == 1


def test_given_no_redis_when_the_worker_command_runs_then_one_line_and_exit_2(
    sqlite_url: str, tmp_path: Any
) -> None:
    env = {"CALLCENTER_DATABASE_URL": sqlite_url, "CALLCENTER_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(cli, ["worker", "--burst"], env=env)
    assert result.exit_code == 2
    assert "CALLCENTER_REDIS_URL is not set" in result.output
    assert len(result.output.strip().splitlines()) == 1

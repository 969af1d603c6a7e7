"""Production: the jobs run in ``callcenter worker`` processes, an arq worker over Redis.

Periodic jobs become arq cron jobs (arq makes each cron run unique across workers, so two
workers do not both scan the same minute; the jobs are idempotent anyway). Anything can be
enqueued by name with :func:`enqueue`. Redis only carries the queue: a job's effect is in the
database, and a job lost with Redis is simply done again by the next cron run.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from datetime import timedelta
from typing import Any

from arq import Worker, create_pool, cron
from arq.connections import RedisSettings
from arq.cron import CronJob
from arq.worker import Function, func
from redis.exceptions import RedisError

from callcenter.bus.redis import describe, redact_url
from callcenter.jobs.registry import Job, JobContext, JobRegistry
from callcenter.settings import Settings

ContextFactory = Callable[[], AbstractAsyncContextManager[JobContext]]


class JobQueueUnavailable(Exception):
    """The job queue (Redis) cannot be used; ``str()`` is one line naming it and the cause."""


def queue_name(settings: Settings) -> str:
    return f"{settings.redis_prefix}:jobs"


def redis_settings(settings: Settings) -> RedisSettings:
    """arq's connection settings, failing fast: no silent retry loop at startup."""
    if not settings.redis_url:
        raise JobQueueUnavailable(
            "job queue: CALLCENTER_REDIS_URL is not set (embedded mode runs jobs inside the "
            "server; the worker needs Redis)"
        )
    try:
        base = RedisSettings.from_dsn(settings.redis_url)
    except (ValueError, RuntimeError) as exc:
        raise JobQueueUnavailable(f"job queue: bad CALLCENTER_REDIS_URL: {exc}") from None
    return dataclasses.replace(base, conn_retries=0, conn_timeout=2)


def cron_times(every: timedelta) -> dict[str, set[int]]:
    """``every`` as arq cron fields; it must divide a minute, an hour or a day evenly."""
    seconds = every.total_seconds()
    whole = int(seconds)
    if whole == seconds and whole > 0:
        if whole < 60 and 60 % whole == 0:
            return {"second": set(range(0, 60, whole))}
        minutes, hours = whole // 60, whole // 3600
        if whole % 60 == 0 and whole <= 3600 and 60 % minutes == 0:
            return {"minute": set(range(0, 60, minutes)), "second": {0}}
        if whole % 3600 == 0 and 24 % hours == 0:
            return {"hour": set(range(0, 24, hours)), "minute": {0}, "second": {0}}
    raise ValueError(
        f"cannot run every {every} as a cron job: use a whole divisor of a minute, an hour or a day"
    )


def _coroutine(job: Job) -> Any:
    async def call(ctx: dict[str, Any], **kwargs: Any) -> str:
        context: JobContext = ctx["callcenter"]
        return await job.run(context, kwargs)

    call.__qualname__ = call.__name__ = job.name
    return call


def make_worker(
    settings: Settings,
    registry: JobRegistry,
    context: ContextFactory,
    *,
    burst: bool = False,
    handle_signals: bool = True,
    poll_delay: float = 0.5,
) -> Worker:
    """An arq worker running every registered job, periodic ones as cron jobs."""
    functions: list[Function] = [func(_coroutine(job), name=job.name) for job in registry]
    crons: list[CronJob] = [
        cron(_coroutine(job), name=f"cron_{job.name}", **cron_times(job.every))  # type: ignore[arg-type]
        for job in registry.periodic()
        if job.every is not None
    ]

    async def startup(ctx: dict[str, Any]) -> None:
        stack = AsyncExitStack()
        ctx["callcenter"] = await stack.enter_async_context(context())
        ctx["callcenter_stack"] = stack

    async def shutdown(ctx: dict[str, Any]) -> None:
        stack: AsyncExitStack | None = ctx.get("callcenter_stack")
        if stack is not None:
            await stack.aclose()

    return Worker(
        functions,
        queue_name=queue_name(settings),
        cron_jobs=crons,
        redis_settings=redis_settings(settings),
        burst=burst,
        handle_signals=handle_signals,
        poll_delay=poll_delay,
        on_startup=startup,
        on_shutdown=shutdown,
    )


async def run_worker(worker: Worker) -> None:
    """Run until stopped (or, in burst mode, until the queue is empty)."""
    try:
        await worker.main()
    except (OSError, RedisError) as exc:
        raise JobQueueUnavailable(_unreachable(worker, exc)) from None
    finally:
        with warnings.catch_warnings():
            # arq 0.28 closes its pool with redis-py's deprecated close(); harmless.
            warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
            await worker.close()


def _unreachable(worker: Worker, exc: BaseException) -> str:
    settings = worker.redis_settings
    where = f"{settings.host}:{settings.port}" if settings else "Redis"
    return f"job queue: Redis at {where} is unreachable: {describe(exc)}"


async def enqueue(settings: Settings, registry: JobRegistry, name: str, **kwargs: Any) -> str:
    """Put one run of job ``name`` on the queue; returns the arq job id.

    ``UnknownJob`` before anything is sent; ``JobQueueUnavailable`` (one line) when Redis
    cannot take it — then nothing was queued and the caller still holds the request.
    """
    registry.get(name)
    target = redact_url(settings.redis_url or "")
    try:
        pool = await create_pool(redis_settings(settings), default_queue_name=queue_name(settings))
    except (OSError, RedisError) as exc:
        raise JobQueueUnavailable(
            f"job queue: Redis at {target} is unreachable: {describe(exc)}"
        ) from None
    try:
        job = await pool.enqueue_job(name, **kwargs)
    except (OSError, RedisError) as exc:
        raise JobQueueUnavailable(f"job queue: Redis at {target} failed: {describe(exc)}") from None
    finally:
        await pool.aclose()
    if job is None:  # arq returns None only for a duplicate explicit job id, which we never set
        raise JobQueueUnavailable(f"job queue: {name} was not queued")
    return job.job_id

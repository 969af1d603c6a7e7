"""Embedded mode: periodic jobs as asyncio tasks inside the server process.

One task per periodic job: run, then sleep ``every``; a failing run is logged and counted and
the next one comes on time (a bad minute must not stop supervision for the day). Closing
lets a run in progress finish (``CLOSE_GRACE_S`` at most) before cancelling: a database
write cancelled mid-statement can leave its connection unclosed, and a cancelled run would
roll back anyway, so waiting loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from callcenter.aio import sleep_unless
from callcenter.db.base import utcnow
from callcenter.jobs.registry import Job, JobContext, JobRegistry

log = logging.getLogger(__name__)

CLOSE_GRACE_S = 10.0


@dataclass(slots=True)
class JobStats:
    runs: int = 0
    failures: int = 0
    last_at: datetime | None = None
    last_result: str | None = None
    last_error: str | None = None


@dataclass(slots=True)
class InProcessRunner:
    registry: JobRegistry
    context: JobContext
    run_at_start: bool = True
    stats: dict[str, JobStats] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        if self._tasks:
            raise RuntimeError("the job runner is already started")
        for job in self.registry.periodic():
            self.stats.setdefault(job.name, JobStats())
            task = asyncio.create_task(self._loop(job), name=f"job:{job.name}")
            self._tasks.append(task)
        names = ", ".join(j.name for j in self.registry.periodic()) or "none"
        log.info("background jobs in-process: %s", names)

    async def close(self) -> None:
        """Stop the loops: sleeping ones at once, a run in progress when it ends (or after
        ``CLOSE_GRACE_S``, logged, by cancelling it)."""
        tasks, self._tasks = self._tasks, []
        self._stopping.set()
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=CLOSE_GRACE_S)
        for task in late:
            log.error(
                "background job %s still running after %g s: cancelled",
                task.get_name(),
                CLOSE_GRACE_S,
            )
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def run(self, name: str, **kwargs: Any) -> str:
        """Run one job now and return its summary (errors propagate to the caller)."""
        return await self._run(self.registry.get(name), kwargs)

    async def _loop(self, job: Job) -> None:
        assert job.every is not None
        delay = job.every.total_seconds()
        if not self.run_at_start and await sleep_unless(self._stopping, delay):
            return
        while not self._stopping.is_set():
            try:
                await self._run(job, {})
            except Exception:  # logged and counted; the next run comes on time
                log.exception("background job %s failed", job.name)
            if await sleep_unless(self._stopping, delay):
                return

    async def _run(self, job: Job, kwargs: Mapping[str, Any]) -> str:
        stats = self.stats.setdefault(job.name, JobStats())
        stats.last_at = utcnow()
        try:
            result = await job.run(self.context, kwargs)
        except Exception as exc:
            stats.failures += 1
            stats.last_error = f"{type(exc).__name__}: {exc}"
            raise
        stats.runs += 1
        stats.last_result, stats.last_error = result, None
        log.debug("background job %s: %s", job.name, result)
        return result

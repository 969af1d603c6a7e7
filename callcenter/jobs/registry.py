"""What a background job is and the one table of them (no scheduling here)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.bus import EventBus
from callcenter.settings import Settings

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a job may use: the same resources in the server and in a worker process."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    bus: EventBus


JobFn = Callable[[JobContext, Mapping[str, Any]], Awaitable[str]]
"""A job: the context and its keyword arguments (JSON-able) → a one-line summary for logs."""


class UnknownJob(LookupError):
    """No job by that name is registered."""


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    run: JobFn
    every: timedelta | None = None
    """Run periodically (a cron job in the worker); ``None``: only when enqueued."""
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"job name {self.name!r}: lowercase letters, digits and _ only")
        if self.every is not None and self.every <= timedelta(0):
            raise ValueError(f"job {self.name}: every must be positive, got {self.every}")


class JobRegistry:
    def __init__(self, jobs: tuple[Job, ...] = ()) -> None:
        self._jobs: dict[str, Job] = {}
        for job in jobs:
            self.register(job)

    def register(self, job: Job) -> Job:
        if job.name in self._jobs:
            raise ValueError(f"job {job.name!r} is registered twice")
        self._jobs[job.name] = job
        return job

    def get(self, name: str) -> Job:
        job = self._jobs.get(name)
        if job is None:
            known = ", ".join(sorted(self._jobs)) or "none"
            raise UnknownJob(f"unknown job {name!r} (registered: {known})")
        return job

    def periodic(self) -> list[Job]:
        return [job for job in self._jobs.values() if job.every is not None]

    def __iter__(self) -> Iterator[Job]:
        return iter(list(self._jobs.values()))

    def __len__(self) -> int:
        return len(self._jobs)

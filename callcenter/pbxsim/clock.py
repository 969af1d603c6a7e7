"""Virtual time for the simulator: one clock for every call, so a seed gives one event order.

Why not plain ``asyncio.sleep``: with dozens of concurrent callers, the order in which their
timers fire (and so the order of AMI events) would depend on scheduling jitter, and tests could
not compare two runs.  Here every simulated process runs *one at a time*: a process holds the
"baton" from the moment it is woken until it sleeps again or ends; the driver then wakes the
process with the earliest wake-up time (ties: first scheduled first).  Time is virtual: it jumps
to each wake-up, and ``speed`` only decides how long the driver waits in real time before
jumping (``speed=50``: one simulated minute in 1.2 s; ``speed=None``: no waiting at all).

Code outside the simulated processes (AMI action handlers) may read :meth:`SimClock.now`
at any time and may :meth:`SimClock.spawn` processes or :meth:`SimClock.wake` a sleeping one
(a ``Hangup`` action interrupting a call); it never runs under the baton itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SimClock"]

log = logging.getLogger(__name__)

_RESYNC_AFTER_S = 1.0  # fallen this far behind real time: stop trying to catch up


@dataclass(order=True)
class _Wakeup:
    at: float
    seq: int
    future: asyncio.Future[None] = field(compare=False)
    task: asyncio.Task[None] | None = field(compare=False, default=None)
    cancelled: bool = field(compare=False, default=False)


class SimClock:
    """Deterministic virtual clock and scheduler for simulated processes.

    ``start`` is the epoch the virtual time starts at (fixed in tests so Uniqueids repeat),
    ``speed`` the number of simulated seconds per real second, or None for "as fast as the
    event loop goes".
    """

    def __init__(self, *, start: float | None = None, speed: float | None = 1.0) -> None:
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be positive or None, not {speed}")
        self.speed = speed
        self._now = time.time() if start is None else float(start)
        self._heap: list[_Wakeup] = []
        self._seq = itertools.count()
        self._holders: set[asyncio.Task[Any]] = set()
        self._sleeping: dict[asyncio.Task[Any], _Wakeup] = {}
        self._paused = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle: asyncio.Event | None = None
        self._changed: asyncio.Event | None = None
        self._driver: asyncio.Task[None] | None = None
        self._anchor = (time.monotonic(), self._now)

    # ------------------------------------------------------------------ time

    def now(self) -> float:
        """Virtual epoch seconds; between wake-ups it advances with real time (paced mode)."""
        if self.speed is None or self._holders or self._driver is None or self._paused:
            return self._now
        real0, sim0 = self._anchor
        guess = sim0 + (time.monotonic() - real0) * self.speed
        upper = self._heap[0].at if self._heap else guess
        return max(self._now, min(guess, upper))

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the driver (idempotent); needs a running event loop."""
        if self._driver is not None:
            return
        self._idle, self._changed = asyncio.Event(), asyncio.Event()
        if not self._holders:
            self._idle.set()
        self._anchor = (time.monotonic(), self._now)
        self._driver = asyncio.create_task(self._drive(), name="pbxsim-clock")

    async def stop(self) -> None:
        """Cancel every process and the driver, and wait for them."""
        tasks = [*self._tasks, *([self._driver] if self._driver else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._driver = None
        self._heap.clear()
        self._holders.clear()
        self._sleeping.clear()

    async def pause(self) -> None:
        """Freeze simulated time once the running processes have yielded.

        Tests use it to compare the platform's view with a PBX that stands still.
        """
        if not self._paused:
            self._now = self.now()
            self._paused = True
        if self._idle is not None:
            await self._idle.wait()

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self._anchor = (time.monotonic(), self._now)
            if self._changed is not None:
                self._changed.set()

    @property
    def running(self) -> bool:
        return self._driver is not None

    # ------------------------------------------------------------------ processes

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run ``coro`` as a simulated process, first woken at the current virtual time."""
        self.start()
        wakeup = self._push(self.now())
        task = asyncio.create_task(self._run(wakeup, coro), name=name)
        wakeup.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # A task cancelled before its first step never runs ``_run``: close ``coro`` so it
        # does not end as a "coroutine was never awaited" warning (a no-op once it ran).
        task.add_done_callback(lambda _: coro.close())
        return task

    async def sleep(self, seconds: float) -> None:
        """Inside a process: give up the baton for ``seconds`` of virtual time (or until woken)."""
        task = asyncio.current_task()
        if task is None or task not in self._holders:
            raise RuntimeError("SimClock.sleep() called outside a process of this clock")
        wakeup = self._push(self._now + max(0.0, seconds), task)
        self._sleeping[task] = wakeup
        self._release(task)
        try:
            await wakeup.future
        finally:
            self._sleeping.pop(task, None)

    def wake(self, task: asyncio.Task[Any]) -> bool:
        """End a process's :meth:`sleep` early (at the current virtual time).  False if awake."""
        wakeup = self._sleeping.get(task)
        if wakeup is None or wakeup.cancelled or wakeup.future.done():
            return False
        wakeup.cancelled = True
        self._sleeping[task] = self._push(self.now(), task, wakeup.future)
        return True

    # ------------------------------------------------------------------ internals

    def _push(
        self,
        at: float,
        task: asyncio.Task[Any] | None = None,
        future: asyncio.Future[None] | None = None,
    ) -> _Wakeup:
        fut = future if future is not None else asyncio.get_running_loop().create_future()
        wakeup = _Wakeup(at, next(self._seq), fut, task)
        heapq.heappush(self._heap, wakeup)
        if self._changed is not None:
            self._changed.set()
        return wakeup

    def _release(self, task: asyncio.Task[Any]) -> None:
        self._holders.discard(task)
        if not self._holders and self._idle is not None:
            self._idle.set()

    async def _run(self, wakeup: _Wakeup, coro: Coroutine[Any, Any, None]) -> None:
        await wakeup.future
        task = asyncio.current_task()
        try:
            await coro
        except Exception:
            log.exception("pbxsim: simulated process %s failed", task.get_name() if task else "?")
        finally:
            if task is not None:
                self._release(task)

    def _next(self) -> _Wakeup | None:
        while self._heap and (self._heap[0].cancelled or self._heap[0].future.done()):
            heapq.heappop(self._heap)
        return self._heap[0] if self._heap else None

    def _delay(self, at: float) -> float:
        if self.speed is None:
            return 0.0
        real0, sim0 = self._anchor
        delay = real0 + (at - sim0) / self.speed - time.monotonic()
        if delay < -_RESYNC_AFTER_S:
            self._anchor = (time.monotonic(), max(self._now, at))
            return 0.0
        return delay

    async def _drive(self) -> None:
        assert self._idle is not None and self._changed is not None
        while True:
            await self._idle.wait()
            if self._paused:
                self._changed.clear()
                await self._changed.wait()
                continue
            wakeup = self._next()
            delay = self._delay(wakeup.at) if wakeup is not None else None
            if wakeup is None or (delay is not None and delay > 0):
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), delay)
                continue
            heapq.heappop(self._heap)
            self._now = max(self._now, wakeup.at)
            if wakeup.task is not None:
                self._holders.add(wakeup.task)
                self._idle.clear()
            wakeup.future.set_result(None)
            if self.speed is None:
                await asyncio.sleep(0)  # let the network breathe between bursts

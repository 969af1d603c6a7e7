"""The simulator's virtual clock: one process at a time, in wake-up order, interruptible."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from callcenter.pbxsim.clock import SimClock


async def test_processes_run_in_virtual_time_order() -> None:
    clock = SimClock(start=1000.0, speed=None)
    log: list[tuple[str, float]] = []

    async def proc(name: str, gaps: list[float]) -> None:
        for gap in gaps:
            await clock.sleep(gap)
            log.append((name, clock.now()))

    tasks = [clock.spawn(proc("a", [3, 3]), name="a"), clock.spawn(proc("b", [2, 2, 2]), name="b")]
    await asyncio.gather(*tasks)
    await clock.stop()
    assert log == [
        ("b", 1002.0),
        ("a", 1003.0),
        ("b", 1004.0),
        ("a", 1006.0),  # same time as b's third wake-up: scheduled first, runs first
        ("b", 1006.0),
    ]


async def test_wake_ends_a_sleep_early() -> None:
    clock = SimClock(start=0.0, speed=1.0)
    woke_at: list[float] = []

    async def sleeper() -> None:
        await clock.sleep(3600)
        woke_at.append(clock.now())

    task = clock.spawn(sleeper(), name="sleeper")
    await asyncio.sleep(0.05)
    assert clock.wake(task)
    await asyncio.wait_for(task, 1)
    await clock.stop()
    assert woke_at and woke_at[0] < 1.0


async def test_sleep_outside_a_process_is_refused() -> None:
    clock = SimClock(speed=None)
    with pytest.raises(RuntimeError):
        await clock.sleep(1)


async def test_a_failing_process_is_logged_and_the_clock_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = SimClock(start=0.0, speed=None)

    async def broken() -> None:
        await clock.sleep(1)
        raise ValueError("boom")

    async def fine() -> None:
        await clock.sleep(2)

    with caplog.at_level(logging.ERROR, logger="callcenter.pbxsim.clock"):
        await asyncio.gather(clock.spawn(broken(), name="broken"), clock.spawn(fine(), name="ok"))
    await clock.stop()
    assert clock.now() == 2.0
    assert "broken" in caplog.text and "boom" in caplog.text


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError, match="speed"):
        SimClock(speed=0)


async def test_stopping_before_a_process_ran_leaves_no_unawaited_coroutine() -> None:
    """filterwarnings=error turns a never-awaited coroutine into a failure."""
    clock = SimClock(start=0.0, speed=None)

    async def never() -> None:
        await clock.sleep(1)

    clock.spawn(never(), name="never")
    await clock.stop()
    gc.collect()  # finalize the coroutine now, inside this test

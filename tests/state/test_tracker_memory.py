"""The tracker's ended-call memory is a bounded window, and "today" rolls at local midnight
(the day boundary is cached as a float, so it must be right on DST days too)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from callcenter.state import LiveAgent, LiveCall, Regions
from callcenter.state.tracker import ENDED_MEMORY, Tracker

SHANGHAI = ZoneInfo("Asia/Shanghai")


def call(linkedid: str) -> LiveCall:
    return LiveCall(
        node="n",
        linkedid=linkedid,
        uniqueid=linkedid,
        caller_number=None,
        caller_name=None,
        caller_region_code=None,
        region_code="330000",
        state="ivr",
        state_since=0.0,
        offered_at=0.0,
    )


def test_given_more_ended_calls_than_memory_then_only_the_newest_are_remembered(
    regions: Regions,
) -> None:
    tracker = Tracker(regions, tz=SHANGHAI, memory=2)
    tracker.begin(1_795_254_000.0)
    for linkedid in ("1.1", "1.2", "1.3"):
        tracker.put_call(call(linkedid))
        tracker.end_call(tracker.calls[f"n|{linkedid}"])
    tracker.commit()
    assert [tracker.is_ended(f"n|1.{i}") for i in (1, 2, 3)] == [False, True, True]
    assert ENDED_MEMORY >= 1000


def seat(answered: int) -> LiveAgent:
    return LiveAgent(
        node="n",
        interface="PJSIP/8001",
        member_name=None,
        extension="8001",
        region_code="330000",
        state="ready",
        state_since=0.0,
        answered_today=answered,
    )


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        ("Asia/Shanghai", "2026-11-21"),
        ("America/Santiago", "2022-09-10"),  # the next midnight does not exist (clocks go to 1:00)
        ("America/Havana", "2022-11-05"),  # the next midnight happens twice (1:00 goes to 0:00)
    ],
)
def test_given_events_around_local_midnight_then_counters_reset_once_per_day(
    regions: Regions, zone: str, day: str
) -> None:
    tz = ZoneInfo(zone)
    evening = datetime.fromisoformat(day).replace(hour=23, tzinfo=tz).timestamp()
    next_day = datetime.fromisoformat(day).date() + timedelta(days=1)
    first_instant = next(
        t
        for t in range(int(evening), int(evening) + 4 * 3600)
        if datetime.fromtimestamp(t, tz).date() == next_day
    )
    tracker = Tracker(regions, tz=tz)

    def at(now: float) -> int:
        tracker.begin(now)
        tracker.commit()
        return tracker.agents["n|PJSIP/8001"].answered_today

    tracker.begin(evening)
    tracker.put_agent(seat(answered=3))
    tracker.commit()
    assert at(first_instant - 0.5) == 3
    assert at(first_instant) == 0
    tracker.put_agent(seat(answered=1))
    assert at(first_instant - 60) == 1  # a late event of yesterday does not roll back
    assert at(first_instant + 22 * 3600) == 1
    assert at(first_instant + 25 * 3600) == 0

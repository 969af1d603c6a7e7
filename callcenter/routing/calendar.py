"""Business hours on the official working-day calendar (``chinesecalendar``).

City seats are staffed on official working days only: statutory holidays are closed even on a
weekday, and make-up working days (调休) are open even on a Saturday or Sunday. Outside these
hours calls go to the provincial duty queue. ``chinesecalendar`` only knows the years the State
Council has published; beyond them we fall back to Monday–Friday (logged once per year) rather
than refusing calls.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

import chinese_calendar

log = logging.getLogger(__name__)

SHANGHAI = ZoneInfo("Asia/Shanghai")
MINUTES_PER_DAY = 24 * 60

_warned_years: set[int] = set()


@dataclass(frozen=True, slots=True)
class Period:
    """One opening period in minutes since local midnight; ``end`` is exclusive (max 1440)."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end <= MINUTES_PER_DAY:
            raise ValueError(
                f"invalid period {self.start}-{self.end}: need 0 <= start < end <= 1440"
            )

    def contains(self, minute: int) -> bool:
        return self.start <= minute < self.end


def _default_periods() -> tuple[Period, ...]:
    return (Period(8 * 60 + 30, 17 * 60 + 30),)


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Opening periods on working days. Default 08:30–17:30, staffed through lunch."""

    periods: tuple[Period, ...] = field(default_factory=_default_periods)


DEFAULT_HOURS = BusinessHours()


def _weekday_fallback(day: date) -> bool:
    if day.year not in _warned_years:
        _warned_years.add(day.year)
        log.warning(
            "chinesecalendar has no data for %d: treating Monday-Friday as working days "
            "(upgrade chinesecalendar once the State Council publishes the holidays)",
            day.year,
        )
    return day.weekday() < 5


@lru_cache(maxsize=4096)
def is_working_day(day: date) -> bool:
    """Official working day, including make-up days; Mon–Fri for years the library lacks."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return _weekday_fallback(day)


def local_time(when: datetime, tz: tzinfo = SHANGHAI) -> datetime:
    """``when`` in the hotline's time zone; a naive datetime is a bug, so it is refused."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("naive datetime: pass a timezone-aware datetime")
    return when.astimezone(tz)


def is_business_time(
    when: datetime, hours: BusinessHours = DEFAULT_HOURS, tz: tzinfo = SHANGHAI
) -> bool:
    """True when city seats are open at ``when`` (aware) in ``tz``."""
    local = local_time(when, tz)
    if not is_working_day(local.date()):
        return False
    minute = local.hour * 60 + local.minute
    return any(period.contains(minute) for period in hours.periods)

"""Business hours on the real official calendar (chinesecalendar data, no mocks)."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

import pytest

from callcenter.routing.calendar import (
    BusinessHours,
    Period,
    is_business_time,
    is_working_day,
)
from tests.routing import WORKDAY_MORNING, at


def test_given_a_weekday_morning_then_business_time() -> None:
    assert is_business_time(WORKDAY_MORNING)


@pytest.mark.parametrize(
    ("hour", "minute", "open_"),
    [
        (8, 29, False),
        (8, 30, True),
        (12, 15, True),
        (17, 29, True),
        (17, 30, False),
        (20, 0, False),
    ],
)
def test_given_a_working_day_then_open_from_0830_until_1730(
    hour: int, minute: int, open_: bool
) -> None:
    assert is_business_time(at(2026, 11, 23, hour, minute)) is open_


def test_given_national_day_on_a_thursday_then_closed() -> None:
    assert date(2026, 10, 1).weekday() == 3
    assert not is_working_day(date(2026, 10, 1))
    assert not is_business_time(at(2026, 10, 1, 10))


@pytest.mark.parametrize("day", [date(2026, 10, 10), date(2025, 2, 8), date(2026, 2, 14)])
def test_given_a_make_up_saturday_then_business_time(day: date) -> None:
    """调休: Saturdays the State Council declared working days (chinesecalendar 2025/2026 data)."""
    assert day.weekday() == 5
    assert is_working_day(day)
    assert is_business_time(at(day.year, day.month, day.day, 10))


def test_given_an_ordinary_saturday_then_closed() -> None:
    assert not is_business_time(at(2026, 11, 21, 10))


def test_given_a_utc_time_then_it_is_judged_in_shanghai_time() -> None:
    # 02:00 UTC is 10:00 in Shanghai; 10:00 UTC is 18:00 there (closed).
    assert is_business_time(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    assert not is_business_time(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))


def test_given_a_lunch_break_then_closed_at_noon() -> None:
    hours = BusinessHours((Period(8 * 60 + 30, 12 * 60), Period(13 * 60 + 30, 17 * 60 + 30)))
    assert is_business_time(at(2026, 11, 23, 11, 59), hours)
    assert not is_business_time(at(2026, 11, 23, 12, 30), hours)
    assert is_business_time(at(2026, 11, 23, 13, 30), hours)


def test_given_a_naive_datetime_then_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        is_business_time(datetime(2026, 11, 23, 10, 0))  # naive on purpose


def test_given_an_invalid_period_then_refused() -> None:
    with pytest.raises(ValueError, match="start < end"):
        Period(600, 600)


def test_given_a_year_beyond_the_calendar_data_then_monday_to_friday_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="callcenter.routing.calendar")
    year = 2091  # far beyond any published calendar; used by no other test
    assert is_working_day(date(year, 1, 5))  # a Friday
    assert not is_working_day(date(year, 1, 6))  # Saturday
    assert is_business_time(at(year, 1, 8, 10))  # Monday
    warnings = [r for r in caplog.records if str(year) in r.getMessage()]
    assert len(warnings) == 1

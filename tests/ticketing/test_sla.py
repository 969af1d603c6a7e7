"""SLA deadlines on the official calendar: holidays, make-up workdays, emergencies, green channel.

2026 facts used (chinesecalendar): National Day holiday 10-01 (Thu) … 10-07 (Wed), 10-08 (Thu)
is a working day and Saturday 10-10 a make-up working day (调休); Mid-Autumn holiday 09-25 …
09-27 with Sunday 09-20 a make-up working day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.routing.calendar import SHANGHAI, is_working_day
from ticketing.catalogue import Category, Urgency
from ticketing.sla import (
    DEFAULT_POLICY,
    SlaPolicy,
    add_working_days,
    deadlines,
    end_of_working_day,
    extended,
    next_working_day,
)


def sh(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def test_the_calendar_facts_this_file_relies_on() -> None:
    assert not any(is_working_day(date(2026, 10, d)) for d in range(1, 8))
    assert is_working_day(date(2026, 10, 8)) and is_working_day(date(2026, 10, 10))
    assert date(2026, 10, 10).weekday() == 5 and date(2026, 9, 20).weekday() == 6
    assert is_working_day(date(2026, 9, 20)) and not is_working_day(date(2026, 10, 11))


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (sh(2026, 11, 23, 9, 0), 1, sh(2026, 11, 24, 9, 0)),  # Monday → Tuesday
        (sh(2026, 11, 20, 9, 0), 1, sh(2026, 11, 23, 9, 0)),  # Friday → Monday
        (sh(2026, 9, 30, 10, 0), 1, sh(2026, 10, 8, 10, 0)),  # over the whole holiday
        (sh(2026, 9, 30, 10, 0), 5, sh(2026, 10, 13, 10, 0)),  # 8, 9, 10 (调休 Sat), 12, 13
        (sh(2026, 10, 9, 15, 0), 1, sh(2026, 10, 10, 15, 0)),  # Friday → make-up Saturday
        (sh(2026, 10, 10, 15, 0), 1, sh(2026, 10, 12, 15, 0)),  # make-up Saturday → Monday
        (sh(2026, 10, 3, 11, 0), 1, sh(2026, 10, 9, 0, 0)),  # on a holiday: clock starts 10-08
        (sh(2026, 9, 19, 11, 0), 1, sh(2026, 9, 21, 0, 0)),  # Sat: make-up Sunday counts
        (sh(2026, 9, 24, 16, 0), 1, sh(2026, 9, 28, 16, 0)),  # over Mid-Autumn
        (sh(2026, 11, 23, 9, 0), 0, sh(2026, 11, 23, 9, 0)),
    ],
)
def test_add_working_days(start: datetime, days: int, expected: datetime) -> None:
    assert add_working_days(start, days) == expected


def test_days_are_local_days_whatever_zone_the_input_is_in() -> None:
    # 2026-09-30 16:30 UTC is 10-01 00:30 in Shanghai: already the holiday.
    assert add_working_days(datetime(2026, 9, 30, 16, 30, tzinfo=UTC), 1) == sh(2026, 10, 9)
    # 2026-09-30 15:30 UTC is still 09-30 23:30 locally, a working day.
    assert add_working_days(datetime(2026, 9, 30, 15, 30, tzinfo=UTC), 1) == sh(2026, 10, 8, 23, 30)


def test_naive_or_negative_input_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        add_working_days(datetime(2026, 11, 23, 9), 1)
    with pytest.raises(ValueError, match="negative"):
        add_working_days(sh(2026, 11, 23, 9), -1)
    with pytest.raises(ValueError, match="at least one"):
        extended(sh(2026, 11, 23, 9), 0)


def test_normal_ticket_before_national_day() -> None:
    d = deadlines(
        sh(2026, 9, 30, 10, 0),
        category=Category.LEGAL_AID,
        urgency=Urgency.NORMAL,
        green_channel=False,
    )
    assert d.accept_by == sh(2026, 10, 8, 10, 0)
    assert d.resolve_by == sh(2026, 10, 13, 10, 0)


def test_emergency_runs_on_the_wall_clock_even_on_a_holiday() -> None:
    d = deadlines(
        sh(2026, 10, 2, 23, 30),
        category=Category.MEDIATION,
        urgency=Urgency.EMERGENCY,
        green_channel=False,
    )
    assert d.accept_by == sh(2026, 10, 3, 0, 30)
    assert d.resolve_by == sh(2026, 10, 9, 0, 0)  # one working day, from the first one


def test_green_channel_is_the_same_day_or_the_next_working_one() -> None:
    def green(received: datetime) -> datetime:
        return deadlines(
            received, category=Category.LEGAL_AID, urgency=Urgency.NORMAL, green_channel=True
        ).accept_by

    assert green(sh(2026, 9, 30, 10)) == sh(2026, 10, 1)  # midnight ending the same day
    assert green(sh(2026, 10, 4, 10)) == sh(2026, 10, 9)  # holiday: the end of 10-08
    assert end_of_working_day(sh(2026, 10, 10, 8)) == sh(2026, 10, 11)  # make-up Saturday


def test_urgent_and_category_overrides() -> None:
    policy = SlaPolicy(resolve_by_category={Category.LEGAL_CONSULTATION: 2})
    start = sh(2026, 11, 23, 9)
    urgent = deadlines(
        start, category=Category.LEGAL_AID, urgency=Urgency.URGENT, green_channel=False
    )
    assert urgent.resolve_by == sh(2026, 11, 26, 9)
    quick = deadlines(
        start,
        category=Category.LEGAL_CONSULTATION,
        urgency=Urgency.NORMAL,
        green_channel=False,
        policy=policy,
    )
    assert quick.resolve_by == sh(2026, 11, 25, 9)


def test_extension_of_fifteen_working_days_crosses_the_holiday() -> None:
    assert DEFAULT_POLICY.max_extension_working_days == 15
    # 9-20 (调休 Sunday), 9-21 … 9-24, 9-28 … 9-30 (8), 10-08, 09, 10 (调休), 12 … 15 (7).
    assert extended(sh(2026, 9, 18, 17), 15) == sh(2026, 10, 15, 17)


@given(
    start=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2026, 12, 20), timezones=st.just(UTC)
    ),
    days=st.integers(min_value=1, max_value=20),
)
def test_a_deadline_counts_exactly_n_working_days(start: datetime, days: int) -> None:
    due = add_working_days(start, days)
    local = start.astimezone(SHANGHAI)
    assert due > start
    first = local.date() if is_working_day(local.date()) else next_working_day(local.date())
    counted = sum(
        is_working_day(first + timedelta(days=i)) for i in range(1, (due.date() - first).days + 1)
    )
    assert counted == days
    assert is_working_day(due.date()) or due.time() == datetime.min.time()

"""SLA deadlines on the official working-day calendar: pure functions, no clock, no database.

A deadline of *n working days* is the instant when n × 24 hours of working-day time have
passed, counting only time that falls on official working days (``chinesecalendar``: statutory
holidays do not count even on a weekday, make-up working days 调休 count even on a weekend).
So Monday 09:00 + 1 working day is Tuesday 09:00, Friday 09:00 + 1 is next Monday 09:00, and a
ticket received on a Saturday starts its clock at the beginning of the next working day. Days
are local days in the hotline's time zone (Asia/Shanghai). Emergencies run on the wall clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from types import MappingProxyType
from typing import Any

from callcenter.routing.calendar import SHANGHAI, is_working_day, local_time
from ticketing.catalogue import Category, Urgency
from ticketing.states import State

_ONE_DAY = timedelta(days=1)


def next_working_day(day: date) -> date:
    """The first working day strictly after ``day``."""
    day += _ONE_DAY
    while not is_working_day(day):
        day += _ONE_DAY
    return day


def add_working_days(start: datetime, days: int, tz: tzinfo = SHANGHAI) -> datetime:
    """``start`` plus ``days`` working days (see the module docstring), in ``tz``."""
    if days < 0:
        raise ValueError(f"working days must not be negative, got {days}")
    local = local_time(start, tz)
    day, clock = local.date(), local.time()
    if not is_working_day(day):
        day, clock = next_working_day(day), time(0)
    for _ in range(days):
        day = next_working_day(day)
    return datetime.combine(day, clock, tzinfo=tz)


def end_of_working_day(start: datetime, tz: tzinfo = SHANGHAI) -> datetime:
    """Midnight ending ``start``'s day if it is a working day, else ending the next one.

    The green channel's "same day": received on a working day, done before that day ends;
    received on a holiday, done before the first working day after it ends.
    """
    day = local_time(start, tz).date()
    if not is_working_day(day):
        day = next_working_day(day)
    return datetime.combine(day + _ONE_DAY, time(0), tzinfo=tz)


def _no_overrides() -> Mapping[Category, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """Deadline rules; the defaults are the hotline's published service commitments.

    ``urgent_resolve_working_days`` is our local default (the catalogue names none); a
    category override (``resolve_by_category``) replaces the normal five working days.
    """

    accept_working_days: int = 1
    resolve_working_days: int = 5
    urgent_resolve_working_days: int = 3
    emergency_accept: timedelta = timedelta(hours=1)
    emergency_resolve_working_days: int = 1
    max_extension_working_days: int = 15
    resolve_by_category: Mapping[Category, int] = field(default_factory=_no_overrides)

    def resolve_days(self, category: Category, urgency: Urgency) -> int:
        normal = self.resolve_by_category.get(category, self.resolve_working_days)
        if urgency is Urgency.EMERGENCY:
            return min(normal, self.emergency_resolve_working_days)
        if urgency is Urgency.URGENT:
            return min(normal, self.urgent_resolve_working_days)
        return normal


DEFAULT_POLICY = SlaPolicy()


@dataclass(frozen=True, slots=True)
class Deadlines:
    accept_by: datetime
    """Transferred and signed for (签收) by then."""
    resolve_by: datetime
    """A result (办结) by then."""


def deadlines(
    received_at: datetime,
    *,
    category: Category,
    urgency: Urgency,
    green_channel: bool,
    policy: SlaPolicy = DEFAULT_POLICY,
    tz: tzinfo = SHANGHAI,
) -> Deadlines:
    """The deadlines of a ticket received at ``received_at`` (aware)."""
    accept_by = add_working_days(received_at, policy.accept_working_days, tz)
    if green_channel:
        accept_by = min(accept_by, end_of_working_day(received_at, tz))
    if urgency is Urgency.EMERGENCY:
        accept_by = min(accept_by, local_time(received_at, tz) + policy.emergency_accept)
    resolve_by = add_working_days(received_at, policy.resolve_days(category, urgency), tz)
    return Deadlines(accept_by=accept_by, resolve_by=max(resolve_by, accept_by))


def extended(resolve_by: datetime, days: int, tz: tzinfo = SHANGHAI) -> datetime:
    """The result deadline after an approved extension (延期) of ``days`` working days."""
    if days < 1:
        raise ValueError(f"an extension is at least one working day, got {days}")
    return add_working_days(resolve_by, days, tz)


def opening_values(
    now: datetime,
    *,
    category: Category,
    urgency: Urgency,
    green_channel: bool,
    policy: SlaPolicy,
    tz: tzinfo = SHANGHAI,
) -> dict[str, Any]:
    """The columns every new ticket starts with, however it is made (an agent's 受理, a call
    answered by a seat): 受理 at version 1, its SLA clock from ``now``, nothing extended, urged
    or supervised yet."""
    due = deadlines(
        now, category=category, urgency=urgency, green_channel=green_channel, policy=policy, tz=tz
    )
    return {
        "state": State.ACCEPTED.value,
        "version": 1,
        "accept_by": due.accept_by.astimezone(UTC),
        "resolve_by": due.resolve_by.astimezone(UTC),
        "extended_days": 0,
        "urge_count": 0,
        "supervised": False,
        "created_at": now,
        "updated_at": now,
    }

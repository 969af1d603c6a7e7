"""Readable ticket numbers: ``<region>-<local date>-<sequence>``, e.g. ``330400-20261121-0001``.

The sequence lives in ``ticket_sequences``, one row per (region, day), bumped by a single
``INSERT … ON CONFLICT DO UPDATE … RETURNING``. On PostgreSQL the upsert locks that row until
the ticket's transaction ends, so concurrent creators in one region queue up for the next value
and a rolled-back ticket gives its number back: numbers are unique and gap-free per day. No
read-then-write, so no race; regions never wait for each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from ticketing.models import Ticket, TicketSequence

_TICKETS = cast(Table, Ticket.__table__)


def format_number(region_code: str, day: date, sequence: int) -> str:
    """Four digits cover a busy day; a busier one simply gets longer numbers, still unique."""
    return f"{region_code}-{day:%Y%m%d}-{sequence:04d}"


async def next_sequence(session: AsyncSession, region_code: str, day: date, count: int = 1) -> int:
    """Take ``count`` values for (region, day) inside the caller's transaction; the last one
    (the values are ``last - count + 1 … last``)."""
    postgres = session.get_bind().dialect.name == "postgresql"
    insert = postgresql.insert if postgres else sqlite.insert
    row = {"region_code": region_code, "day": day, "last_value": count}
    stmt = (
        insert(TicketSequence)
        .values(row)
        .on_conflict_do_update(
            index_elements=[TicketSequence.region_code, TicketSequence.day],
            set_={"last_value": TicketSequence.last_value + count},
        )
        .returning(TicketSequence.last_value)
    )
    return int((await session.execute(stmt)).scalar_one())


async def next_number(session: AsyncSession, region_code: str, day: date) -> str:
    return format_number(region_code, day, await next_sequence(session, region_code, day))


def provisional_number() -> str:
    """A unique stand-in (never committed) for a ticket inserted before its number is taken;
    ``~`` cannot start a real number."""
    return "~" + uuid.uuid4().hex[:31]


async def assign_numbers(session: AsyncSession, tickets: Sequence[Ticket], day: date) -> list[str]:
    """Give flushed tickets (inserted with :func:`provisional_number`) their numbers, in order:
    one counter upsert per region (a range of values) and one executemany ``UPDATE``.

    Call it as late as the transaction allows: from the counter's upsert to the commit, every
    other creator in the region waits on that row, so the less work in between, the more
    tickets a region can take per second. Still one transaction: gap-free as ever.
    """
    by_region: dict[str, list[Ticket]] = {}
    for ticket in tickets:
        by_region.setdefault(ticket.region_code, []).append(ticket)
    numbers: dict[int, str] = {}
    for region_code in sorted(by_region):  # a fixed order: two batches never deadlock
        group = by_region[region_code]
        last = await next_sequence(session, region_code, day, len(group))
        first = last - len(group) + 1
        for offset, ticket in enumerate(group):
            numbers[ticket.id] = format_number(region_code, day, first + offset)
    stmt = (
        update(_TICKETS)
        .where(_TICKETS.c.id == bindparam("b_id"))
        .values(number=bindparam("b_number"))
    )
    params = [{"b_id": tid, "b_number": number} for tid, number in numbers.items()]
    await session.execute(stmt, params)
    for ticket in tickets:
        set_committed_value(ticket, "number", numbers[ticket.id])
    return [numbers[ticket.id] for ticket in tickets]

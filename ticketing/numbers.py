"""Readable ticket numbers: ``<region>-<local date>-<sequence>``, e.g. ``330400-20261121-0001``.

The sequence lives in ``ticket_sequences``, one row per (region, day), bumped by a single
``INSERT … ON CONFLICT DO UPDATE … RETURNING``. On PostgreSQL the upsert locks that row until
the ticket's transaction ends, so concurrent creators in one region queue up for the next value
and a rolled-back ticket gives its number back: numbers are unique and gap-free per day. No
read-then-write, so no race; regions never wait for each other.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.models import TicketSequence


def format_number(region_code: str, day: date, sequence: int) -> str:
    """Four digits cover a busy day; a busier one simply gets longer numbers, still unique."""
    return f"{region_code}-{day:%Y%m%d}-{sequence:04d}"


async def next_sequence(session: AsyncSession, region_code: str, day: date) -> int:
    """The next value for (region, day), inside the caller's transaction."""
    postgres = session.get_bind().dialect.name == "postgresql"
    insert = postgresql.insert if postgres else sqlite.insert
    row = {"region_code": region_code, "day": day, "last_value": 1}
    stmt = (
        insert(TicketSequence)
        .values(row)
        .on_conflict_do_update(
            index_elements=[TicketSequence.region_code, TicketSequence.day],
            set_={"last_value": TicketSequence.last_value + 1},
        )
        .returning(TicketSequence.last_value)
    )
    return int((await session.execute(stmt)).scalar_one())


async def next_number(session: AsyncSession, region_code: str, day: date) -> str:
    return format_number(region_code, day, await next_sequence(session, region_code, day))

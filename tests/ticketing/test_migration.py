"""Migration 0002 goes down to 0001 and back up with tickets in the tables, on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect

from callcenter.db import migrate
from callcenter.db.engine import make_engine, make_sessionmaker
from tests.conftest import PgDatabases, seed_database
from tests.ticketing.conftest import CITY
from ticketing.models import Ticket, TicketHistory
from ticketing.numbers import next_number

TICKET_TABLES = {"tickets", "ticket_history", "ticket_sequences"}


async def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def _add_ticket(url: str) -> None:
    now = datetime(2026, 11, 21, 2, tzinfo=UTC)
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            ticket = Ticket(
                number=await next_number(session, CITY, date(2026, 11, 21)),
                region_code=CITY,
                channel="phone",
                category="legal_aid",
                request_type="help",
                content="x",
                urgency="normal",
                state="accepted",
                accept_by=now,
                resolve_by=now,
            )
            session.add(ticket)
            await session.flush()
            session.add(TicketHistory(ticket_id=ticket.id, action="create", to_state="accepted"))
            await session.commit()
    finally:
        await engine.dispose()


async def _down_and_up(url: str) -> None:
    await migrate.upgrade(url)
    await seed_database(url)
    await _add_ticket(url)
    await migrate.downgrade(url, "0001")
    assert await migrate.current_revision(url) == "0001"
    tables = await _tables(url)
    assert not tables & TICKET_TABLES and "calls" in tables
    await migrate.upgrade(url)
    assert TICKET_TABLES <= await _tables(url)
    await _add_ticket(url)


async def test_given_tickets_on_sqlite_when_downgraded_and_upgraded_then_clean(
    tmp_path: Path,
) -> None:
    await _down_and_up(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
async def test_given_tickets_on_postgres_when_downgraded_and_upgraded_then_clean(
    pg_databases: PgDatabases,
) -> None:
    await _down_and_up(await pg_databases.create())

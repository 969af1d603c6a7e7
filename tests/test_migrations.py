"""The one migration chain upgrades and downgrades cleanly on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from callcenter.db import migrate
from callcenter.db.engine import make_engine
from callcenter.db.registry import metadata
from tests.conftest import PgDatabases
from tests.conftest import seed_database as seed

CORE_TABLES = {"regions", "users", "auth_sessions", "queues", "seats", "queue_members", "calls"}
TICKET_TABLES = {"tickets", "ticket_history", "ticket_sequences"}


async def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def _drift(url: str) -> list[object]:
    """Differences between the models and the migrated schema (must be none)."""
    engine = make_engine(url)

    def compare(conn: Connection) -> list[object]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, metadata))

    try:
        async with engine.connect() as conn:
            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


async def _round_trip(url: str) -> None:
    await migrate.upgrade(url)
    assert await migrate.current_revision(url) == migrate.head_revision()
    assert CORE_TABLES | TICKET_TABLES <= await _tables(url)
    assert await _drift(url) == []
    await seed(url)  # downgrading must also work with rows in (self-)referencing tables
    await migrate.downgrade(url, "base")
    assert await migrate.current_revision(url) is None
    assert await _tables(url) <= {"alembic_version"}
    await migrate.upgrade(url)
    assert CORE_TABLES <= await _tables(url)


async def test_given_empty_sqlite_when_round_tripped_then_schema_matches_models(
    tmp_path: Path,
) -> None:
    await _round_trip(f"sqlite+aiosqlite:///{tmp_path / 'rt.db'}")


@pytest.mark.postgres
async def test_given_empty_postgres_when_round_tripped_then_schema_matches_models(
    pg_databases: PgDatabases,
) -> None:
    await _round_trip(await pg_databases.create())

"""A throw-away PostgreSQL database for a bench run: created, migrated and seeded with 浙江省,
dropped afterwards whatever happens. Server from ``CALLCENTER_TEST_PG`` (default
``postgres@127.0.0.1:5432``, trust auth, as on the test machines)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from callcenter.db import migrate
from callcenter.db.engine import make_engine, make_sessionmaker
from callcenter.regions.provinces import load_province, province_file
from callcenter.regions.seed import seed_province

PG_SERVER = os.environ.get("CALLCENTER_TEST_PG", "postgres@127.0.0.1:5432")


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(f"postgresql://{PG_SERVER}/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def province_database() -> AsyncIterator[str]:
    """The URL (asyncpg) of a fresh, migrated database seeded with the province."""
    name = f"cc_bench_{uuid.uuid4().hex[:10]}"
    url = f"postgresql+asyncpg://{PG_SERVER}/{name}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        await migrate.upgrade(url)
        engine = make_engine(url)
        try:
            async with make_sessionmaker(engine)() as session:
                await seed_province(session, load_province(province_file("330000")))
        finally:
            await engine.dispose()
        yield url
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

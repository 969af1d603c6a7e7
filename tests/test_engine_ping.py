"""Pooled PostgreSQL connections are pinged only after sitting idle, and a dead one is replaced
before a request sees it (instead of ``pool_pre_ping``'s three round trips on every checkout)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.db.engine import make_engine
from tests.conftest import PG_SERVER

pytestmark = pytest.mark.postgres


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _kill(pid: int) -> None:
    """What a server restart or a firewall does to an idle pooled connection."""
    admin = await asyncpg.connect(f"postgresql://{PG_SERVER}/postgres")
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    await asyncio.sleep(0.1)


async def test_given_an_idle_pooled_connection_died_when_used_then_a_fresh_one_serves(
    pg_url: str,
) -> None:
    engine = make_engine(pg_url, ping_after_idle_s=0.05)
    try:
        first = await _backend_pid(engine)
        await _kill(first)  # also idle for longer than 0.05 s by now
        second = await _backend_pid(engine)
        assert second != first
        assert await _backend_pid(engine) == second  # reused at once: no ping, same connection
    finally:
        await engine.dispose()


async def test_given_no_idle_ping_when_a_pooled_connection_died_then_the_request_fails(
    pg_url: str,
) -> None:
    """The control: without the ping the dead connection reaches the caller (so the test above
    shows the ping at work), and the pool recovers on the next checkout."""
    engine = make_engine(pg_url, ping_after_idle_s=3600)
    try:
        first = await _backend_pid(engine)
        await _kill(first)
        with pytest.raises(DBAPIError):
            await _backend_pid(engine)
        assert await _backend_pid(engine) != first
    finally:
        await engine.dispose()

"""Call records from the real traces, on SQLite and PostgreSQL, through real DB failures."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from callcenter.ami.events import CallEvent
from callcenter.db.engine import make_engine, make_sessionmaker
from callcenter.db.models import Call
from callcenter.state import CallRecorder
from tests.state.conftest import TcpProxy, Ticker, Traces, locate, wait_for

Sessions = async_sessionmaker[AsyncSession]


@pytest_asyncio.fixture
async def sessions(db_url: str) -> AsyncIterator[Sessions]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
def node() -> str:
    """The PostgreSQL database is shared by the run: each test is its own Asterisk node."""
    return f"node-{uuid.uuid4().hex[:8]}"


async def rows(sessions: Sessions, node: str) -> list[Call]:
    async with sessions() as session:
        query = select(Call).where(Call.node == node).order_by(Call.offered_at, Call.id)
        return list((await session.scalars(query)).all())


async def record(
    sessions: Sessions, events: list[CallEvent], clock: Ticker | None = None, **kw: Any
) -> CallRecorder:
    recorder = CallRecorder(sessions, locate=locate, clock=clock or Ticker(), **kw)
    async with recorder:
        for event in events:
            recorder.handle(event)
        await recorder.flush(10)
    return recorder


async def test_01_answered_call_is_one_complete_row(
    sessions: Sessions, traces: Traces, node: str
) -> None:
    await record(sessions, traces.events("01", node))
    [row] = await rows(sessions, node)
    assert (row.caller_number, row.caller_name, row.called_number) == (
        "13805730001",
        "张三",
        "12348",
    )
    assert (row.queue_name, row.agent_extension, row.disposition) == (
        "legal-consult",
        "8001",
        "answered",
    )
    assert (row.caller_region_code, row.ivr_path, row.hangup_cause) == (
        "330400",
        ["1"],
        "Normal Clearing",
    )
    assert row.queued_at is not None and row.answered_at is not None and row.ended_at is not None
    assert row.offered_at < row.queued_at < row.answered_at < row.ended_at


async def test_02_abandoned_call(sessions: Sessions, traces: Traces, node: str) -> None:
    await record(sessions, traces.events("02", node))
    [row] = await rows(sessions, node)
    assert (row.queue_name, row.disposition, row.answered_at) == ("legal-aid", "abandoned", None)
    assert row.ended_at is not None and row.ivr_path == ["2"]


async def test_09_overflow_is_one_row_answered_in_province(
    sessions: Sessions, traces: Traces, node: str
) -> None:
    await record(sessions, traces.events("09", node))
    [row] = await rows(sessions, node)
    assert (row.queue_name, row.disposition, row.agent_extension) == (
        "province",
        "answered",
        "8004",
    )
    assert row.queued_at is not None and row.answered_at is not None
    assert row.answered_at - row.queued_at > timedelta(seconds=1)  # first queue time is kept


async def test_10_five_callers_five_rows(sessions: Sessions, traces: Traces, node: str) -> None:
    await record(sessions, traces.events("10", node))
    found = await rows(sessions, node)
    assert [(r.caller_name, r.disposition) for r in found] == [
        ("蒋一", "answered"),
        ("沈二", "answered"),
        ("韩三", "answered"),
        ("杨四", "answered"),
        ("朱五", "abandoned"),
    ]
    assert all(r.ended_at is not None for r in found)


async def test_replays_neither_duplicate_nor_move_a_timestamp(
    sessions: Sessions, traces: Traces, node: str
) -> None:
    events = [e for prefix in ("01", "09") for e in traces.events(prefix, node)]
    clock = Ticker()
    await record(sessions, [e for event in events for e in (event, event)], clock)
    first = [snapshot(r) for r in await rows(sessions, node)]
    clock.now += 3600  # a replay an hour later (after a reconnect) must not move anything
    await record(sessions, events, clock)
    assert [snapshot(r) for r in await rows(sessions, node)] == first
    assert len(first) == 2


def snapshot(row: Call) -> tuple[Any, ...]:
    return (
        row.linkedid,
        row.offered_at,
        row.queued_at,
        row.answered_at,
        row.ended_at,
        row.disposition,
        row.queue_name,
        row.ivr_path,
    )


# ---------------------------------------------------------------------- real failures


async def test_sqlite_locked_database_delays_but_loses_nothing(
    sqlite_url: str, traces: Traces, node: str
) -> None:
    """Another process holds the write lock: writes fail ("database is locked") and are retried."""
    # No busy_timeout: a locked database fails at once instead of waiting 5 s.
    engine = create_async_engine(sqlite_url, connect_args={"timeout": 0.01})
    sessions = make_sessionmaker(engine)
    path = make_url(sqlite_url).database
    assert path is not None
    locker = sqlite3.connect(path, timeout=0.01, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        recorder = CallRecorder(sessions, clock=Ticker(), retry_initial=0.02, retry_max=0.1)
        async with recorder:
            for event in traces.events("01", node):
                recorder.handle(event)
            await wait_for(lambda: recorder.stats.failures >= 3)
            assert recorder.pending > 0
            locker.execute("ROLLBACK")
            await recorder.flush(10)
        assert recorder.stats.dropped == 0
        [row] = await rows(sessions, node)
        assert (row.disposition, row.ended_at is not None) == ("answered", True)
    finally:
        locker.close()
        await engine.dispose()


@pytest.mark.postgres
async def test_postgres_outage_delays_but_loses_nothing(
    pg_url: str, traces: Traces, node: str
) -> None:
    url = make_url(pg_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    engine = make_engine(url.set(host="127.0.0.1", port=proxy.port).render_as_string(False))
    sessions = make_sessionmaker(engine)
    events = traces.events("01", node)
    recorder = CallRecorder(sessions, clock=Ticker(), retry_initial=0.02, retry_max=0.1)
    try:
        async with recorder:
            recorder.handle(events[0])
            await recorder.flush(10)  # the pool holds a connection through the proxy now
            await proxy.stop()
            for event in events[1:]:
                recorder.handle(event)
            await wait_for(lambda: recorder.stats.failures >= 3)
            assert recorder.pending > 0
            await proxy.start()  # same port: the database is back
            await recorder.flush(10)
        [row] = await rows(sessions, node)
        assert (row.disposition, row.agent_extension) == ("answered", "8001")
        assert row.ended_at is not None and recorder.stats.dropped == 0
    finally:
        await engine.dispose()
        await proxy.stop()


async def test_a_failing_geocoder_still_records_the_call(
    sessions: Sessions, traces: Traces, node: str
) -> None:
    def broken(number: str | None) -> str | None:
        raise RuntimeError("geocoder down")

    recorder = CallRecorder(sessions, locate=broken, clock=Ticker())
    async with recorder:
        for event in traces.events("02", node):
            recorder.handle(event)
        await recorder.flush(10)
    [row] = await rows(sessions, node)
    assert (row.caller_region_code, row.disposition) == (None, "abandoned")


async def test_unknown_region_code_is_stored_as_null(
    sessions: Sessions, traces: Traces, node: str
) -> None:
    """A geocoder answer that is not a region of the table must not break the foreign key."""
    recorder = CallRecorder(sessions, locate=lambda n: "999999", clock=Ticker())
    async with recorder:
        for event in traces.events("01", node):
            recorder.handle(event)
        await recorder.flush(10)
    [row] = await rows(sessions, node)
    assert (row.caller_region_code, row.disposition) == (None, "answered")
    assert recorder.stats.dropped == 0

"""Async engine and session factory, built once in the composition root."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Final

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


class DatabaseUnavailable(Exception):
    """The database cannot be reached; the message says which one and why, in one line."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


POOL_SIZE: Final = 20
"""Connections kept open per process: a web worker under load has this many requests in
flight at the database; fewer, and every burst opens and closes overflow connections."""
MAX_OVERFLOW: Final = 10
PING_AFTER_IDLE_S: Final = 2.0


def make_engine(
    url: str, *, echo: bool = False, ping_after_idle_s: float = PING_AFTER_IDLE_S
) -> AsyncEngine:
    """Create the engine; for SQLite the parent folder is created and FK checks turned on.

    A pooled PostgreSQL connection is checked (pinged) before use only when it has been idle
    for ``ping_after_idle_s`` (see :func:`_ping_after_idle`).
    """
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.update(pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW)
    engine = create_async_engine(url, **kwargs)
    _ping_after_idle(engine, ping_after_idle_s)
    return engine


def _ping_after_idle(engine: AsyncEngine, idle_s: float) -> None:
    """Pessimistic disconnect handling, paid only where it helps.

    ``pool_pre_ping`` costs three round trips (BEGIN, ping, ROLLBACK with asyncpg) on *every*
    checkout, as much as a whole ticket action's own statements. A connection handed back a
    moment ago was alive a moment ago; one that sat idle (a server restart, a firewall timeout
    happened meanwhile) is pinged, and a dead one is replaced before the request sees it:
    ``DisconnectionError`` makes the pool retry with a fresh connection. A server that dies
    under load fails the statements in flight either way; the first such error invalidates
    the whole pool.
    """
    pool = engine.sync_engine.pool

    def checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < idle_s:
            return  # just connected, or in use a moment ago
        try:
            dbapi_conn.ping()
        except Exception as exc:
            raise DisconnectionError(f"pooled connection dead after {idle_s:g} s idle") from exc

    event.listen(pool, "checkin", checked_in)
    event.listen(pool, "checkout", checked_out)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def describe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def _reason(exc: BaseException) -> str:
    root: BaseException = exc
    while root.__cause__ is not None or getattr(root, "orig", None) is not None:
        nxt = getattr(root, "orig", None) or root.__cause__
        if nxt is None or nxt is root:
            break
        root = nxt
    text_ = str(root).strip().splitlines()[0] if str(root).strip() else type(root).__name__
    return f"{type(root).__name__}: {text_}"


async def ping(engine: AsyncEngine, timeout: float = 5.0) -> None:
    """Run ``SELECT 1``; raise ``DatabaseUnavailable`` with a one-line reason."""

    try:
        async with asyncio.timeout(timeout):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else _reason(exc)
        raise DatabaseUnavailable(
            f"database {describe(str(engine.url))} is unreachable: {reason}"
        ) from None

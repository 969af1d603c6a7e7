"""Async engine and session factory, built once in the composition root."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
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


def make_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """Create the engine; for SQLite the parent folder is created and FK checks turned on."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
    return create_async_engine(url, **kwargs)


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

"""Alembic environment: runs migrations over the async engine given by the caller.

The URL comes from ``config.attributes["url"]`` (set by ``callcenter.db.migrate``) or the
``CALLCENTER_DATABASE_URL`` settings, never from alembic.ini, so there is one source of truth.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from callcenter.db.engine import make_engine
from callcenter.db.registry import metadata

config = context.config
target_metadata = metadata


def _url() -> str:
    url = config.attributes.get("url")
    if url:
        return str(url)
    from callcenter.settings import load_settings

    return load_settings().database_url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = make_engine(_url())
    try:
        async with engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                # Batch migrations recreate tables and DROP TABLE deletes rows: with foreign
                # keys enforced that fails on referenced rows. Turn enforcement off (it only
                # works outside a transaction) and verify integrity once at the end instead.
                await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            await conn.run_sync(_configure)
            if sqlite:
                bad = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).fetchall()
                if bad:
                    raise RuntimeError(f"foreign key violations after migration: {bad[:5]}")
            await conn.commit()
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
    else:
        asyncio.run(_run_async())

"""Programmatic Alembic: upgrade/downgrade/check from the CLI and tests, no alembic.ini needed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from callcenter.db.engine import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["url"] = url
    return cfg


def _run(url: str, fn_name: str, revision: str) -> None:
    cfg = alembic_config(url)
    getattr(command, fn_name)(cfg, revision)


async def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade in a worker thread: Alembic's env runs its own event loop."""
    await asyncio.to_thread(_run, url, "upgrade", revision)


async def downgrade(url: str, revision: str = "base") -> None:
    await asyncio.to_thread(_run, url, "downgrade", revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


async def current_revision(url: str) -> str | None:
    engine = make_engine(url)

    def _current(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_current)
    finally:
        await engine.dispose()

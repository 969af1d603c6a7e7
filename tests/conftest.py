"""Shared fixtures: real SQLite and PostgreSQL databases (fresh per run), settings, app client.

PostgreSQL tests create their own database ``cc_test_<random>`` on the server at
``CALLCENTER_TEST_PG`` (default 127.0.0.1:5432, trust auth) and drop it at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from callcenter.db import migrate
from callcenter.db.engine import make_engine, make_sessionmaker
from callcenter.regions.provinces import load_province, province_file
from callcenter.regions.seed import seed_province
from callcenter.services import Services, build_services
from callcenter.settings import Settings, load_settings
from callcenter.web.app import create_app

PG_SERVER = os.environ.get("CALLCENTER_TEST_PG", "postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("CALLCENTER_TEST_REDIS", "redis://127.0.0.1:6379/0")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return Path(os.environ.get("CALLCENTER_SHARED_DIR", REPO.parent / "shared")).resolve()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CALLCENTER_* variable from the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("CALLCENTER_") and not key.startswith("CALLCENTER_TEST_"):
            monkeypatch.delenv(key)


async def seed_database(url: str) -> None:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            await seed_province(session, load_province(province_file("330000")))
    finally:
        await engine.dispose()


class PgDatabases:
    """Creates throw-away databases on the real server and drops them at the end of the run."""

    def __init__(self) -> None:
        self.names: list[str] = []

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(f"postgresql://{PG_SERVER}/test")

    async def create(self) -> str:
        name = f"cc_test_{uuid.uuid4().hex[:12]}"
        conn = await self._admin()
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.names.append(name)
        return f"postgresql+asyncpg://{PG_SERVER}/{name}"

    async def drop_all(self) -> None:
        conn = await self._admin()
        try:
            for name in self.names:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest_asyncio.fixture(scope="session")
async def pg_databases() -> AsyncIterator[PgDatabases]:
    dbs = PgDatabases()
    yield dbs
    await dbs.drop_all()


@pytest_asyncio.fixture(scope="session")
async def pg_url(pg_databases: PgDatabases) -> str:
    """One migrated and seeded PostgreSQL database shared by the run."""
    url = await pg_databases.create()
    await migrate.upgrade(url)
    await seed_database(url)
    return url


@pytest_asyncio.fixture(scope="session")
async def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate and seed once; each test gets a copy (much faster than migrating per test)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    url = f"sqlite+aiosqlite:///{path}"
    await migrate.upgrade(url)
    await seed_database(url)
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh migrated and seeded SQLite database for this test."""
    target = tmp_path / "callcenter.db"
    target.write_bytes(sqlite_template.read_bytes())
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Run the test once on SQLite and once on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def _make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "recordings_dir": tmp_path / "data" / "recordings",
        }
        base.update(overrides)
        return load_settings(**base)

    return _make


@pytest_asyncio.fixture
async def services(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> AsyncIterator[Services]:
    async with build_services(make_settings(database_url=sqlite_url)) as built:
        yield built


@pytest_asyncio.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services=services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def free_port() -> Iterator[Callable[[], int]]:
    import socket

    def _port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    yield _port

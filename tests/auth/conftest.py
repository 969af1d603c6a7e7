"""Fixtures for the auth tests: a cheap argon2id hasher, unique users, an app per settings.

The PostgreSQL database is shared by the whole run, so every test makes its own usernames.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import select

from callcenter.auth import services as auth
from callcenter.auth.deps import get_passwords
from callcenter.auth.passwords import Passwords, make_passwords
from callcenter.db.models import AuthSession, Role, User
from callcenter.services import Services, build_services
from callcenter.settings import Settings
from callcenter.web.app import create_app

PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def passwords() -> Passwords:
    """argon2id at the lowest cost: same code path, a fraction of a millisecond per hash."""
    return make_passwords(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture
def new_username() -> Callable[[], str]:
    return lambda: f"u_{uuid.uuid4().hex[:12]}"


@dataclass
class AuthEnv:
    app: FastAPI
    services: Services
    client: httpx.AsyncClient
    passwords: Passwords

    @property
    def settings(self) -> Settings:
        return self.services.settings

    async def add_user(
        self, username: str, *, role: Role = Role.AGENT, region_code: str = "330400"
    ) -> User:
        async with self.services.sessionmaker() as session:
            return await auth.create_user(
                session,
                username=username,
                password=PASSWORD,
                role=role,
                region_code=region_code,
                display_name="测试坐席",
                passwords=self.passwords,
            )

    async def user(self, username: str) -> User:
        async with self.services.sessionmaker() as session:
            user = await session.scalar(select(User).where(User.username == username))
            assert user is not None
            return user

    async def sessions_of(self, user_id: int) -> list[AuthSession]:
        async with self.services.sessionmaker() as session:
            query = select(AuthSession).where(AuthSession.user_id == user_id)
            return list((await session.scalars(query)).all())

    async def login(
        self, username: str, password: str = PASSWORD, client: str = "browser"
    ) -> httpx.Response:
        body = {"username": username, "password": password, "client": client}
        return await self.client.post("/api/auth/login", json=body)


OpenEnv = Callable[..., AbstractAsyncContextManager[AuthEnv]]


@pytest.fixture
def open_env(make_settings: Callable[..., Settings], passwords: Passwords) -> OpenEnv:
    """``async with open_env(url, login_max_failures=3) as env``: app + client on those settings."""

    @asynccontextmanager
    async def _open(database_url: str, **overrides: Any) -> AsyncIterator[AuthEnv]:
        settings = make_settings(database_url=database_url, **overrides)
        async with build_services(settings) as built:
            app = create_app(services=built)
            app.dependency_overrides[get_passwords] = lambda: passwords
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                yield AuthEnv(app=app, services=built, client=c, passwords=passwords)

    return _open


@pytest_asyncio.fixture
async def env(open_env: OpenEnv, db_url: str) -> AsyncIterator[AuthEnv]:
    """Default settings, once on SQLite and once on PostgreSQL."""
    async with open_env(db_url) as built:
        yield built


@pytest_asyncio.fixture
async def sqlite_env(open_env: OpenEnv, sqlite_url: str) -> AsyncIterator[AuthEnv]:
    async with open_env(sqlite_url) as built:
        yield built


@pytest.fixture
def fresh_rate_window() -> Callable[[], Awaitable[None]]:
    """Rate limits count per wall-clock minute; start near its beginning so a test's few
    requests cannot straddle two windows (and so be counted apart)."""

    async def _wait() -> None:
        left = 60 - time.time() % 60
        if left < 2:
            await asyncio.sleep(left + 0.05)

    return _wait

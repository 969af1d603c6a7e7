"""Fixtures for the ticketing tests: the app with the tickets router, users with bearer tokens,
and a clock the tests can set.

The PostgreSQL database is shared by the whole run, so every test makes its own users and
looks only at its own tickets. Users are inserted directly (no password hashing) and get a
bearer session through the auth service: the tickets API sees real authentication.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import func, select, text

import ticketing.models  # noqa: F401  (the drift test compares every registered table)
from callcenter.auth import services as auth
from callcenter.db import migrate
from callcenter.db.base import utcnow
from callcenter.db.engine import make_engine, make_sessionmaker
from callcenter.db.models import Role, Seat, User
from callcenter.regions.provinces import load_province, province_file
from callcenter.services import Services, build_services, seed_features
from callcenter.settings import Settings
from callcenter.web.app import create_app
from tests.conftest import PgDatabases, seed_database
from ticketing.http import get_clock
from ticketing.models import Ticket, TicketHistory, TicketSequence

CITY = "330400"  # 嘉兴市
OTHER_CITY = "330100"  # 杭州市
PROVINCE = "330000"


@dataclass(frozen=True)
class Actor:
    user_id: int
    username: str
    role: Role
    region_code: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class TicketEnv:
    app: FastAPI
    services: Services
    client: httpx.AsyncClient
    now: datetime | None = None
    """Fixed time for the service clock; ``None`` is the real clock."""
    marker: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    """Put in ticket content so a test can find its own tickets in the shared database."""
    memo: dict[str, Any] = field(default_factory=dict)
    """For tests that run many examples against one env (hypothesis): things made once."""

    async def actor(self, role: Role = Role.AGENT, region_code: str = CITY) -> Actor:
        name = f"t_{role.value[:3]}_{uuid.uuid4().hex[:10]}"
        async with self.services.sessionmaker() as session:
            user = User(
                username=name,
                display_name="测试",
                password_hash="!unusable",
                role=role.value,
                region_code=region_code,
            )
            session.add(user)
            await session.commit()
            token, _ = await auth.open_session(
                session,
                user,
                "bearer",
                client_ip=None,
                user_agent=None,
                settings=self.services.settings,
            )
            return Actor(user.id, name, role, region_code, token)

    async def post(self, actor: Actor, path: str, body: Any = None) -> httpx.Response:
        return await self.client.post(path, json=body, headers=actor.headers)

    async def get(self, actor: Actor, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params, headers=actor.headers)

    async def act(
        self, actor: Actor, ticket_id: int, action: str, body: Any = None
    ) -> httpx.Response:
        return await self.post(actor, f"/api/tickets/{ticket_id}/actions/{action}", body)

    async def create(self, actor: Actor, **fields: Any) -> dict[str, Any]:
        """Create a ticket (a legal-aid request unless told otherwise); 201 or the test fails."""
        body = {
            "channel": "phone",
            "caller_number": "13805730001",
            "caller_region_code": CITY,
            "category": "legal_aid",
            "request_type": "help",
            "content": f"农民工欠薪求助 {self.marker}",
        } | fields
        response = await self.post(actor, "/api/tickets", body)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def history(self, actor: Actor, ticket_id: int) -> list[dict[str, Any]]:
        response = await self.get(actor, f"/api/tickets/{ticket_id}/history")
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def waiting_on_locks(self) -> int:
        """PostgreSQL sessions of this database blocked on a lock right now."""
        async with self.services.engine.connect() as conn:
            count = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            return int(count or 0)

    async def row_counts(self) -> tuple[int, int, int]:
        """Tickets, history rows and sequence total: 'nothing written' means all unchanged."""
        async with self.services.sessionmaker() as session:
            tickets = await session.scalar(select(func.count(Ticket.id)))
            history = await session.scalar(select(func.count(TicketHistory.id)))
            sequences = await session.scalar(select(func.sum(TicketSequence.last_value)))
            return int(tickets or 0), int(history or 0), int(sequences or 0)


OpenTickets = Callable[[str], AbstractAsyncContextManager[TicketEnv]]


@pytest.fixture
def open_tickets(make_settings: Callable[..., Settings]) -> OpenTickets:
    """``async with open_tickets(url) as env``: the app with the tickets router on that DB."""

    @asynccontextmanager
    async def _open(database_url: str) -> AsyncIterator[TicketEnv]:
        async with build_services(make_settings(database_url=database_url)) as built:
            app = create_app(services=built)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                env = TicketEnv(app=app, services=built, client=c)
                app.dependency_overrides[get_clock] = lambda: lambda: env.now or utcnow()
                yield env

    return _open


@pytest_asyncio.fixture
async def tenv(open_tickets: OpenTickets, db_url: str) -> AsyncIterator[TicketEnv]:
    """The tickets API once on SQLite and once on PostgreSQL."""
    async with open_tickets(db_url) as env:
        yield env


@pytest_asyncio.fixture
async def pg_tenv(open_tickets: OpenTickets, pg_url: str) -> AsyncIterator[TicketEnv]:
    async with open_tickets(pg_url) as env:
        yield env


# --- the unit directory: assignment tests (their own databases) ----------------------------------

PROVINCE_DATA = load_province(province_file(PROVINCE))


async def seed_units(url: str) -> str:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            return await seed_features(session, PROVINCE_DATA)
    finally:
        await engine.dispose()


async def own_pg_database(pg_databases: PgDatabases) -> str:
    """A migrated, seeded PostgreSQL database of one module's own (dropped after the run)."""
    url = await pg_databases.create()
    await migrate.upgrade(url)
    await seed_database(url)
    return url


@pytest_asyncio.fixture(scope="module")
async def units_pg_url(pg_databases: PgDatabases) -> str:
    url = await own_pg_database(pg_databases)
    await seed_units(url)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def units_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "units_pg_url"
    return str(request.getfixturevalue(name))


@pytest_asyncio.fixture
async def aenv(open_tickets: OpenTickets, units_url: str) -> AsyncIterator[TicketEnv]:
    await seed_units(units_url)  # idempotent: a no-op on the module's PostgreSQL database
    async with open_tickets(units_url) as env:
        yield env


async def agent(
    env: TicketEnv, region: str = CITY, skills: list[str] | None = None, *, seat: Sequence[str] = ()
) -> Actor:
    """An agent with skills on the user (``skills``) and/or on a bound seat (``seat``)."""
    actor = await env.actor(Role.AGENT, region)
    async with env.services.sessionmaker() as session:
        user = await session.get(User, actor.user_id)
        assert user is not None
        user.skills = list(skills or [])
        if seat:
            ext = f"9{actor.user_id:07d}"
            session.add(
                Seat(
                    extension=ext, name=ext, region_code=region, user_id=user.id, skills=list(seat)
                )
            )
        await session.commit()
    return actor


async def give_load(env: TicketEnv, desk: Actor, to: Actor, count: int) -> None:
    for _ in range(count):
        tid = (await env.create(desk, category="legal_consultation", request_type="consultation"))[
            "id"
        ]
        response = await env.act(desk, tid, "dispatch", {"assignee_id": to.user_id})
        assert response.status_code == 200, response.text


async def retire_other_agents(env: TicketEnv, keep: list[Actor]) -> None:
    """The PostgreSQL database is shared by this module: earlier tests' agents must not
    compete (deactivated agents are never eligible)."""
    async with env.services.sessionmaker() as session:
        users = (await session.scalars(select(User).where(User.role == "agent"))).all()
        for user in users:
            if user.id not in {a.user_id for a in keep}:
                user.is_active = False
        await session.commit()

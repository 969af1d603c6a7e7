"""Fixtures for the ticketing tests: the app with the tickets router, users with bearer tokens,
and a clock the tests can set.

The PostgreSQL database is shared by the whole run, so every test makes its own users and
looks only at its own tickets. Users are inserted directly (no password hashing) and get a
bearer session through the auth service: the tickets API sees real authentication.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import func, select

import ticketing.models  # noqa: F401  (the drift test compares every registered table)
from callcenter.auth import services as auth
from callcenter.db.base import utcnow
from callcenter.db.models import Role, User
from callcenter.services import Services, build_services
from callcenter.settings import Settings
from callcenter.web.app import create_app
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

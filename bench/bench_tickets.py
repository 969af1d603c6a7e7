"""Ticket throughput on PostgreSQL: create → assign → close through the API (prints figures).

Run: ``.venv/bin/python bench/bench_tickets.py [--tickets N] [--concurrency C]``

Each ticket goes through five authenticated API calls, as a hotline desk would make them:
create (受理), dispatch to an agent (派单), sign (签收), start (办理), resolve (办结). Every call
is a real request through the FastAPI app (in process, over ``httpx.ASGITransport``, so no
socket cost), bearer authentication, the conditional update, a history row and a bus event.
Measured in the same run, for comparison:
- service: the same five steps calling ``TicketService`` directly (no HTTP, no auth);
- raw SQL: a bulk insert of the same final rows (each ticket resolved, five history rows);
- floor: ``GET /api/auth/me`` five times per "ticket", i.e. authentication alone.
Goal (issue 5): >= 500 tickets/s end to end.

Uses a throw-away database on ``CALLCENTER_TEST_PG`` (default ``postgres@127.0.0.1:5432``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from callcenter.auth import services as auth
from callcenter.auth.principal import Principal
from callcenter.db import migrate
from callcenter.db.engine import make_engine, make_sessionmaker
from callcenter.db.models import Role, User
from callcenter.regions.provinces import load_province, province_file
from callcenter.regions.seed import seed_province
from callcenter.services import Services, build_services
from callcenter.settings import load_settings
from callcenter.web.app import create_app
from ticketing.http import router
from ticketing.models import Ticket, TicketHistory
from ticketing.schemas import ActionBody, DispatchBody, ResolveBody, TicketCreate
from ticketing.services import TicketService
from ticketing.states import Action

PG_SERVER = os.environ.get("CALLCENTER_TEST_PG", "postgres@127.0.0.1:5432")
CITY = "330400"
HANDLERS = 8
CREATE = {
    "channel": "phone",
    "caller_number": "13805730001",
    "caller_region_code": CITY,
    "category": "legal_aid",
    "request_type": "help",
    "content": "农民工欠薪求助：工地拖欠三个月工资，请求法律援助",
}


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(f"postgresql://{PG_SERVER}/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _user(services: Services, role: Role) -> tuple[User, str]:
    async with services.sessionmaker() as session:
        user = User(
            username=f"bench_{uuid.uuid4().hex[:10]}",
            password_hash="!unusable",  # noqa: S106 - no login: a bearer session is opened directly
            role=role.value,
            region_code=CITY,
        )
        session.add(user)
        await session.commit()
        token, _ = await auth.open_session(
            session, user, "bearer", client_ip=None, user_agent=None, settings=services.settings
        )
        return user, token


async def _run(count: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> float:
    """Seconds to push ``count`` tickets through ``one`` with ``concurrency`` in flight."""
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            await one(i)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start


def _api_flow(
    client: httpx.AsyncClient, desk: str, handlers: list[tuple[User, str]]
) -> Callable[[int], Awaitable[None]]:
    async def one(i: int) -> None:
        handler, token = handlers[i % len(handlers)]
        desk_h = {"Authorization": f"Bearer {desk}"}
        mine = {"Authorization": f"Bearer {token}"}
        r = await client.post("/api/tickets", json=CREATE, headers=desk_h)
        tid = r.json()["id"]
        steps: list[tuple[str, dict[str, Any] | None, dict[str, str]]] = [
            ("dispatch", {"assignee_id": handler.id}, desk_h),
            ("sign", None, mine),
            ("start", None, mine),
            ("resolve", {"result": "已指派法律援助律师"}, mine),
        ]
        for action, body, headers in steps:
            r = await client.post(
                f"/api/tickets/{tid}/actions/{action}", json=body, headers=headers
            )
        if r.status_code != 200:
            raise RuntimeError(f"ticket {tid}: {r.status_code} {r.text}")

    return one


def _auth_only(client: httpx.AsyncClient, token: str) -> Callable[[int], Awaitable[None]]:
    """The platform's per-request floor: authentication and routing, no ticket work."""
    headers = {"Authorization": f"Bearer {token}"}

    async def one(i: int) -> None:
        await client.get("/api/auth/me", headers=headers)

    return one


def _principal(user: User) -> Principal:
    return Principal(
        user_id=user.id,
        username=user.username,
        display_name="",
        role=Role(user.role),
        region_code=user.region_code,
        skills=(),
        languages=(),
        auth_kind="bearer",
        session_hash="",
    )


def _service_flow(
    services: Services, desk: User, handlers: list[tuple[User, str]]
) -> Callable[[int], Awaitable[None]]:
    body = TicketCreate.model_validate(CREATE)
    desk_p = _principal(desk)

    async def one(i: int) -> None:
        handler = _principal(handlers[i % len(handlers)][0])
        async with services.sessionmaker() as session:
            svc = TicketService(session, services.bus)
            ticket = await svc.create(desk_p, body)
            await svc.act(
                desk_p, ticket.id, Action.DISPATCH, DispatchBody(assignee_id=handler.user_id)
            )
            await svc.act(handler, ticket.id, Action.SIGN, ActionBody())
            await svc.act(handler, ticket.id, Action.START, ActionBody())
            await svc.act(
                handler, ticket.id, Action.RESOLVE, ResolveBody(result="已指派法律援助律师")
            )

    return one


async def _raw_insert(services: Services, count: int, desk: User, handler: User) -> float:
    """The same final rows in bulk: the floor any API could approach."""
    now = datetime.now(UTC)
    tickets = [
        {
            **CREATE,
            "number": f"{CITY}-20991231-{i:06d}",
            "region_code": CITY,
            "urgency": "normal",
            "green_channel": False,
            "resolved_on_call": False,
            "handling_unit": None,
            "assignee_id": handler.id,
            "state": "resolved",
            "version": 5,
            "accept_by": now + timedelta(days=1),
            "resolve_by": now + timedelta(days=7),
            "extended_days": 0,
            "urge_count": 0,
            "supervised": False,
            "result": "已指派法律援助律师",
            "created_by_id": desk.id,
            "created_at": now,
            "updated_at": now,
            "signed_at": now,
            "resolved_at": now,
        }
        for i in range(count)
    ]
    moves = [
        ("create", None, "accepted"),
        ("dispatch", "accepted", "dispatched"),
        ("sign", "dispatched", "signed"),
        ("start", "signed", "in_progress"),
        ("resolve", "in_progress", "resolved"),
    ]
    start = time.perf_counter()
    async with services.sessionmaker() as session:
        ids = (await session.scalars(insert(Ticket).returning(Ticket.id), tickets)).all()
        history = [
            {
                "ticket_id": tid,
                "at": now,
                "actor_id": desk.id,
                "action": a,
                "from_state": f,
                "to_state": t,
                "reason": None,
                "details": {},
            }
            for tid in ids
            for a, f, t in moves
        ]
        await session.execute(insert(TicketHistory), history)
        await session.commit()
    return time.perf_counter() - start


async def main(count: int, concurrency: int) -> None:
    name = f"cc_bench_{uuid.uuid4().hex[:10]}"
    url = f"postgresql+asyncpg://{PG_SERVER}/{name}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        await migrate.upgrade(url)
        engine = make_engine(url)
        async with make_sessionmaker(engine)() as session:
            await seed_province(session, load_province(province_file("330000")))
        await engine.dispose()
        with tempfile.TemporaryDirectory() as tmp:
            settings = load_settings(database_url=url, data_dir=Path(tmp))
            async with build_services(settings) as services:
                await _measure(services, count, concurrency)
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _measure(services: Services, count: int, concurrency: int) -> None:
    app = create_app(services=services)
    app.include_router(router)
    desk, desk_token = await _user(services, Role.AGENT)
    handlers = [await _user(services, Role.AGENT) for _ in range(HANDLERS)]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        api = _api_flow(client, desk_token, handlers)
        await _run(min(100, count), concurrency, api)  # warm-up: pools, caches, JIT-less paths
        api_s = await _run(count, concurrency, api)
        me_s = await _run(count * 5, concurrency, _auth_only(client, desk_token))
    service_s = await _run(count, concurrency, _service_flow(services, desk, handlers))
    raw_s = await _raw_insert(services, count, desk, handlers[0][0])

    print(f"tickets: {count}, concurrency: {concurrency}, PostgreSQL, 5 API calls per ticket")
    print(f"{'path':<36}{'seconds':>10}{'tickets/s':>12}{'calls/s':>10}")
    rows = [
        ("API: create→dispatch→sign→start→resolve", api_s, 5),
        ("service layer, same steps (no HTTP)", service_s, 5),
        ("raw SQL bulk insert of the same rows", raw_s, 0),
    ]
    for label, seconds, calls in rows:
        per_call = f"{calls * count / seconds:>10.0f}" if calls else f"{'-':>10}"
        print(f"{label:<36}{seconds:>10.2f}{count / seconds:>12.0f}{per_call}")
    floor = 5 * count / me_s
    print(
        f"{'floor: GET /api/auth/me (auth only)':<36}{me_s:>10.2f}{floor / 5:>12.0f}{floor:>10.0f}"
    )
    print(f"goal: >= 500 tickets/s end to end; API reaches {count / api_s / 500:.0%} of it")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(main(args.tickets, args.concurrency))

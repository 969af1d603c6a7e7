"""``/api/live`` with real logins: authentication, roles, region scope and number masking.

Live state holds trace 10 (five callers of legal-consult, which belongs to no city, so their
calls are the province's; 蒋一 talks to seat 8002 李娜) and trace 09 up to the first time seat
8009 (王芳, Jiaxing) lets it ring out (a Jiaxing caller still waiting in ``city-330400``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import delete

from callcenter.ami.events import AgentNoAnswer, CallAnswered
from callcenter.auth import services as auth
from callcenter.auth.deps import get_passwords
from callcenter.auth.passwords import Passwords, make_passwords
from callcenter.db.models import Role, Seat
from callcenter.services import Services, build_services
from callcenter.settings import Settings
from callcenter.state import LiveState, Regions
from callcenter.web.app import create_app
from tests.state.conftest import Ticker, Traces
from tests.state.test_live_traces import feed_until

PASSWORD = "correct horse battery"
ENDPOINTS = ("/api/live/calls", "/api/live/queues", "/api/live/agents")


@dataclass
class Api:
    services: Services
    client: httpx.AsyncClient
    passwords: Passwords
    seats: list[str]

    async def user(self, role: Role, region: str = "330400") -> tuple[int, str]:
        """Create a user and log in through the API; returns (user id, bearer token)."""
        name = f"u_{uuid.uuid4().hex[:12]}"
        async with self.services.sessionmaker() as session:
            user = await auth.create_user(
                session,
                username=name,
                password=PASSWORD,
                role=role,
                region_code=region,
                passwords=self.passwords,
            )
        body = {"username": name, "password": PASSWORD, "client": "api"}
        response = await self.client.post("/api/auth/login", json=body)
        assert response.status_code == 200, response.text
        return user.id, response.json()["access_token"]

    async def seat(self, extension: str, user_id: int, region: str) -> None:
        async with self.services.sessionmaker() as session:
            session.add(
                Seat(extension=extension, name=extension, region_code=region, user_id=user_id)
            )
            await session.commit()
        self.seats.append(extension)

    async def get(self, token: str, path: str, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return await self.client.get(path, params=params, headers=headers)

    async def items(self, token: str, path: str, **params: str) -> list[dict[str, Any]]:
        response = await self.get(token, path, **params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == len(body["items"]) and not body["truncated"]
        return list(body["items"])


def app_with_live_router(services: Services) -> FastAPI:
    return create_app(services=services)


async def populated_live_state(regions: Regions, traces: Traces) -> LiveState:
    live = LiveState(regions, clock=Ticker())
    await feed_until(live, traces.events("10", "node-a"), CallAnswered, n=2)
    await feed_until(live, traces.events("09", "node-b"), AgentNoAnswer)
    return live


@pytest_asyncio.fixture
async def open_api(
    make_settings: Callable[..., Settings], regions: Regions, traces: Traces
) -> AsyncIterator[Callable[[str], Any]]:
    passwords = make_passwords(time_cost=1, memory_cost=8, parallelism=1)
    stack: list[Any] = []

    async def _open(database_url: str) -> Api:
        services_cm = build_services(make_settings(database_url=database_url))
        services = await services_cm.__aenter__()
        stack.append(services_cm)
        app = app_with_live_router(services)
        app.dependency_overrides[get_passwords] = lambda: passwords
        app.state.live_state = await populated_live_state(regions, traces)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        api = Api(services, client, passwords, [])
        stack.append(api)
        return api

    yield _open
    for entry in reversed(stack):
        if isinstance(entry, Api):
            await entry.client.aclose()
            if entry.seats:
                async with entry.services.sessionmaker() as session:
                    await session.execute(delete(Seat).where(Seat.extension.in_(entry.seats)))
                    await session.commit()
        else:
            await entry.__aexit__(None, None, None)


@pytest_asyncio.fixture
async def api(open_api: Callable[[str], Any], sqlite_url: str) -> Api:
    built: Api = await open_api(sqlite_url)
    return built


async def test_every_endpoint_needs_a_login(api: Api) -> None:
    for path in ENDPOINTS:
        response = await api.client.get(path)
        assert response.status_code == 401
        assert response.json()["error_id"] == "not-authenticated"


async def test_followup_staff_may_not_read_live_state(api: Api) -> None:
    _, token = await api.user(Role.FOLLOWUP, "330000")
    for path in ENDPOINTS:
        assert (await api.get(token, path)).status_code == 403


async def test_city_supervisor_sees_only_their_city_with_masked_numbers(api: Api) -> None:
    _, token = await api.user(Role.SUPERVISOR, "330400")
    [call] = await api.items(token, "/api/live/calls")
    assert (call["region_code"], call["queue"], call["state"]) == (
        "330400",
        "city-330400",
        "queued",
    )
    assert (call["caller_number"], call["caller_name"], call["number_masked"]) == (
        "0573****8000",
        "卫**",
        True,
    )
    [queue] = await api.items(token, "/api/live/queues")
    assert (queue["name"], queue["waiting_count"]) == ("city-330400", 1)
    assert queue["waiting"][0]["caller_number"] == "0573****8000"
    assert queue["longest_wait_s"] is not None
    agents = await api.items(token, "/api/live/agents")
    assert {a["member_name"] for a in agents} == {"王芳"}
    assert await api.items(token, "/api/live/calls", region="330400") == [call]


@pytest.mark.parametrize("region", ["330000", "331000", "330500"])
async def test_another_region_is_not_found(api: Api, region: str) -> None:
    _, token = await api.user(Role.SUPERVISOR, "330400")
    for path in ENDPOINTS:
        response = await api.get(token, path, region=region)
        assert response.status_code == 404
        assert response.json()["error_id"] == "not-found"


async def test_malformed_region_is_a_bad_request(api: Api) -> None:
    _, token = await api.user(Role.SUPERVISOR, "330000")
    response = await api.get(token, "/api/live/calls", region="33'--")
    assert response.status_code == 400


async def test_province_supervisor_sees_everything_masked(api: Api) -> None:
    _, token = await api.user(Role.SUPERVISOR, "330000")
    calls = await api.items(token, "/api/live/calls")
    assert len(calls) == 6
    assert all(c["number_masked"] and "****" in c["caller_number"] for c in calls)
    city = await api.items(token, "/api/live/calls", region="330400")
    assert [c["queue"] for c in city] == ["city-330400"]
    queues = await api.items(token, "/api/live/queues")
    assert sorted(q["name"] for q in queues) == ["city-330400", "legal-consult"]
    [consult] = [q for q in queues if q["name"] == "legal-consult"]
    assert [w["position"] for w in consult["waiting"]] == [1, 2, 3]


async def test_admin_sees_full_numbers(api: Api) -> None:
    _, token = await api.user(Role.ADMIN, "330000")
    calls = await api.items(token, "/api/live/calls")
    assert "057312348000" in {c["caller_number"] for c in calls}
    assert not any(c["number_masked"] for c in calls)


async def test_the_handling_agent_sees_the_full_number_of_their_call_only(
    open_api: Callable[[str], Any], db_url: str
) -> None:
    api: Api = await open_api(db_url)
    user_id, token = await api.user(Role.AGENT, "330000")
    await api.seat("8002", user_id, "330000")
    calls = {c["caller_name"]: c for c in await api.items(token, "/api/live/calls")}
    mine = [c for c in calls.values() if not c["number_masked"]]
    assert [(c["caller_name"], c["caller_number"], c["agent_extension"]) for c in mine] == [
        ("蒋一", "13905730100", "8002")
    ]
    assert all(c["caller_number"].count("*") == 4 for c in calls.values() if c["number_masked"])
    [consult] = [
        q for q in await api.items(token, "/api/live/queues") if q["name"] == "legal-consult"
    ]
    assert all(w["number_masked"] for w in consult["waiting"])


async def test_live_state_not_wired_is_service_unavailable(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    async with build_services(make_settings(database_url=sqlite_url)) as services:
        app = app_with_live_router(services)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            api = Api(
                services, client, make_passwords(time_cost=1, memory_cost=8, parallelism=1), []
            )
            app.dependency_overrides[get_passwords] = lambda: api.passwords
            _, token = await api.user(Role.SUPERVISOR, "330000")
            response = await api.get(token, "/api/live/calls")
    assert response.status_code == 503

"""Click-to-call from the follow-up workbench, for real: the API asks the AMI bridge to
Originate through the PBX simulator (over TCP), which rings the staff member's seat and then
the caller, exactly as the rendered dialplan's ``callback-dial`` context would."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio

from callcenter.auth import services as auth
from callcenter.db.models import Role, Seat, User
from callcenter.pbxsim.workload import TrafficConfig
from callcenter.routing.calendar import SHANGHAI
from callcenter.services import Services, build_services
from callcenter.settings import Settings
from callcenter.web.app import create_app
from ticketing.callbacks import IvrCallbackRequest, book_ivr_callback
from ticketing.http import get_clock

pytestmark = [pytest.mark.slow]

MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)


@pytest_asyncio.fixture
async def workbench(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> AsyncIterator[tuple[Services, httpx.AsyncClient]]:
    quiet = TrafficConfig(seed=5, speed=60.0, calls_per_hour=0.0, max_calls=0)
    settings = make_settings(database_url=sqlite_url, call_tickets=False)
    async with build_services(settings, telephony=True, traffic=quiet) as services:
        assert services.telephony is not None
        await services.telephony.wait_connected(5.0)
        app = create_app(services=services)

        async def fixed_clock() -> Callable[[], datetime]:
            return lambda: MONDAY_10

        app.dependency_overrides[get_clock] = fixed_clock
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield services, c


async def _staff(services: Services, extension: str | None) -> dict[str, str]:
    async with services.sessionmaker() as session:
        user = User(
            username=f"fu_{uuid.uuid4().hex[:8]}",
            display_name="回访员",
            password_hash="!unusable",
            role=Role.FOLLOWUP.value,
            region_code="330400",
        )
        session.add(user)
        await session.flush()
        if extension is not None:
            session.add(
                Seat(extension=extension, name="回访席", region_code="330400", user_id=user.id)
            )
        await session.commit()
        token, _ = await auth.open_session(
            session, user, "bearer", client_ip=None, user_agent=None, settings=services.settings
        )
    return {"Authorization": f"Bearer {token}"}


async def _task(services: Services, number: str) -> int:
    request = IvrCallbackRequest(
        caller_number=number,
        region_code="330400",
        reason="virtual_hold",
        linkedid=f"1795400000.{uuid.uuid4().int % 10**6}",
        node="sim-node1",
        language="zh-CN",
        service_type="mediation",
        requested_at=MONDAY_10,
    )
    return await book_ivr_callback(services.sessionmaker, request)


async def _originates(services: Services) -> list[dict[str, Any]]:
    tel = services.telephony
    assert tel is not None and tel.simulator is not None
    seen: list[dict[str, Any]] = []
    tel.simulator.server.listeners.append(lambda fields: seen.append(dict(fields)))
    return seen


async def test_given_a_callback_task_when_dialled_then_seat_then_caller_are_rung(
    workbench: tuple[Services, httpx.AsyncClient],
) -> None:
    services, client = workbench
    headers = await _staff(services, "8123")
    task_id = await _task(services, "13905730021")
    events = await _originates(services)
    response = await client.post(f"/api/followups/{task_id}/dial", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["task_id"], body["success"]) == (task_id, True), body
    responses = [e for e in events if e.get("Event") == "OriginateResponse"]
    assert [e["Response"] for e in responses] == ["Success"]
    assert "8123" in responses[0]["Channel"]  # the seat was rung first
    assert responses[0]["Exten"] == "13905730021" and responses[0]["Context"] == "callback-dial"


async def test_given_staff_without_a_seat_when_dialling_then_409_and_nothing_rung(
    workbench: tuple[Services, httpx.AsyncClient],
) -> None:
    services, client = workbench
    events = await _originates(services)
    seatless = await _staff(services, None)
    task_id = await _task(services, "13905730023")
    refused = await client.post(f"/api/followups/{task_id}/dial", headers=seatless)
    assert refused.status_code == 409 and refused.json()["error_id"] == "no-seat"
    assert not [e for e in events if e.get("Event") == "OriginateResponse"]

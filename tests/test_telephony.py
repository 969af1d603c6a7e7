"""The whole telephony path: PBX simulator → AMI over TCP → normalizer → live state + records.

The invariant under faults: once traffic has drained, every simulated call is in the ``calls``
table exactly once and ended, whatever happened to the AMI connection in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select

from callcenter.db.models import Call
from callcenter.pbxsim.workload import TrafficConfig
from callcenter.services import Services, build_services
from callcenter.settings import Settings
from callcenter.telephony import Telephony, calls_by_city, format_city_table
from callcenter.web.app import create_app


def _traffic(**overrides: Any) -> TrafficConfig:
    base: dict[str, Any] = {
        "seed": 7,
        "speed": 150.0,
        "calls_per_hour": 900.0,
        "max_calls": 60,
        "ivr_s": (1.0, 3.0),
        "talk_s": (5.0, 30.0),
        "patience_s": (10.0, 90.0),
        "city_timeout_s": 20.0,
    }
    base.update(overrides)
    return TrafficConfig(**base)


@pytest_asyncio.fixture
async def running(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> AsyncIterator[Services]:
    settings = make_settings(database_url=sqlite_url)
    async with build_services(settings, telephony=True, traffic=_traffic()) as services:
        assert services.telephony is not None
        await services.telephony.wait_connected(5.0)
        yield services


def _tel(services: Services) -> Telephony:
    assert services.telephony is not None and services.telephony.simulator is not None
    return services.telephony


async def _drain(services: Services, timeout: float = 60.0) -> None:
    tel = _tel(services)
    assert tel.simulator is not None and tel.simulator.traffic is not None
    await asyncio.wait_for(tel.simulator.traffic.wait_finished(), timeout)
    for node in tel.nodes.values():
        await node.client.drain()
    await tel.recorder.flush(10.0)


async def _rows(services: Services) -> tuple[int, int, int]:
    async with services.sessionmaker() as s:
        total = (await s.execute(select(func.count()).select_from(Call))).scalar_one()
        distinct = (await s.execute(select(func.count(func.distinct(Call.linkedid))))).scalar_one()
        open_ = (
            await s.execute(select(func.count()).select_from(Call).where(Call.ended_at.is_(None)))
        ).scalar_one()
    return total, distinct, open_


async def _assert_every_call_recorded_once(services: Services) -> None:
    tel = _tel(services)
    assert tel.simulator is not None
    offered = tel.simulator.stats.total().offered
    total, distinct, open_ = await _rows(services)
    assert offered == 60
    assert (total, distinct, open_) == (offered, offered, 0)
    assert tel.live.calls == []


@pytest.mark.slow
async def test_given_simulated_traffic_then_every_call_recorded_once_with_region(
    running: Services,
) -> None:
    await _drain(running)
    await _assert_every_call_recorded_once(running)
    tel = _tel(running)
    assert tel.simulator is not None
    stats = tel.simulator.stats.total()
    async with running.sessionmaker() as s:
        answered = (
            await s.execute(
                select(func.count()).select_from(Call).where(Call.answered_at.is_not(None))
            )
        ).scalar_one()
        regions = set((await s.execute(select(Call.caller_region_code))).scalars())
    assert answered == stats.answered
    assert len(regions - {None}) >= 5  # callers from many cities, geocoded by phonenumbers
    table = format_city_table(await calls_by_city(running.sessionmaker, tel.province))
    assert "合计" in table and "嘉兴市" in table


@pytest.mark.slow
async def test_given_connection_dropped_mid_traffic_then_nothing_lost_or_duplicated(
    running: Services,
) -> None:
    tel = _tel(running)
    assert tel.simulator is not None
    for _ in range(2):
        await asyncio.sleep(0.6)
        await tel.simulator.server.drop_connections()
    await _drain(running)
    client = next(iter(tel.nodes.values())).client
    assert client.status["connects"] >= 2
    await _assert_every_call_recorded_once(running)


@pytest.mark.slow
async def test_given_pbx_restarted_mid_traffic_then_calls_reconciled(running: Services) -> None:
    tel = _tel(running)
    assert tel.simulator is not None
    await asyncio.sleep(0.8)
    await tel.simulator.server.close()  # AMI down: events of this gap are never seen
    await asyncio.sleep(0.5)
    await tel.simulator.server.start()
    await _drain(running)
    await tel.wait_connected(5.0)
    await asyncio.sleep(0.3)  # the resync after reconnect closes what ended meanwhile
    await _assert_every_call_recorded_once(running)


@pytest.mark.slow
async def test_readiness_and_live_api_follow_the_bridge(running: Services) -> None:
    app = create_app(services=running)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        ready = await c.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["ami"]["detail"].startswith("built-in PBX simulator")
        assert (await c.get("/api/live/calls")).status_code == 401
        tel = _tel(running)
        assert tel.simulator is not None
        await tel.simulator.server.close()
        for _ in range(50):
            if (await c.get("/readyz")).status_code == 503:
                break
            await asyncio.sleep(0.1)
        down = await c.get("/readyz")
        assert down.status_code == 503
        assert "not connected" in down.json()["checks"]["ami"]["detail"]
